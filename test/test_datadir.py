import numpy as np
import pytest
import soundfile as sf

from speechkd.data.audio import iter_data_audio, load_audio
from speechkd.data.datadir import DataDir, read_kv, write_kv
from speechkd.utils.errors import DataError


def test_roundtrip_and_validate(tiny_datadir):
    d = DataDir(tiny_datadir)
    d.validate()
    text = d.read("text")
    assert len(text) == 6 and list(text) == sorted(text)
    assert d.read("spk2utt")["spk0"].split() == ["spk0-utt0", "spk0-utt2", "spk0-utt4"]


def test_unsorted_and_unknown_utt_errors_name_file_and_line(tiny_datadir):
    d = DataDir(tiny_datadir)
    lines = open(d.file("text")).read().splitlines()
    open(d.file("text"), "w").write("\n".join(lines[::-1]) + "\n")
    with pytest.raises(DataError, match=r"text:2: not sorted"):
        d.validate()
    d.fix()
    d.validate()
    with open(d.file("utt2lang"), "a") as f:
        f.write("zzz-unknown en\n")
    with pytest.raises(DataError, match=r"utt2lang:7: utterance 'zzz-unknown' not in utt2spk"):
        d.validate()


def test_empty_transcript_is_an_error_and_fix_drops_it(tiny_datadir):
    d = DataDir(tiny_datadir)
    text = d.read("text")
    lines = [f"{k} {v}" for k, v in text.items()]
    lines[2] = lines[2].split()[0]
    open(d.file("text"), "w").write("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"text:3: entry '.*' has no value"):
        read_kv(d.file("text"))
    dropped = d.fix()
    assert dropped == [lines[2]]
    d.validate()
    assert len(d.read("utt2spk")) == 5


def test_audio_any_format_rate_channels(tmp_path):
    sr = 22050
    t = np.arange(sr) / sr
    stereo = np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 440 * t)], 1).astype(np.float32) * 0.5
    sf.write(tmp_path / "a.flac", stereo, sr)
    wav = load_audio(str(tmp_path / "a.flac"), 16000)
    assert wav.dtype == np.float32 and abs(len(wav) - 16000) <= 1
    assert abs(np.abs(wav).max() - 0.5) < 0.02
    piped = load_audio(f"cat {tmp_path / 'a.flac'} |", 16000)
    np.testing.assert_allclose(piped, wav)


def test_corrupt_and_missing_audio_name_the_utterance(tiny_datadir, tmp_path):
    d = DataDir(tiny_datadir)
    wavs = d.read("wav.scp")
    first = next(iter(wavs))
    open(wavs[first], "wb").write(b"RIFF garbage")
    with pytest.raises(DataError, match=rf"wav.scp:1 \({first}\): cannot read audio"):
        list(iter_data_audio(tiny_datadir))
    wavs[first] = str(tmp_path / "nope.wav")
    write_kv(d.file("wav.scp"), wavs)
    with pytest.raises(DataError, match="not found"):
        list(iter_data_audio(tiny_datadir))


def test_segments(tiny_datadir):
    d = DataDir(tiny_datadir)
    wavs = d.read("wav.scp")
    rec = next(iter(wavs))
    d.write("segments", {u: f"{rec} 0.0 0.25" for u in d.utt_ids()})
    out = dict(iter_data_audio(tiny_datadir))
    assert all(len(w) == 4000 for w in out.values())
