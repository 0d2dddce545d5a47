"""SLURP data prep (one utterance per recording, utt2intent) on a tiny fake tree."""
import json

import pytest

from speechkd.corpus import slurp
from speechkd.data.audio import iter_data_audio
from speechkd.data.datadir import DataDir
from speechkd.utils.errors import DataError
from recipe_runner import run_data_sh




@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return slurp.make_fake_tree(tmp_path_factory.mktemp("slurp"))


def test_prepare_with_metadata_speakers(tree, tmp_path):
    dirs = slurp.prepare(tree, tmp_path / "data", synthetic=True)
    assert sorted(dirs) == ["devel", "test", "train", "train_synthetic"]
    for d in dirs.values():
        d.validate(need=("utt2intent",))
    tr = DataDir(tmp_path / "data" / "train")
    assert dict(tr.read("utt2intent")) == {"FE-141-audio-1490000001-headset": "alarm_set",
                                           "MO-433-audio-1490000000-headset": "alarm_set",
                                           "MO-433-audio-1490000010-headset": "weather_query"}
    assert tr.read("text")["MO-433-audio-1490000010-headset"] == "what's the weather like"
    assert tr.read("spk2utt")["MO-433"] == "MO-433-audio-1490000000-headset MO-433-audio-1490000010-headset"
    assert dirs["devel"].read("utt2intent") == {"FE-200-audio-1490000020-headset": "iot_hue_lightoff"}
    assert dirs["train_synthetic"].read("utt2spk") == {"synth-synth-4": "synth"}
    assert dirs["train_synthetic"].read("wav.scp")["synth-synth-4"].endswith("audio/slurp_synth/synth-4.flac")
    audio = dict(iter_data_audio(dirs["test"].path))
    assert sorted(audio) == ["FE-300-audio-1490000030-headset", "MO-301-audio-1490000031-headset"]
    assert audio["MO-301-audio-1490000031-headset"].shape == (4000,)


def test_session_speakers_without_metadata_and_dedup(tmp_path):
    tree = slurp.make_fake_tree(tmp_path / "src", with_metadata=False)
    test_jsonl = tree / "dataset" / "slurp" / "test.jsonl"
    line = test_jsonl.read_text(encoding="utf-8")
    test_jsonl.write_text(line + line, encoding="utf-8")  # same recordings listed twice: kept once
    dirs = slurp.prepare(tree, tmp_path / "data", splits=["test"], normalize=True)
    assert dict(dirs["test"].read("utt2spk")) == {
        "audio-1490000030-audio-1490000030-headset": "audio-1490000030",
        "audio-1490000031-audio-1490000031-headset": "audio-1490000031"}


def test_malformed_jsonl_names_file_and_line(tmp_path):
    tree = slurp.make_fake_tree(tmp_path / "src")
    path = tree / "dataset" / "slurp" / "train.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()
    path.write_text(lines[0] + "\n{\"sentence\": \"half\n", encoding="utf-8")
    with pytest.raises(DataError) as e:
        slurp.prepare(tree, tmp_path / "data", splits=["train"])
    assert (e.value.path, e.value.line) == (str(path), 2) and "invalid JSON" in e.value.message
    rec = json.loads(lines[1])
    del rec["scenario"]
    path.write_text(lines[0] + "\n" + json.dumps(rec) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"train\.jsonl:2: missing field 'scenario'"):
        slurp.prepare(tree, tmp_path / "data", splits=["train"])


def test_data_sh(tree, tmp_path):
    r = run_data_sh("slurp/pad", tmp_path, "--src", str(tree))
    assert r.returncode == 0, r.stderr
    data = tmp_path / "recipe" / "data"
    assert sorted(p.name for p in data.iterdir() if p.is_dir()) == ["devel", "test", "train"]
    assert DataDir(data / "test").read("utt2intent")["FE-300-audio-1490000030-headset"] == "play_music"
