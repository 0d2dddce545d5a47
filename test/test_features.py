"""Kaldi-compatible fbank/MFCC (speechkd.features.kaldi) against kaldi-native-fbank, the oracle."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

knf = pytest.importorskip("kaldi_native_fbank")

from speechkd.features.kaldi import FbankExtractor, MfccExtractor, fbank, mel_banks, mfcc, num_frames


def speech_like(sr: int, seconds: float, seed: int = 0) -> np.ndarray:
    """Gliding harmonic tone (f0 100-160 Hz, 20 harmonics), syllable-rate AM, silences and noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(sr * seconds)) / sr
    f0 = 130 + 30 * np.sin(2 * np.pi * 0.4 * t + seed)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    x = sum(np.sin(k * phase + rng.uniform(0, 6)) / k for k in range(1, 21))
    x *= np.clip(np.sin(2 * np.pi * 2.5 * t), 0, None) ** 2  # on/off envelope: pauses between "syllables"
    x += 0.02 * rng.standard_normal(t.shape)
    return (0.5 * x / np.abs(x).max()).astype(np.float32)


def knf_features(x: np.ndarray, sr: int, kind: str = "fbank", **opts) -> np.ndarray:
    o = knf.FbankOptions() if kind == "fbank" else knf.MfccOptions()
    o.frame_opts.dither = 0.0
    o.frame_opts.samp_freq = sr
    o.frame_opts.snip_edges = opts.get("snip_edges", True)
    o.frame_opts.window_type = opts.get("window", "povey")
    o.mel_opts.num_bins = opts.get("num_mel_bins", 80 if kind == "fbank" else 23)
    o.use_energy = opts.get("use_energy", kind == "mfcc")
    comp = knf.OnlineFbank(o) if kind == "fbank" else knf.OnlineMfcc(o)
    comp.accept_waveform(sr, (x * 32768).tolist())
    comp.input_finished()
    return np.stack([np.asarray(comp.get_frame(i)) for i in range(comp.num_frames_ready)])


@pytest.mark.parametrize("sr,seconds,bins,snip,window,energy", [
    (16000, 30.0, 80, True, "povey", False),
    (16000, 10.0, 40, False, "hamming", True),
    (8000, 20.0, 23, True, "povey", True),
    (8000, 10.0, 64, False, "povey", False),
])
def test_fbank_matches_kaldi_native_fbank(sr, seconds, bins, snip, window, energy):
    x = speech_like(sr, seconds, seed=bins)
    ref = knf_features(x, sr, "fbank", num_mel_bins=bins, snip_edges=snip, window=window, use_energy=energy)
    ours = fbank(torch.from_numpy(x), sr, num_mel_bins=bins, snip_edges=snip, window=window,
                 use_energy=energy).numpy()
    assert ours.shape == ref.shape == (num_frames(len(x), sr, snip_edges=snip), bins + energy)
    assert np.abs(ours - ref).max() <= 1e-3  # measured ~1-2e-4


@pytest.mark.parametrize("sr,bins", [(16000, 23), (8000, 23), (16000, 40)])
def test_mfcc_matches_kaldi_native_fbank(sr, bins):
    x = speech_like(sr, 10.0, seed=3)
    ref = knf_features(x, sr, "mfcc", num_mel_bins=bins)
    ours = mfcc(torch.from_numpy(x), sr, num_mel_bins=bins).numpy()
    assert ours.shape == ref.shape == (998, 13)
    assert np.abs(ours - ref).max() <= 2e-3  # measured ~1-4e-4
    # c0 is the raw log energy (default use_energy=True), not the DCT's c0
    assert np.abs(ours[:, 0] - mfcc(torch.from_numpy(x), sr, num_mel_bins=bins, use_energy=False)[:, 0].numpy()).max() > 1


def test_num_frames_by_hand():
    # 25 ms / 10 ms at 16 kHz: window 400, shift 160
    assert num_frames(399) == 0 and num_frames(400) == 1 and num_frames(560) == 2 and num_frames(16000) == 98
    assert num_frames(16000, snip_edges=False) == 100 and num_frames(79, snip_edges=False) == 0
    assert num_frames(8000, 8000) == 98
    assert num_frames(torch.tensor([0, 400, 16000])).tolist() == [0, 1, 98]
    assert fbank(torch.zeros(300)).shape == (0, 80)


def test_mel_banks_by_hand():
    w = mel_banks(10, 512, 16000)
    assert w.shape == (257, 10)
    assert torch.all(w[-1] == 0)  # Nyquist bin unused, as in Kaldi
    # filter 0 peaks at the bin whose mel is closest to its centre: mel_low + delta
    mel = lambda f: 1127 * math.log(1 + f / 700)
    delta = (mel(8000) - mel(20)) / 11
    centre_hz = 700 * (math.exp((mel(20) + delta) / 1127) - 1)
    assert abs(int(w[:, 0].argmax()) - centre_hz / (16000 / 512)) <= 1
    assert float(w.max()) <= 1.0 and float(w.min()) >= 0.0


def test_batched_equals_single_and_lengths():
    x = [speech_like(16000, s, seed=i) for i, s in enumerate((3.0, 2.2, 0.7))]
    S = max(len(a) for a in x)
    batch = torch.zeros(3, S)
    for i, a in enumerate(x):
        batch[i, : len(a)] = torch.from_numpy(a)
    lengths = torch.tensor([len(a) for a in x])
    for snip in (True, False):
        ext = FbankExtractor(num_mel_bins=80, snip_edges=snip).eval()
        feats, flen = ext(batch, lengths)
        assert feats.shape == (3, num_frames(S, snip_edges=snip), 80)
        for i, a in enumerate(x):
            single = fbank(torch.from_numpy(a), snip_edges=snip)
            assert flen[i] == single.shape[0]
            assert torch.allclose(feats[i, : flen[i]], single, atol=1e-4)
            assert torch.all(feats[i, flen[i]:] == 0)
    # unpadded batch == row by row
    same = torch.from_numpy(np.stack([speech_like(16000, 1.0, seed=s) for s in range(2)]))
    b = mfcc(same)
    assert torch.allclose(b[1], mfcc(same[1]), atol=1e-4)
    m, ml = MfccExtractor()(same, None)
    assert m.shape == (2, 98, 13) and ml.tolist() == [98, 98]


def test_dither_seeded_and_trains_only():
    x = torch.from_numpy(speech_like(16000, 1.0))
    g = lambda: torch.Generator().manual_seed(5)
    a = fbank(x, dither=1.0, generator=g())
    assert torch.equal(a, fbank(x, dither=1.0, generator=g()))
    assert not torch.equal(a, fbank(x))
    assert (a - fbank(x)).abs().mean() < 0.1  # dither of 1 int16 unit barely changes speech
    ext = FbankExtractor(dither=1.0).eval()
    assert torch.equal(ext(x[None])[0][0], fbank(x))


def test_float64_and_grad_free_device_agnostic():
    x = torch.from_numpy(speech_like(16000, 1.0)).double()
    y = fbank(x)
    assert y.dtype == torch.float64
    assert torch.allclose(y.float(), fbank(x.float()), atol=1e-3)
    if torch.cuda.is_available():  # pragma: no cover - no GPU on the dev machines
        assert torch.allclose(fbank(x.float().cuda()).cpu(), fbank(x.float()), atol=1e-3)
