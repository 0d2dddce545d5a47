"""Run a trained CTC checkpoint over a data dir: shared by decoding and forced alignment.

Finds what a checkpoint needs next to it (``exp/ft/model`` → looks in ``exp/ft/model`` then ``exp/ft``):
the tokenizer (``tokenizer.yaml`` or a ``tokenizer/`` dir, or ``config['tokenizer']``) and, for a Fbank
front-end, ``cmvn.npz``. Input follows the model: ``feats.scp`` + CMVN for ``frontend: fbank``,
``wav.scp`` (+ ``segments``) for ``frontend: cnn``.

Example::

    >>> m = load_ctc_for_inference("exp/ft/model", device="cpu")
    >>> m.frontend, m.tokenizer.vocab_size, m.frame_shift          # ('fbank', 62, 0.02)
    >>> for utts, log_probs, lengths in iter_log_probs(m, "data/test", batch_seconds=60):
    ...     hyps = ctc_greedy(log_probs, lengths)                    # log_probs (B, T', V) on CPU
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from ..utils.errors import ConfigError

log = logging.getLogger("speechkd")

__all__ = ["CTCInference", "load_ctc_for_inference", "iter_log_probs", "find_tokenizer_dir", "find_cmvn",
           "pick_device"]


@dataclass
class CTCInference:
    model: torch.nn.Module
    config: dict
    tokenizer: object
    frontend: str                 # "cnn" | "fbank"
    cmvn: Optional[Path]
    device: torch.device
    sample_rate: int = 16000
    frame_shift: float = 0.02     # seconds per output frame
    precision: str = "fp32"       # autocast of the forward pass (speechkd.train.precision); log-probs in fp32


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _search_dirs(ckpt_dir: Path) -> List[Path]:
    return [ckpt_dir, ckpt_dir.parent]


def find_tokenizer_dir(ckpt_dir, config: Optional[dict] = None) -> Path:
    """Locate the tokenizer saved with a checkpoint (see module doc); ConfigError listing where it looked."""
    ckpt_dir = Path(ckpt_dir)
    cands: List[Path] = []
    for key in ("tokenizer", "token_dir"):
        v = (config or {}).get(key) or ((config or {}).get("data") or {}).get(key)
        if isinstance(v, str):
            cands.append(Path(v))
    for d in _search_dirs(ckpt_dir):
        cands += [d, d / "tokenizer"]
    for c in cands:
        if (c / "tokenizer.yaml").exists():
            return c
    raise ConfigError(f"{ckpt_dir}: no tokenizer found (looked for tokenizer.yaml in "
                      f"{', '.join(str(c) for c in cands)}); pass --tokenizer")


def find_cmvn(ckpt_dir, config: Optional[dict] = None) -> Optional[Path]:
    ckpt_dir = Path(ckpt_dir)
    cands = [((config or {}).get("data") or {}).get("cmvn")]
    cands += [d / "cmvn.npz" for d in _search_dirs(ckpt_dir)]
    for c in cands:
        if c and Path(c).exists():
            return Path(c)
    return None


def load_ctc_for_inference(ckpt_dir, tokenizer_dir=None, cmvn=None, device="auto",
                           precision="auto") -> CTCInference:
    """Load a CTC checkpoint (``load_checkpoint``), its tokenizer and CMVN; model in eval mode on ``device``;
    ``precision`` (auto | fp32 | bf16 | fp16) is the autocast of the forward pass."""
    from ..train.precision import resolve_precision

    from ..asr.tokenizer import load_tokenizer
    from ..models.checkpoint import load_checkpoint

    model, config = load_checkpoint(ckpt_dir)
    dev = pick_device(device) if isinstance(device, str) else device
    model.to(dev).eval()
    tok = load_tokenizer(tokenizer_dir or find_tokenizer_dir(ckpt_dir, config))
    vocab = getattr(model, "vocab_size", None)
    if vocab is not None and int(vocab) != tok.vocab_size:
        raise ConfigError(f"{ckpt_dir}: model has {vocab} outputs but the tokenizer has {tok.vocab_size} units")
    enc = getattr(model, "encoder", None)
    frontend = getattr(getattr(enc, "cfg", None), "frontend", None) or \
        ((config.get("model") or {}).get("encoder") or {}).get("frontend", "cnn")
    sample_rate = int((config.get("data") or {}).get("sample_rate", 16000))
    cmvn_path = None
    if frontend == "fbank":
        cmvn_path = Path(cmvn) if cmvn else find_cmvn(ckpt_dir, config)
        if cmvn_path is None:
            raise ConfigError(f"{ckpt_dir}: a fbank model needs cmvn.npz (none beside the checkpoint); pass --cmvn")
    # seconds per output frame, from the model's own length arithmetic
    n_in = 100 * 60 if frontend == "fbank" else sample_rate * 60
    n_out = int(model.output_lengths(torch.tensor([n_in]))[0]) if hasattr(model, "output_lengths") else 0
    frame_shift = (60.0 / n_out) if n_out else 0.02
    frame_shift = round(frame_shift, 4)
    prec, _ = resolve_precision(precision, dev)
    return CTCInference(model, config, tok, frontend, cmvn_path, dev, sample_rate, frame_shift, prec)


def make_inference_dataset(m: CTCInference, data_dir, utts: Optional[Sequence[str]] = None):
    from ..data.dataset import FeatsDataset, WavDataset

    if m.frontend == "fbank":
        return FeatsDataset(data_dir, cmvn=m.cmvn, tokenizer=None, text_file=None, utts=utts)
    if m.frontend == "cnn":
        return WavDataset(data_dir, sample_rate=m.sample_rate, tokenizer=None, text_file=None, utts=utts)
    raise ConfigError(f"unknown front-end '{m.frontend}' (cnn, fbank)")


@torch.no_grad()
def iter_log_probs(m: CTCInference, data_dir, utts: Optional[Sequence[str]] = None, batch_seconds: float = 60.0,
                   progress: bool = True, desc: str = "decode") -> Iterator[Tuple[List[str], Tensor, Tensor]]:
    """Yield ``(utts, log_probs (B, T', V) float32 CPU, out_lengths (B,))`` in length-sorted batches."""
    from ..utils.progress import progress as progress_bar

    from ..data.collate import collate
    from ..data.sampler import make_batches
    from ..train.precision import autocast, resolve_precision

    _, dtype = resolve_precision(m.precision, m.device, quiet=True)
    ds = make_inference_dataset(m, data_dir, utts)
    per_sec = 100 if m.frontend == "fbank" else m.sample_rate
    batches = make_batches(ds.lengths, max(1, int(batch_seconds * per_sec)))
    bar = progress_bar(total=len(ds), desc=desc, unit="utt", progress=progress)
    for idx in batches:
        batch = collate([ds[i] for i in idx])
        x, lens = batch["x"].to(m.device), batch["x_lengths"].to(m.device)
        with autocast(m.device, dtype):
            out = m.model(x, lens, mask=False) if _accepts_mask(m.model) else m.model(x, lens)
        log_probs, out_lens = out[0], out[1]
        log_probs = log_probs.float().log_softmax(-1)  # no-op for log posteriors; safe for logits
        if out_lens is None:
            out_lens = torch.full((log_probs.shape[0],), log_probs.shape[1], dtype=torch.long)
        bar.update(len(idx))
        yield batch["utts"], log_probs.cpu(), out_lens.cpu()
    bar.close()


def _accepts_mask(model) -> bool:
    import inspect

    try:
        return "mask" in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False


def split_utts(utts: Sequence[str], nj: int, job: int) -> List[str]:
    """The ``job``-th (1-based) of ``nj`` contiguous, near-equal chunks of ``utts``."""
    if nj < 1 or not 1 <= job <= nj:
        raise ConfigError(f"--job must be in 1..--nj ({nj}), got {job}")
    n = len(utts)
    a, b = math.floor((job - 1) * n / nj), math.floor(job * n / nj)
    return list(utts[a:b])


def decode_datadir(m: CTCInference, data_dir, utts: Optional[Sequence[str]] = None, beam: int = 1,
                   insertion_bonus: float = 0.0, batch_seconds: float = 60.0,
                   progress: bool = True) -> Tuple[dict, dict, dict]:
    """CTC-decode a data dir. Returns ``(text, tokens, stats)``: ``{utt: hyp text}``, ``{utt: "u1 u2 ..."}``
    (the tokenizer's units) and ``{"utts", "audio_s", "wall_s", "rtf"}``."""
    import time

    from ..asr.ctc_search import ctc_decode

    text, tokens = {}, {}
    frames = 0
    t0 = time.perf_counter()
    for batch_utts, log_probs, lens in iter_log_probs(m, data_dir, utts, batch_seconds, progress):
        hyps = ctc_decode(log_probs, lens, beam=beam, blank=m.tokenizer.blank_id, insertion_bonus=insertion_bonus)
        frames += int(lens.sum())
        for u, ids in zip(batch_utts, hyps):
            text[u] = m.tokenizer.decode(ids)
            tokens[u] = " ".join(m.tokenizer.ids_to_units(ids))
    wall = time.perf_counter() - t0
    audio = frames * m.frame_shift
    return text, tokens, {"utts": len(text), "audio_s": round(audio, 2), "wall_s": round(wall, 2),
                          "rtf": round(wall / audio, 4) if audio else None}


def align_datadir(m: CTCInference, data_dir, utts: Optional[Sequence[str]] = None, text_file: str = "phones",
                  mode: str = "start", batch_seconds: float = 60.0, progress: bool = True):
    """Forced-align a data dir's transcripts (``phones`` by default) with the model's posteriors.

    Returns ``(ctm, stats)``: ``{utt: [CTMEntry]}`` with times in seconds from the utterance's start
    (also with a ``segments`` file: the CTM is keyed by utterance) and ``{"utts", "failed", "failed_examples", "mean_logprob_per_frame"}``. Utterances that
    cannot be aligned (too few frames) are left out and counted.
    """
    from ..data.datadir import DataDir, read_kv
    from ..utils.errors import DataError
    from .ctm import CTMEntry
    from .forced_align import ctc_forced_align, spans_to_segments

    d = DataDir(data_dir)
    path = d.file(text_file)
    trans = read_kv(path)
    line_of = {u: i for i, u in enumerate(trans, 1)}
    utts = list(utts) if utts is not None else None
    targets = {}
    for u in (utts if utts is not None else d.utt_ids()):
        if u not in trans:
            raise DataError(path, None, f"utterance '{u}' has no transcript")
        targets[u] = m.tokenizer.encode(trans[u], where=f"{path}:{line_of[u]} ({u})", strict=True)
    ctm, failed, total_lp, total_frames = {}, [], 0.0, 0
    for batch_utts, log_probs, lens in iter_log_probs(m, data_dir, list(targets), batch_seconds, progress,
                                                      desc="align"):
        als = ctc_forced_align(log_probs, [targets[u] for u in batch_utts], lens, blank=m.tokenizer.blank_id)
        for u, al, n in zip(batch_utts, als, lens.tolist()):
            if not math.isfinite(al.score):
                failed.append(u)
                continue
            total_lp += al.score
            total_frames += n
            segs = spans_to_segments(al.spans, m.frame_shift, mode=mode)
            ctm[u] = [CTMEntry(u, s, dur, m.tokenizer.units[sp.token])
                      for sp, (s, dur) in zip(al.spans, segs)]
    if failed:
        log.warning("%d utterances could not be aligned (fewer frames than phones), e.g. %s", len(failed), failed[0])
    return ctm, {"utts": len(ctm), "failed": len(failed), "failed_examples": failed[:5],
                 "mean_logprob_per_frame": round(total_lp / total_frames, 4) if total_frames else None}
