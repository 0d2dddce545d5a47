"""Shared pytest fixtures: tiny synthetic data dirs that need no espeak-ng."""
from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _tone(sr: int, seconds: float, freq: float, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    x = 0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(t.shape)
    return x.astype(np.float32)


@pytest.fixture
def tiny_datadir(tmp_path):
    """A 6-utterance data dir of noisy tones (16 kHz wav), 2 speakers, text of 2-3 words each."""
    from speechkd.data.audio import write_wav
    from speechkd.data.datadir import write_datadir

    rng = np.random.default_rng(0)
    wav_dir = tmp_path / "wav"
    words = ["alpha", "beta", "gamma", "delta"]
    entries = {"wav.scp": {}, "text": {}, "utt2spk": {}, "utt2lang": {}}
    for i in range(6):
        spk = f"spk{i % 2}"
        utt = f"{spk}-utt{i}"
        path = wav_dir / f"{utt}.wav"
        write_wav(path, _tone(16000, 0.5 + 0.1 * i, 200 + 50 * i, rng), 16000)
        entries["wav.scp"][utt] = str(path)
        entries["text"][utt] = " ".join(words[(i + j) % 4] for j in range(2 + i % 2))
        entries["utt2spk"][utt] = spk
        entries["utt2lang"][utt] = "en"
    write_datadir(tmp_path / "data", entries)
    return tmp_path / "data"
