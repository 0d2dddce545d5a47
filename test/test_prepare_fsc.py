"""Fluent Speech Commands data prep (utt2intent = action_object_location) on a tiny fake tree."""

import pytest

from speechkd.corpus import fsc
from speechkd.data.audio import iter_data_audio
from speechkd.data.datadir import DataDir
from speechkd.utils.errors import DataError
from recipe_runner import run_data_sh




@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return fsc.make_fake_tree(tmp_path_factory.mktemp("fsc"))


def uid(spk, split, i):
    return f"{spk}-{fsc.fake_file_id(split, i)}"


def test_prepare_splits(tree, tmp_path):
    dirs = fsc.prepare(tree.parent, tmp_path / "data")
    assert sorted(dirs) == ["test", "train", "valid"]
    for d in dirs.values():
        d.validate(need=("utt2intent",))
    tr = DataDir(tmp_path / "data" / "train")
    a, b = "2BqVo8kVB2Skwgyb", "4BrX8aDqK2cLZRYl"
    assert dict(tr.read("utt2intent")) == {uid(a, "train", 0): "activate_lights_none",
                                           uid(a, "train", 1): "activate_lights_kitchen",
                                           uid(b, "train", 2): "change-language_none_none"}
    assert tr.read("text")[uid(a, "train", 1)] == "Lights on in the kitchen."
    assert tr.read("utt2spk")[uid(b, "train", 2)] == b
    assert dirs["valid"].read("utt2intent") == {uid("5o9BvRGEGvhaeBwA", "valid", 0): "increase_volume_none"}
    assert dirs["test"].read("spk2utt") == {"7B4XmNppyrCK977p": " ".join(uid("7B4XmNppyrCK977p", "test", i)
                                                                         for i in range(2))}
    audio = dict(iter_data_audio(dirs["test"].path))
    assert audio[uid("7B4XmNppyrCK977p", "test", 1)].shape == (4000,)
    norm = fsc.prepare(tree, tmp_path / "norm", splits=["valid"], normalize=True)["valid"]
    assert list(norm.read("text").values()) == ["turn the volume up please"]


def test_malformed_csv_names_file_and_line(tmp_path):
    tree = fsc.make_fake_tree(tmp_path / "src")
    path = tree / "data" / "train_data.csv"
    lines = path.read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join([lines[0], lines[1], "7,wavs/speakers/x/y.wav,x,Hello,activate"]) + "\n",
                    encoding="utf-8")
    with pytest.raises(DataError) as e:
        fsc.prepare(tree, tmp_path / "data", splits=["train"])
    assert (e.value.path, e.value.line) == (str(path), 3) and "expected 7 comma-separated fields, got 5" in str(e.value)
    path.write_text("\n".join([lines[0], "7,wavs/speakers/x/y.wav,x,Hello,activate,lights,none"]) + "\n",
                    encoding="utf-8")
    with pytest.raises(DataError, match=r"train_data\.csv:2: audio of 'x-y' not found"):
        fsc.prepare(tree, tmp_path / "data", splits=["train"])
    path.write_text(lines[0].replace("speakerId", "speaker") + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"train_data\.csv:1: header lacks column\(s\) speakerId"):
        fsc.prepare(tree, tmp_path / "data", splits=["train"])


def test_data_sh(tree, tmp_path):
    r = run_data_sh("fsc/pad", tmp_path, "--src", str(tree), "--normalize", "true", "--utt2dur", "true")
    assert r.returncode == 0, r.stderr
    data = tmp_path / "recipe" / "data"
    assert sorted(p.name for p in data.iterdir() if p.is_dir()) == ["test", "train", "valid"]
    assert list(DataDir(data / "train").read("text").values())[1] == "lights on in the kitchen"
    assert r.stdout.count(": OK (") == 3
    assert set(DataDir(data / "valid").read("utt2dur").values()) == {"0.250"}
