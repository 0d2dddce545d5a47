"""Data augmentation: speed perturbation, additive noise at an SNR, synthetic reverberation, data dirs."""
from __future__ import annotations

import math

import numpy as np
import pytest

from speechkd.data.audio import load_audio, write_wav
from speechkd.data.augment import (add_noise, augment_datadir, make_noise, reverberate, snr_db,
                                   speed_perturb, synthetic_rir)
from speechkd.data.datadir import DataDir, write_datadir
from speechkd.utils.errors import ConfigError

SR = 16000


def tone(freq, seconds, sr=SR, amp=0.3):
    t = np.arange(int(sr * seconds)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_hz(x, sr=SR):
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x)), n=8 * len(x)))
    return np.argmax(spec) * sr / (8 * len(x))


@pytest.mark.parametrize("factor", [1.1, 0.9])
def test_speed_changes_length_and_pitch(factor):
    x = tone(440.0, 2.0)
    y = speed_perturb(x, factor, SR)
    assert abs(len(y) - len(x) / factor) <= 1
    assert abs(peak_hz(y) - 440.0 * factor) < 1.0
    assert np.array_equal(speed_perturb(x, 1.0), x)


def test_add_noise_hits_requested_snr():
    rng = np.random.default_rng(0)
    x = tone(300, 1.0) * np.clip(np.sin(np.linspace(0, 9, SR)), 0, None).astype(np.float32)
    for kind in ("white", "pink", "babble"):
        pool = [tone(f, 0.7) for f in (200, 350, 500, 650)]
        n = make_noise(kind, len(x), rng, pool)
        for snr in (5.0, 12.5, 20.0):
            y = add_noise(x, n, snr)
            assert abs(snr_db(x, y - x) - snr) < 0.01
    # pink noise really is pink: ~3 dB less power per octave
    p = np.abs(np.fft.rfft(make_noise("pink", 1 << 16, rng))) ** 2
    f = np.fft.rfftfreq(1 << 16, 1 / SR)
    band = lambda lo: p[(f >= lo) & (f < 2 * lo)].mean()
    assert abs(10 * math.log10(band(500) / band(1000)) - 3.0) < 0.7


def test_rir_energy_decay_matches_rt60():
    rng = np.random.default_rng(1)
    for rt60 in (0.3, 0.7):
        h = synthetic_rir(SR, rt60, rng)
        assert abs(np.sum(h.astype(np.float64) ** 2) - 1) < 1e-5 and np.argmax(np.abs(h)) == 0
        edc = np.cumsum((h.astype(np.float64) ** 2)[::-1])[::-1]  # Schroeder backward integral
        db = 10 * np.log10(edc / edc[1])
        t = np.arange(len(h)) / SR
        sel = (db < -5) & (db > -35)
        slope = np.polyfit(t[sel], db[sel], 1)[0]
        assert abs(-60 / slope - rt60) < 0.05 * rt60
        # a broadband burst followed by silence: the reverberant tail loses 60 dB per rt60
        noise = (0.1 * rng.standard_normal(int(0.3 * SR))).astype(np.float32)
        burst = np.concatenate([noise, np.zeros(int(SR * rt60), np.float32)])
        y = reverberate(burst, h).astype(np.float64)
        assert len(y) == len(burst)
        win = SR // 50
        start = int(0.3 * SR) + win
        frames = y[start: start + int(0.5 * rt60 * SR)]
        e = 10 * np.log10(np.add.reduceat(frames ** 2, np.arange(0, len(frames), win))[:-1])
        decay = np.polyfit(np.arange(len(e)) * win / SR, e, 1)[0]
        assert abs(decay - (-60 / rt60)) < 0.1 * 60 / rt60


def _datadir_with_ctm(tiny_datadir):
    d = DataDir(tiny_datadir)
    with open(d.file("phones.ctm"), "w") as f:
        for utt in d.utt_ids():
            f.write(f"{utt} 1 0.10 0.20 a\n{utt} 1 0.30 0.15 b\n")
    return d


