"""Reading audio named by wav.scp entries: any format soundfile reads, any rate/channels, or a pipe.

    wav = load_audio("/path/a.flac", target_sr=16000)          # float32 mono numpy array
    wav = load_audio("sox a.wav -t wav - |", target_sr=16000)  # Kaldi-style command pipe
    for utt, wav in iter_wav_scp("data/train/wav.scp", 16000): ...

Errors name the utterance and the wav.scp line (missing file, corrupt audio, empty audio, failed pipe).
With a ``segments`` file, :func:`iter_data_audio` cuts each utterance out of its recording.
"""
from __future__ import annotations

import io
import subprocess
from fractions import Fraction
from pathlib import Path
from typing import Iterator, Optional, Tuple

import numpy as np
import soundfile as sf

from ..utils.errors import DataError


def resample(wav: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Polyphase resampling (scipy), float32 in/out, shape (T,)."""
    if orig_sr == target_sr:
        return wav
    from scipy.signal import resample_poly

    frac = Fraction(target_sr, orig_sr).limit_denominator(1000)
    return resample_poly(wav, frac.numerator, frac.denominator).astype(np.float32)


def _read(spec: str) -> Tuple[np.ndarray, int]:
    spec = spec.strip()
    if spec.endswith("|"):
        proc = subprocess.run(spec[:-1], shell=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if proc.returncode != 0:
            raise RuntimeError(f"command failed ({proc.returncode}): {proc.stderr.decode(errors='replace').strip()[-200:]}")
        data, sr = sf.read(io.BytesIO(proc.stdout), dtype="float32", always_2d=True)
    else:
        if not Path(spec).exists():
            raise FileNotFoundError(f"audio file not found: {spec}")
        data, sr = sf.read(spec, dtype="float32", always_2d=True)
    return data, sr


def load_audio(spec: str, target_sr: Optional[int] = 16000, where: str = "",
               start: float = 0.0, end: Optional[float] = None) -> np.ndarray:
    """Load one wav.scp value as float32 mono at ``target_sr`` (None keeps the file's rate).

    ``where`` (e.g. ``"data/train/wav.scp:12 (utt1)"``) prefixes error messages.
    """
    try:
        data, sr = _read(spec)
    except Exception as e:  # soundfile raises LibsndfileError/RuntimeError on corrupt input
        raise DataError(where or spec, None, f"cannot read audio: {e}") from None
    wav = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if start or end is not None:
        a = int(round(start * sr))
        b = len(wav) if end is None or end < 0 else int(round(end * sr))
        wav = wav[a:b]
    if wav.size == 0:
        raise DataError(where or spec, None, "audio is empty")
    if not np.all(np.isfinite(wav)):
        raise DataError(where or spec, None, "audio contains NaN/inf samples")
    if target_sr is not None:
        wav = resample(wav, sr, target_sr)
    return np.ascontiguousarray(wav, dtype=np.float32)


def iter_wav_scp(path, target_sr: Optional[int] = 16000) -> Iterator[Tuple[str, np.ndarray]]:
    """Yield ``(utt, wav)`` for each line of a wav.scp file."""
    path = Path(path)
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            parts = line.strip().split(maxsplit=1)
            if len(parts) != 2:
                raise DataError(path, n, "expected 'utt path-or-command'")
            utt, spec = parts
            yield utt, load_audio(spec, target_sr, where=f"{path}:{n} ({utt})")


def iter_data_audio(data_dir, target_sr: Optional[int] = 16000,
                    utts=None) -> Iterator[Tuple[str, np.ndarray]]:
    """Yield ``(utt, wav)`` for a data dir, honouring ``segments`` if present.

    ``utts`` restricts (and orders) the utterances (e.g. one split of a parallel job).
    """
    from .datadir import DataDir

    d = DataDir(data_dir)
    wavs = d.read("wav.scp")
    wav_lines = {k: i for i, k in enumerate(wavs, 1)}
    if d.has("segments"):
        segs = d.read("segments")
        keys = list(segs) if utts is None else list(utts)
        for utt in keys:
            rec, s, e = segs[utt].split()[:3]
            if rec not in wavs:
                raise DataError(d.file("segments"), None, f"recording '{rec}' of '{utt}' not in wav.scp")
            yield utt, load_audio(wavs[rec], target_sr, where=f"{d.file('wav.scp')}:{wav_lines[rec]} ({rec})",
                                  start=float(s), end=float(e))
    else:
        keys = list(wavs) if utts is None else list(utts)
        for utt in keys:
            if utt not in wavs:
                raise DataError(d.file("wav.scp"), None, f"utterance '{utt}' not found")
            yield utt, load_audio(wavs[utt], target_sr, where=f"{d.file('wav.scp')}:{wav_lines[utt]} ({utt})")


def write_wav(path, wav: np.ndarray, sr: int = 16000) -> None:
    """Write 16-bit PCM wav atomically."""
    from ..utils.fileio import atomic_path

    with atomic_path(path, suffix=".wav") as tmp:
        sf.write(tmp, np.clip(wav, -1.0, 1.0), sr, subtype="PCM_16", format="WAV")
