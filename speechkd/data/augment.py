"""Data-dir level augmentation: speed perturbation, additive noise at a chosen SNR, synthetic reverberation.

Signal-level functions (numpy float32, shape (S,)):

    y = speed_perturb(wav, 1.1, sr=16000)       # Kaldi/sox ``speed``: len / 1.1, pitch x 1.1
    h = synthetic_rir(16000, rt60=0.5, rng=rng) # exponentially decaying noise tail after a direct path
    y = reverberate(wav, h)                     # same length and RMS as ``wav``
    y = add_noise(wav, noise, snr_db=10)        # noise scaled so 10 log10(P_wav / P_noise) = 10 dB
    n = make_noise("pink", len(wav), rng)       # "white" | "pink" | "babble" (babble needs a pool)

Data-dir level (writes augmented wavs to disk and a complete new data dir)::

    augment_datadir("data/train", "data/train_aug", "dump/aug", speeds=(0.9, 1.0, 1.1),
                    noise_snr=(5, 20), noise_prob=0.5, reverb_prob=0.3, seed=1, nj=2)

For each speed factor every utterance gets a copy (factor 1.0 keeps the original ids; others are prefixed
``sp0.9-``, and so are their speakers, Kaldi's ``perturb_data_dir_speed.sh`` convention); each copy then
gets reverberation with probability ``reverb_prob`` (RT60 uniform in ``rt60``) and additive noise with
probability ``noise_prob`` (SNR uniform in ``noise_snr``, type drawn from ``noise_types``; babble is the
sum of 3-5 other utterances of the same data dir). ``utt2dur`` is recomputed, ``phones.ctm`` /
``words.ctm`` times are divided by the speed factor, and ``utt2aug`` records what was applied to each
utterance. Every random choice is seeded by ``(seed, utterance id)``, so the output does not depend on
``nj``. Segments are cut on read: the output has one wav per utterance and no ``segments``.
"""
from __future__ import annotations

import logging
import math
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..utils.errors import ConfigError, DataError
from ..utils.fileio import atomic_open
from .audio import load_audio, resample, write_wav
from .datadir import DataDir, write_datadir

log = logging.getLogger(__name__)

__all__ = ["speed_perturb", "synthetic_rir", "reverberate", "add_noise", "make_noise", "snr_db",
           "AugmentConfig", "augment_datadir", "speed_prefix"]

NOISE_TYPES = ("white", "pink", "babble")
# files copied per utterance (keys renamed for speed copies); utt2dur is recomputed
COPY_FILES = ("text", "utt2lang", "utt2intent", "phones", "utt2gender")


# ------------------------------------------------------------------------------------------ signal level
def speed_perturb(wav: np.ndarray, factor: float, sr: int = 16000) -> np.ndarray:
    """Speed perturbation as sox/Kaldi ``speed``: play ``factor`` times faster (tempo and pitch change).

    The signal is read as if sampled at ``sr * factor`` and resampled (polyphase, anti-aliased) to ``sr``,
    so the output has ``len(wav) / factor`` samples and every frequency is multiplied by ``factor``.
    """
    if factor <= 0:
        raise ValueError(f"speed factor must be > 0, got {factor}")
    if factor == 1.0:
        return wav.astype(np.float32, copy=True)
    return resample(np.asarray(wav, np.float32), int(round(sr * factor)), sr).astype(np.float32)


def synthetic_rir(sr: int, rt60: float, rng: np.random.Generator, drr_db: float = 3.0,
                  predelay_ms: float = 2.0) -> np.ndarray:
    """Synthetic room impulse response: a direct path (1.0 at t=0) then Gaussian noise whose energy decays
    by 60 dB in ``rt60`` seconds (amplitude ``exp(-3 ln(10) t / rt60)``), starting after ``predelay_ms``.

    ``drr_db`` is the direct-to-reverberant energy ratio. Length: ``rt60`` seconds (the tail is then
    60 dB down). Returns (L,) float32 with unit energy.
    """
    if rt60 <= 0:
        raise ValueError(f"rt60 must be > 0, got {rt60}")
    n = max(int(sr * rt60), 2)
    t = np.arange(n) / sr
    tail = rng.standard_normal(n) * np.exp(-3.0 * math.log(10.0) * t / rt60)
    start = max(1, int(sr * predelay_ms / 1000))
    tail[:start] = 0.0
    tail *= math.sqrt(10 ** (-drr_db / 10) / max(np.sum(tail ** 2), 1e-20))
    h = tail
    h[0] = 1.0
    return (h / np.sqrt(np.sum(h ** 2))).astype(np.float32)


