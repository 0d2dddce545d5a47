"""Multilingual LibriSpeech data prep (+ limited supervision) on a tiny fake tree."""

import pytest

from speechkd.corpus import mls
from speechkd.data.audio import iter_data_audio
from speechkd.data.datadir import DataDir
from speechkd.utils.errors import DataError
from recipe_runner import run_data_sh




@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return mls.make_fake_tree(tmp_path_factory.mktemp("mls"))


def test_prepare_languages_splits_and_limited(tree, tmp_path):
    dirs = mls.prepare(tree, tmp_path / "data")
    want = [f"{s}_{c}" for c in ("de", "pl") for s in ("dev", "test", "train", "train_10h", "train_10min", "train_1h")]
    assert sorted(dirs) == sorted(want)
    for d in dirs.values():
        d.validate()
    de = DataDir(tmp_path / "data" / "train_de")
    text = de.read("text")
    assert len(text) == 8
    # german words[(spk + book + utt + j) % 8] for j < 2 + utt % 3: 10 + 100 + 1 = 111 -> 7, 0, 1
    assert text["10_100_000001"] == "alt der die"
    assert de.read("utt2spk")["11_110_000003"] == "11"
    assert set(de.read("utt2lang").values()) == {"de"}
    # polish is language 1: speakers + 100; 110 + 1100 + 0 = 1210 -> 2, 3
    assert dirs["train_10min_pl"].read("text") == {"110_1100_000000": "dom ładny"}
    assert set(dirs["dev_pl"].read("utt2lang").values()) == {"pl"}
    assert list(dirs["train_1h_de"].read("text")) == sorted(text)[:6]
    assert list(dirs["train_10h_de"].read("text")) == list(text)
    assert dirs["test_de"].read("wav.scp")["30_300_000002"].endswith("mls_german/test/audio/30/300/30_300_000002.flac")
    audio = dict(iter_data_audio(dirs["dev_de"].path))
    assert len(audio) == 4 and audio["20_200_000000"].shape == (4000,)


def test_language_by_code_and_no_limited(tree, tmp_path):
    dirs = mls.prepare(tree / "mls_polish", tmp_path / "data", languages=["pl"], splits=["train"], limited=False)
    assert list(dirs) == ["train_pl"]
    with pytest.raises(DataError, match="MLS language 'french' not found"):
        mls.prepare(tree, tmp_path / "x", languages=["fr"])


def test_malformed_metadata_names_file_and_line(tmp_path):
    tree = mls.make_fake_tree(tmp_path / "src", languages=("german",))
    tf = tree / "mls_german" / "dev" / "transcripts.txt"
    lines = tf.read_text(encoding="utf-8").splitlines()
    tf.write_text(lines[0] + "\n20_200_000001 no tab here\n", encoding="utf-8")
    with pytest.raises(DataError) as e:
        mls.prepare(tree, tmp_path / "data", splits=["dev"])
    assert (e.value.path, e.value.line) == (str(tf), 2) and "<TAB>" in e.value.message
    tf.write_text(lines[0] + "\n20_200_x\tbad id\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"transcripts\.txt:2: utterance id '20_200_x'"):
        mls.prepare(tree, tmp_path / "data", splits=["dev"])
    h = tree / "mls_german" / "train" / "limited_supervision" / "9hr" / "handles.txt"
    h.write_text("10_100_000000\n99_990_000000\n")
    with pytest.raises(DataError, match=r"9hr/handles\.txt:2: utterance '99_990_000000' is not in train"):
        mls.prepare(tree, tmp_path / "data", splits=["train"])


def test_data_sh(tree, tmp_path):
    r = run_data_sh("mls/pathways", tmp_path, "--src", str(tree), "--languages", "german", "--limited", "false")
    assert r.returncode == 0, r.stderr
    data = tmp_path / "recipe" / "data"
    assert sorted(p.name for p in data.iterdir() if p.is_dir()) == ["dev_de", "test_de", "train_de"]
    assert r.stdout.count(": OK (") == 3