def test_augment_datadir_speed_noise_reverb(tiny_datadir, tmp_path):
    d = _datadir_with_ctm(tiny_datadir)
    out = augment_datadir(d.path, tmp_path / "aug", tmp_path / "augwav", speeds=(0.9, 1.0, 1.1),
                          noise_snr=(5, 20), noise_prob=1.0, reverb_prob=0.0, seed=3, progress=False)
    utts = d.utt_ids()
    new = out.utt_ids()
    assert len(new) == 3 * len(utts) and "sp0.9-" + utts[0] in new and utts[0] in new
    u2s = out.read("utt2spk")
    assert u2s["sp1.1-" + utts[0]] == "sp1.1-" + d.read("utt2spk")[utts[0]]
    assert out.read("text")["sp0.9-" + utts[1]] == d.read("text")[utts[1]]
    src_dur = {u: len(load_audio(s, SR)) / SR for u, s in d.read("wav.scp").items()}
    dur, aug, wavs = out.read("utt2dur"), out.read("utt2aug"), out.read("wav.scp")
    for u in utts:
        assert abs(float(dur["sp1.1-" + u]) - src_dur[u] / 1.1) < 2e-3
        assert abs(float(dur[u]) - src_dur[u]) < 2e-3
    # noise at the recorded SNR (speed 1.0 copies: compare with the clean source; 16-bit rounding aside)
    for u in utts:
        desc = aug[u]
        assert desc.startswith("speed=1 noise=")
        want = float(desc.split("snr")[1])
        assert 5 <= want <= 20
        clean = load_audio(d.read("wav.scp")[u], SR)
        noisy = load_audio(wavs[u], SR)
        assert abs(snr_db(clean, noisy - clean) - want) < 0.5
    ctm = [ln.split() for ln in open(out.file("phones.ctm"))]
    row = next(r for r in ctm if r[0] == "sp1.1-" + utts[0] and r[4] == "b")
    assert abs(float(row[2]) - 0.30 / 1.1) < 1e-3 and abs(float(row[3]) - 0.15 / 1.1) < 1e-3


def test_augment_deterministic_across_nj(tiny_datadir, tmp_path):
    kw = dict(speeds=(1.0, 1.1), noise_snr=(0, 10), noise_prob=0.5, reverb_prob=0.5, progress=False)
    a = augment_datadir(tiny_datadir, tmp_path / "a", tmp_path / "wa", seed=7, nj=1, **kw)
    b = augment_datadir(tiny_datadir, tmp_path / "b", tmp_path / "wb", seed=7, nj=2, **kw)
    c = augment_datadir(tiny_datadir, tmp_path / "c", tmp_path / "wc", seed=8, nj=1, **kw)
    assert a.read("utt2aug") == b.read("utt2aug")
    assert "reverb" in " ".join(a.read("utt2aug").values())
    for u, p in a.read("wav.scp").items():
        assert np.array_equal(load_audio(p, SR), load_audio(b.read("wav.scp")[u], SR))
    assert a.read("utt2aug") != c.read("utt2aug")


def test_augment_cli_and_segments(tmp_path):
    from speechkd.bin.augment_data import main

    write_wav(tmp_path / "rec.wav", tone(400, 2.0), SR)
    write_datadir(tmp_path / "d", {"wav.scp": {"rec": str(tmp_path / "rec.wav")},
                                   "segments": {"s-a": "rec 0.0 1.0", "s-b": "rec 1.0 1.8"},
                                   "text": {"s-a": "x", "s-b": "y"}, "utt2spk": {"s-a": "s", "s-b": "s"}})
    with pytest.raises(SystemExit) as e:
        main(["--data", str(tmp_path / "d"), "--out", str(tmp_path / "o"), "--wav-dir", str(tmp_path / "w"),
              "--speed", "0.9,1.0", "--reverb-prob", "1", "--rt60", "0.3,0.3", "--seed", "1", "--nj", "1",
              "--no-progress"])
    assert e.value.code == 0
    o = DataDir(tmp_path / "o")
    assert not o.has("segments")
    assert abs(float(o.read("utt2dur")["sp0.9-s-b"]) - 0.8 / 0.9) < 2e-3
    assert all("reverb=rt60:0.300" in v for v in o.read("utt2aug").values())
    with pytest.raises(ConfigError):
        augment_datadir(tmp_path / "d", tmp_path / "x", tmp_path / "w", speeds=(1.0, 1.0), progress=False)


def test_augment_refuses_to_overwrite_sources(tiny_datadir):
    wav_dir = tiny_datadir.parent / "wav"  # where the fixture's source wavs live
    before = (wav_dir / "spk0-utt0.wav").read_bytes()
    with pytest.raises(ConfigError, match="overwrite"):
        augment_datadir(tiny_datadir, tiny_datadir.parent / "o", wav_dir, noise_snr=(0, 1), noise_prob=1.0,
                        progress=False)
    assert (wav_dir / "spk0-utt0.wav").read_bytes() == before
