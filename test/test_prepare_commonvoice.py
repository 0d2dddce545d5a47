"""Common Voice (v7+ layout, real mp3 clips) data prep on a tiny fake tree."""

import pytest
import soundfile as sf

from speechkd.corpus import commonvoice
from speechkd.corpus.prep_common import normalize_text
from speechkd.data.audio import iter_data_audio
from speechkd.data.datadir import DataDir
from speechkd.utils.errors import DataError
from recipe_runner import run_data_sh




@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return commonvoice.make_fake_tree(tmp_path_factory.mktemp("cv"), langs=("en", "de", "tr"))


def test_normalize_text():
    assert normalize_text("Don't stop—it's “fine”.", "en") == "don't stop it's fine"
    assert normalize_text("'Quoted' well-known 42!", "en") == "quoted well known 42"
    assert normalize_text("İSTANBUL'a IŞIK", "tr") == "istanbul'a ışık"
    assert normalize_text("ISTANBUL", "en") == "istanbul"
    assert normalize_text("नमस्ते, दुनिया!", "hi") == "नमस्ते दुनिया"  # combining vowel signs kept
    assert normalize_text("A, b.", "en", lower=False, strip_punct=False) == "A, b."


def test_prepare_all_languages(tree, tmp_path):
    dirs = commonvoice.prepare(tree, tmp_path / "data", utt2dur=True)
    assert sorted(dirs) == [f"{s}_{l}" for s in ("dev", "test", "train") for l in ("de", "en", "tr")]
    for d in dirs.values():
        d.validate()
    en = DataDir(tmp_path / "data" / "train_en")
    spk = "a" * 16  # client_id "00" * 32 with 0 -> a, first 16 hex digits
    assert dict(en.read("text")) == {f"{spk}-common_voice_en_1000": "hello world",
                                     f"{spk}-common_voice_en_1001": "don't stop it's fine"}
    assert set(en.read("utt2spk").values()) == {spk}
    assert set(en.read("utt2lang").values()) == {"en"}
    assert DataDir(tmp_path / "data" / "dev_en").read("text") == {"a1a1a1a1a1a1a1a1-common_voice_en_1002":
                                                                  "the cat sat on 2 mats"}
    assert list(dirs["train_de"].read("text").values()) == ["straße schön", "guten morgen welt"]
    assert list(dirs["train_tr"].read("text").values()) == ["istanbul'a gidiyoruz", "ışık yanıyor"]
    assert set(dirs["test_tr"].read("utt2lang").values()) == {"tr"}
    wav_scp = en.read("wav.scp")[f"{spk}-common_voice_en_1000"]
    assert wav_scp.endswith("/en/clips/common_voice_en_1000.mp3")
    if "MP3" in sf.available_formats():
        assert sf.info(wav_scp).format == "MP3"
    assert set(en.read("utt2dur").values()) == {"0.300"}
    audio = dict(iter_data_audio(en.path))
    assert audio[f"{spk}-common_voice_en_1001"].shape == (4800,)  # 0.3 s of 48 kHz mp3 -> 16 kHz


def test_lang_selection_ffmpeg_and_skips(tree, tmp_path):
    (tree / "de" / "dev.tsv").open("a", encoding="utf-8").write(
        "\t".join(["1" * 64, "common_voice_de_1000.mp3", "?!", "", "", "", "", "", "de", ""]) + "\n")
    try:
        dirs = commonvoice.prepare(tree.parent, tmp_path / "data", langs=["de"], splits=["dev"], audio="ffmpeg")
    finally:
        lines = (tree / "de" / "dev.tsv").read_text(encoding="utf-8").splitlines(keepends=True)
        (tree / "de" / "dev.tsv").write_text("".join(lines[:-1]), encoding="utf-8")
    assert list(dirs) == ["dev_de"]
    wav = dirs["dev_de"].read("wav.scp")
    assert len(wav) == 1  # the "?!" row normalises to nothing and is skipped
    spec = next(iter(wav.values()))
    assert spec.startswith("ffmpeg -nostdin") and "-ar 16000 -ac 1 - |" in spec
    with pytest.raises(DataError, match="language 'sw' not found"):
        commonvoice.prepare(tree, tmp_path / "x", langs=["sw"])


def test_malformed_tsv_names_file_and_line(tmp_path):
    tree = commonvoice.make_fake_tree(tmp_path / "src", langs=("en",))
    tsv = tree / "en" / "train.tsv"
    lines = tsv.read_text(encoding="utf-8").splitlines()
    tsv.write_text("\n".join([lines[0], lines[1], "abc\tcommon_voice_en_9.mp3\tshort row"]) + "\n", encoding="utf-8")
    with pytest.raises(DataError) as e:
        commonvoice.prepare(tree, tmp_path / "data", splits=["train"])
    assert (e.value.path, e.value.line) == (str(tsv), 3) and "expected 10 tab-separated fields, got 3" in str(e.value)
    tsv.write_text(lines[0].replace("sentence", "text") + "\n" + lines[1] + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"train\.tsv:1: header lacks column\(s\) sentence"):
        commonvoice.prepare(tree, tmp_path / "data", splits=["train"])
    tsv.write_text(lines[0] + "\n" + lines[1].replace("common_voice_en_1000", "common_voice_en_77") + "\n",
                   encoding="utf-8")
    with pytest.raises(DataError, match=r"train\.tsv:2: audio of .*common_voice_en_77' not found"):
        commonvoice.prepare(tree, tmp_path / "data", splits=["train"])


def test_data_sh(tree, tmp_path):
    r = run_data_sh("commonvoice/distilxlsr", tmp_path, "--src", str(tree), "--langs", "en,tr")
    assert r.returncode == 0, r.stderr
    data = tmp_path / "recipe" / "data"
    assert sorted(p.name for p in data.iterdir() if p.is_dir()) == \
        ["dev_en", "dev_tr", "test_en", "test_tr", "train_en", "train_tr"]
    assert r.stdout.count(": OK (") == 6
    other = tmp_path / "l2s"
    other.mkdir()
    r = run_data_sh("commonvoice/distill_l2s", other, "--src", str(tree), "--langs", "de", "--splits", "test")
    assert r.returncode == 0, r.stderr
    assert list(DataDir(other / "recipe" / "data" / "test_de").read("text").values()) == ["ein kleiner test"]
    r = run_data_sh("commonvoice/distill_l2s", tmp_path / "l2s" / "recipe", "--langs", "de")
    assert r.returncode != 0 and "--src" in r.stderr