def reverberate(wav: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """Convolve with ``rir``, keep the first ``len(wav)`` samples, rescale to the input's RMS."""
    from scipy.signal import fftconvolve

    y = fftconvolve(wav.astype(np.float64), rir.astype(np.float64))[: len(wav)]
    p_in, p_out = np.mean(np.square(wav, dtype=np.float64)), np.mean(y ** 2)
    if p_out > 0:
        y *= math.sqrt(p_in / p_out)
    return y.astype(np.float32)


def snr_db(clean: np.ndarray, noise: np.ndarray) -> float:
    """``10 log10(P_clean / P_noise)`` over the whole signals."""
    return 10 * math.log10(np.mean(np.square(clean, dtype=np.float64)) /
                           max(np.mean(np.square(noise, dtype=np.float64)), 1e-30))


def add_noise(wav: np.ndarray, noise: np.ndarray, snr: float) -> np.ndarray:
    """Return ``wav + g * noise`` with ``g`` chosen so that the SNR (whole-utterance power) is ``snr`` dB.

    ``noise`` is tiled or cropped to ``len(wav)``.
    """
    noise = _fit_length(np.asarray(noise, np.float64), len(wav))
    p_s = np.mean(np.square(wav, dtype=np.float64))
    p_n = np.mean(noise ** 2)
    if p_s == 0 or p_n == 0:
        return wav.astype(np.float32, copy=True)
    g = math.sqrt(p_s / (p_n * 10 ** (snr / 10)))
    return (wav + g * noise).astype(np.float32)


def _fit_length(x: np.ndarray, n: int) -> np.ndarray:
    if len(x) >= n:
        return x[:n]
    return np.tile(x, int(math.ceil(n / len(x))))[:n]


def make_noise(kind: str, n: int, rng: np.random.Generator,
               pool: Optional[Sequence[np.ndarray]] = None) -> np.ndarray:
    """Noise of ``n`` samples: ``white`` (Gaussian), ``pink`` (1/f power), ``babble`` (sum of 3-5 random
    signals of ``pool`` at random offsets, each normalised to unit RMS). Falls back to pink without a pool."""
    if kind == "white":
        return rng.standard_normal(n)
    if kind == "babble" and pool:
        k = int(rng.integers(3, 6))
        out = np.zeros(n)
        for i in rng.choice(len(pool), size=k, replace=len(pool) < k):
            src = np.asarray(pool[i], np.float64)
            src = np.roll(_fit_length(src, n), int(rng.integers(0, n)))
            out += src / max(np.sqrt(np.mean(src ** 2)), 1e-12)
        return out
    if kind not in NOISE_TYPES:
        raise ValueError(f"unknown noise type '{kind}' ({', '.join(NOISE_TYPES)})")
    spec = rng.standard_normal(n // 2 + 1) + 1j * rng.standard_normal(n // 2 + 1)
    f = np.arange(n // 2 + 1, dtype=np.float64)
    f[0] = 1.0
    spec /= np.sqrt(f)  # power ~ 1/f
    spec[0] = 0.0
    x = np.fft.irfft(spec, n=n)
    return x / max(np.sqrt(np.mean(x ** 2)), 1e-12)


# ------------------------------------------------------------------------------------------ data-dir level
@dataclass
class AugmentConfig:
    """Options of :func:`augment_datadir` (see the module docstring)."""

    speeds: Tuple[float, ...] = (1.0,)
    noise_snr: Optional[Tuple[float, float]] = None
    noise_prob: float = 0.5
    noise_types: Tuple[str, ...] = NOISE_TYPES
    reverb_prob: float = 0.0
    rt60: Tuple[float, float] = (0.2, 0.8)
    sample_rate: int = 16000
    seed: int = 1
    babble_pool: int = 30

    def check(self) -> None:
        if not self.speeds or any(s <= 0 for s in self.speeds):
            raise ConfigError(f"speeds must be positive, got {self.speeds}")
        if len(set(speed_prefix(s) for s in self.speeds)) != len(self.speeds):
            raise ConfigError(f"duplicate speed factors {self.speeds}")
        if self.noise_snr is not None and (len(self.noise_snr) != 2 or self.noise_snr[0] > self.noise_snr[1]):
            raise ConfigError(f"noise SNR range must be 'low,high', got {self.noise_snr}")
        for t in self.noise_types:
            if t not in NOISE_TYPES:
                raise ConfigError(f"unknown noise type '{t}' ({', '.join(NOISE_TYPES)})")
        if not (0 <= self.noise_prob <= 1 and 0 <= self.reverb_prob <= 1):
            raise ConfigError("noise_prob and reverb_prob must be in [0, 1]")
        if len(self.rt60) != 2 or not 0 < self.rt60[0] <= self.rt60[1]:
            raise ConfigError(f"rt60 range must be 'low,high' > 0, got {self.rt60}")


def speed_prefix(factor: float) -> str:
    """Utterance/speaker prefix of a speed copy: ``sp0.9-`` (empty for 1.0)."""
    return "" if factor == 1.0 else f"sp{factor:g}-"


def _utt_rng(seed: int, key: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(key.encode("utf-8"))])


_POOL: Dict[str, np.ndarray] = {}


def _init_worker(pool: Dict[str, np.ndarray]) -> None:
    global _POOL
    _POOL = pool


def _augment_one(job) -> List[Tuple[str, str, float, str]]:
    """Process one source utterance → list of (new_utt, wav_path, duration, aug_description)."""
    utt, spec, start, end, where, cfg, wav_dir = job
    sr = cfg.sample_rate
    wav = load_audio(spec, sr, where=where, start=start, end=end)
    babble = [a for k, a in _POOL.items() if k != utt]
    out = []
    for factor in cfg.speeds:
        new = speed_prefix(factor) + utt
        rng = _utt_rng(cfg.seed, new)
        y = speed_perturb(wav, factor, sr)
        desc = [f"speed={factor:g}"]
        if cfg.reverb_prob > 0 and rng.random() < cfg.reverb_prob:
            rt60 = float(rng.uniform(*cfg.rt60))
            y = reverberate(y, synthetic_rir(sr, rt60, rng, drr_db=float(rng.uniform(0, 6))))
            desc.append(f"reverb=rt60:{rt60:.3f}")
        if cfg.noise_snr is not None and cfg.noise_prob > 0 and rng.random() < cfg.noise_prob:
            snr = float(rng.uniform(*cfg.noise_snr))
            kind = cfg.noise_types[int(rng.integers(len(cfg.noise_types)))]
            if kind == "babble" and not babble:
                kind = "pink"
            y = add_noise(y, make_noise(kind, len(y), rng, babble), snr)
            desc.append(f"noise={kind}:snr{snr:.2f}")
        peak = float(np.max(np.abs(y))) if len(y) else 0.0
        if peak > 0.999:  # scale the whole mixture (keeps the SNR) instead of clipping
            y = y * (0.999 / peak)
        path = Path(wav_dir) / f"{new}.wav"
        write_wav(path, y, sr)
        out.append((new, str(path), len(y) / sr, " ".join(desc)))
    return out


def _source_jobs(d: DataDir, cfg: AugmentConfig, wav_dir: Path) -> List[tuple]:
    wavs = d.read("wav.scp")
    lines = {k: i for i, k in enumerate(wavs, 1)}
    jobs = []
    if d.has("segments"):
        for n, (utt, val) in enumerate(d.read("segments").items(), 1):
            parts = val.split()
            if len(parts) < 3 or parts[0] not in wavs:
                raise DataError(d.file("segments"), n, f"bad segment or unknown recording for '{utt}'")
            try:
                start, end = float(parts[1]), float(parts[2])
            except ValueError:
                raise DataError(d.file("segments"), n, f"non-numeric times for '{utt}'") from None
            jobs.append((utt, wavs[parts[0]], start, end, f"{d.file('wav.scp')}:{lines[parts[0]]} ({parts[0]})",
                         cfg, wav_dir))
    else:
        for utt, spec in wavs.items():
            jobs.append((utt, spec, 0.0, None, f"{d.file('wav.scp')}:{lines[utt]} ({utt})", cfg, wav_dir))
    return jobs


def _scale_ctm(src: Path, dst: Path, speeds: Sequence[float], keep: set) -> None:
    out = []
    with open(src, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) < 5:
                raise DataError(src, n, "expected 'utt channel start dur token'")
            try:
                start, dur = float(parts[2]), float(parts[3])
            except ValueError:
                raise DataError(src, n, "non-numeric start/duration") from None
            for factor in speeds:
                new = speed_prefix(factor) + parts[0]
                if new in keep:
                    out.append((new, start / factor, dur / factor, parts[1], " ".join(parts[4:])))
    out.sort(key=lambda r: (r[0], r[1]))
    with atomic_open(dst, "w") as f:
        for utt, start, dur, ch, tok in out:
            f.write(f"{utt} {ch} {start:.3f} {dur:.3f} {tok}\n")


def augment_datadir(data_dir, out_dir, wav_dir, speeds: Sequence[float] = (1.0,),
                    noise_snr: Optional[Sequence[float]] = None, noise_prob: float = 0.5,
                    noise_types: Sequence[str] = NOISE_TYPES, reverb_prob: float = 0.0,
                    rt60: Sequence[float] = (0.2, 0.8), sample_rate: int = 16000, seed: int = 1,
                    nj: int = 1, progress: bool = True) -> DataDir:
    """Write an augmented copy of ``data_dir`` to ``out_dir`` with its wavs under ``wav_dir``.

    Returns the new :class:`DataDir` (validated). See the module docstring for what is produced.
    """
    from ..utils.progress import progress as progress_bar

    cfg = AugmentConfig(tuple(float(s) for s in speeds), None if noise_snr is None else
                        tuple(float(x) for x in noise_snr), float(noise_prob), tuple(noise_types),
                        float(reverb_prob), tuple(float(x) for x in rt60), int(sample_rate), int(seed))
    cfg.check()
    d = DataDir(data_dir)
    d.validate()
    wav_dir = Path(wav_dir)
    wav_dir.mkdir(parents=True, exist_ok=True)
    jobs = _source_jobs(d, cfg, wav_dir)
    sources = {Path(j[1]).resolve() for j in jobs if not j[1].rstrip().endswith("|")}
    for utt in (j[0] for j in jobs):
        for factor in cfg.speeds:
            if (wav_dir / f"{speed_prefix(factor)}{utt}.wav").resolve() in sources:
                raise ConfigError(f"--wav-dir {wav_dir} would overwrite the source audio of '{utt}'")

    pool: Dict[str, np.ndarray] = {}
    if cfg.noise_snr is not None and "babble" in cfg.noise_types and cfg.noise_prob > 0:
        pick = np.random.default_rng(cfg.seed).permutation(len(jobs))[: cfg.babble_pool]
        for i in sorted(pick):
            utt, spec, start, end, where = jobs[i][:5]
            pool[utt] = load_audio(spec, cfg.sample_rate, where=where, start=start, end=end)

    results: List[Tuple[str, str, float, str]] = []
    bar = progress_bar(total=len(jobs), desc="augment", progress=progress)
    if nj <= 1:
        _init_worker(pool)
        for job in jobs:
            results.extend(_augment_one(job))
            bar.update()
    else:
        import multiprocessing as mp

        with mp.get_context("fork").Pool(nj, initializer=_init_worker, initargs=(pool,)) as p:
            for res in p.imap_unordered(_augment_one, jobs, chunksize=4):
                results.extend(res)
                bar.update()
    bar.close()

    by_new = {r[0]: r for r in results}
    utt2spk = d.read("utt2spk")
    entries: Dict[str, Dict[str, str]] = {"wav.scp": {}, "utt2spk": {}, "utt2dur": {}, "utt2aug": {}}
    copies = {name: d.read(name, allow_empty_value=True) for name in COPY_FILES if d.has(name)}
    for name in copies:
        entries[name] = {}
    for factor in cfg.speeds:
        pre = speed_prefix(factor)
        for utt, spk in utt2spk.items():
            new = pre + utt
            if new not in by_new:
                raise DataError(d.file("utt2spk"), None, f"utterance '{utt}' has no audio")
            _, path, dur, desc = by_new[new]
            entries["wav.scp"][new] = path
            entries["utt2spk"][new] = pre + spk
            entries["utt2dur"][new] = f"{dur:.3f}"
            entries["utt2aug"][new] = desc
            for name, vals in copies.items():
                if utt in vals:
                    entries[name][new] = vals[utt]
    out = write_datadir(out_dir, entries)
    keep = set(entries["wav.scp"])
    for ctm in ("phones.ctm", "words.ctm"):
        if d.has(ctm):
            _scale_ctm(d.file(ctm), out.file(ctm), cfg.speeds, keep)
    out.validate()
    log.info("augmented %d utterances into %d in %s", len(utt2spk), len(keep), out.path)
    return out
