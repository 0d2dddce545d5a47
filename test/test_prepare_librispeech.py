"""LibriSpeech + Libri-Light data prep on a tiny fake tree in the real layout."""
from pathlib import Path

import pytest

from speechkd.corpus import librispeech
from speechkd.data.audio import iter_data_audio
from speechkd.data.datadir import DataDir
from speechkd.utils.errors import DataError
from recipe_runner import run_data_sh




@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return librispeech.make_fake_tree(tmp_path_factory.mktemp("ls"), subsets=("train-clean-100", "dev-clean"))


def test_prepare_subsets_and_finetune_split(tree, tmp_path):
    dirs = librispeech.prepare(tree["librispeech"], tmp_path / "data", subsets=["train-clean-100", "dev-clean"],
                               finetune_src=tree["finetune"])
    assert sorted(dirs) == ["dev_clean", "train_10h", "train_10min", "train_1h", "train_clean_100"]
    for d in dirs.values():
        d.validate()
    tr = DataDir(tmp_path / "data" / "train_clean_100")
    text = tr.read("text")
    # speaker 100, chapter 1000, utt 1: _WORDS[(100 + 1 + j) % 10] for j < 3
    assert text["100-1000-0001"] == "CAT SAT ON"
    assert text["101-1010-0000"] == "CAT SAT"  # seed 101: words 1, 2
    assert list(text) == ["100-1000-0000", "100-1000-0001", "101-1010-0000", "101-1010-0001"]
    assert tr.read("utt2spk")["101-1010-0001"] == "101"
    assert tr.read("spk2utt")["100"] == "100-1000-0000 100-1000-0001"
    assert set(tr.read("utt2lang").values()) == {"en"}
    assert DataDir(tmp_path / "data" / "dev_clean").read("utt2spk")["200-2000-0000"] == "200"
    # Libri-Light: 10 min = fold 1h/0 (clean spk 900 + other spk 901), 1 h = 6 folds, 10 h = 1 h + 9 h
    assert sorted(set(dirs["train_10min"].read("utt2spk").values())) == ["900", "901"]
    assert len(dirs["train_1h"].utt_ids()) == 6 * 2 * 2
    spk10h = set(dirs["train_10h"].read("utt2spk").values())
    assert len(dirs["train_10h"].utt_ids()) == 7 * 2 * 2 and {"980", "981", "950", "951"} <= spk10h
    audio = dict(iter_data_audio(tr.path))
    assert audio["100-1000-0001"].shape == (4000,)  # 0.25 s at 16 kHz
    assert Path(tr.read("wav.scp")["100-1000-0000"]).is_absolute()


def test_lowercase_and_utt2dur_options(tree, tmp_path):
    d = librispeech.prepare(tree["librispeech"], tmp_path, subsets=["dev-clean"], lowercase=True,
                            utt2dur=True)["dev_clean"]
    assert d.read("text")["200-2000-0001"] == "cat sat on"  # seed 200 -> words 1..3
    assert dict(d.read("utt2dur")) == {"200-2000-0000": "0.200", "200-2000-0001": "0.250",
                                       "201-2010-0000": "0.200", "201-2010-0001": "0.250"}


def test_malformed_transcript_names_file_and_line(tmp_path):
    tree = librispeech.make_fake_tree(tmp_path / "src", subsets=("dev-clean",), n_speakers=1, finetune=False)
    tf = tree["librispeech"] / "dev-clean" / "100" / "1000" / "100-1000.trans.txt"
    lines = tf.read_text().splitlines()
    tf.write_text(lines[0] + "\n100-1001-0001 WRONG CHAPTER\n")
    with pytest.raises(DataError) as e:
        librispeech.prepare(tree["librispeech"], tmp_path / "data", subsets=["dev-clean"])
    assert e.value.path == str(tf) and e.value.line == 2 and "does not match" in str(e.value)
    tf.write_text(lines[0] + "\n100-1000-0007 NO AUDIO\n")
    with pytest.raises(DataError, match=r"trans\.txt:2: audio of '100-1000-0007' not found"):
        librispeech.prepare(tree["librispeech"], tmp_path / "data", subsets=["dev-clean"])
    with pytest.raises(DataError, match="subset 'train-other-500' not found"):
        librispeech.prepare(tree["librispeech"], tmp_path / "data", subsets=["train-other-500"])


def test_cli_and_data_sh(tree, tmp_path):
    from speechkd.bin.prepare_corpus import _main
    from speechkd.utils.cli import run_main

    assert run_main(_main, ["librispeech", "--src", str(tree["librispeech"]), "--out", str(tmp_path / "cli"),
                            "--subsets", "dev-clean"]) == 0
    assert DataDir(tmp_path / "cli" / "dev_clean").read("text")["200-2000-0000"] == "THE CAT"
    assert run_main(_main, ["librispeech", "--src", str(tmp_path), "--out", str(tmp_path / "cli")]) == 1

    r = run_data_sh("librispeech/hubert_kd", tmp_path, "--src", str(tree["librispeech"]),
                    "--subsets", "train-clean-100,dev-clean", "--finetune_src", str(tree["finetune"]))
    assert r.returncode == 0, r.stderr
    data = tmp_path / "recipe" / "data"
    assert sorted(p.name for p in data.iterdir() if p.is_dir()) == \
        ["dev_clean", "train_10h", "train_10min", "train_1h", "train_clean_100"]
    assert r.stdout.count(": OK (") == 5
    work2 = tmp_path / "second"
    work2.mkdir()
    r = run_data_sh("librispeech/distilxlsr", work2, "--src", str(tree["librispeech"]), "--out", "d")
    assert r.returncode == 0, r.stderr
    assert DataDir(work2 / "recipe" / "d" / "train_clean_100").read("text")["100-1000-0001"] == "cat sat on"
