"""Phone shuffling (DistilXLSR): cut speech at phone boundaries, shuffle the pieces, glue them back.

Shuffling keeps the acoustics of every phone but destroys the language (word and phonotactic order), so a
student distilled on shuffled English cannot lean on English-specific context.

Cutting (:func:`cut_segments`): with CTM entries ``p_1..p_n`` sorted by start, piece ``k`` runs from
``p_k``'s start to ``p_{k+1}``'s start (a gap after a phone stays with it), the last piece to
``p_n``'s end; audio before ``p_1`` (leading silence) and after ``p_n`` (trailing silence) stays in place.
Gluing (:func:`concat_crossfade`): consecutive pieces overlap by
``min(fade, len(a) // 2, len(b) // 2)`` samples with a raised-cosine cross-fade (fade-in
``0.5 - 0.5 cos(pi (i + 0.5) / n)``, fade-out its complement), so the result is
``sum(lengths) - sum(overlaps)`` samples long; ``fade = 0`` is plain concatenation.

Deterministic: the permutation of an utterance (or, ``across_utts``, of a speaker's pooled pieces)
comes from ``numpy.random.default_rng([seed, crc32(utt or spk)])``, independent of processing order.

Example::

    >>> rng = utt_rng(seed=1, key="utt1")
    >>> new_wav, new_entries = shuffle_utterance(wav, ctm["utt1"], 16000, rng, crossfade_ms=5.0)
    >>> shuffle_datadir("data/train_en", "exp/align/phones.ctm", "data/train_en_shuf", "dump/shuf", seed=1)
"""
from __future__ import annotations

import logging
import zlib
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..utils.errors import DataError
from .ctm import CTMEntry, read_ctm, write_ctm

log = logging.getLogger("speechkd")

__all__ = ["raised_cosine", "concat_crossfade", "cut_segments", "shuffle_utterance", "shuffle_pieces_across",
           "shuffle_datadir", "utt_rng"]

Piece = Tuple[str, np.ndarray]  # (token, samples)


def utt_rng(seed: int, key: str) -> np.random.Generator:
    """Random generator for one utterance/speaker ``key``: stable across runs and processing order."""
    return np.random.default_rng([int(seed), zlib.crc32(key.encode("utf-8"))])


def raised_cosine(n: int) -> np.ndarray:
    """Fade-in ramp of ``n`` samples rising from ~0 to ~1 (``fade-out = 1 - ramp``)."""
    i = np.arange(n, dtype=np.float64)
    return (0.5 - 0.5 * np.cos(np.pi * (i + 0.5) / n)).astype(np.float32)


def concat_crossfade(pieces: Sequence[np.ndarray], fade: int) -> Tuple[np.ndarray, List[int], List[int]]:
    """Concatenate 1-D arrays with raised-cosine cross-fades of up to ``fade`` samples.

    Returns ``(wav, starts, overlaps)``: ``starts[i]`` is where piece i begins in ``wav`` and
    ``overlaps[i]`` how many of its first samples were blended with the previous piece (0 for i = 0).
    """
    pieces = [np.asarray(p, dtype=np.float32) for p in pieces]
    total = sum(len(p) for p in pieces)
    out = np.zeros(total, dtype=np.float32)
    starts, overlaps = [], []
    pos = 0
    prev_len = 0
    for i, p in enumerate(pieces):
        ov = 0 if i == 0 or fade <= 0 else min(fade, prev_len // 2, len(p) // 2)
        start = pos - ov
        if ov:
            ramp = raised_cosine(ov)
            out[start:pos] = out[start:pos] * (1.0 - ramp) + p[:ov] * ramp
            out[pos:pos + len(p) - ov] = p[ov:]
        else:
            out[start:start + len(p)] = p
        starts.append(start)
        overlaps.append(ov)
        pos = start + len(p)
        if len(p):
            prev_len = len(p)
    return out[:pos], starts, overlaps


def cut_segments(wav: np.ndarray, entries: Sequence[CTMEntry], sr: int) -> Tuple[np.ndarray, List[Piece], np.ndarray]:
    """Cut one utterance into ``(leading, [(token, piece), ...], trailing)`` at the CTM's phone starts."""
    entries = sorted(entries, key=lambda e: e.start)
    n = len(wav)
    cuts = [min(max(int(round(e.start * sr)), 0), n) for e in entries]
    end = min(max(int(round(entries[-1].end * sr)), cuts[-1]), n)
    bounds = cuts + [end]
    for k in range(1, len(bounds)):
        bounds[k] = max(bounds[k], bounds[k - 1])
    pieces = [(e.token, wav[bounds[k]:bounds[k + 1]]) for k, e in enumerate(entries)]
    return wav[:bounds[0]], pieces, wav[bounds[-1]:]


def _assemble(utt: str, lead: np.ndarray, pieces: Sequence[Piece], trail: np.ndarray, sr: int,
              fade: int) -> Tuple[np.ndarray, List[CTMEntry]]:
    wav, starts, _ = concat_crossfade([lead, *[p for _, p in pieces], trail], fade)
    entries = [CTMEntry(utt, starts[k + 1] / sr, len(p) / sr, tok) for k, (tok, p) in enumerate(pieces)]
    return wav, entries


def shuffle_utterance(wav: np.ndarray, entries: Sequence[CTMEntry], sr: int, rng: np.random.Generator,
                      crossfade_ms: float = 5.0, utt: Optional[str] = None) -> Tuple[np.ndarray, List[CTMEntry]]:
    """Shuffle one utterance's phone pieces; returns the new waveform and its CTM (new times)."""
    utt = utt or (entries[0].utt if entries else "utt")
    lead, pieces, trail = cut_segments(wav, entries, sr)
    order = rng.permutation(len(pieces))
    return _assemble(utt, lead, [pieces[i] for i in order], trail, sr, int(round(crossfade_ms * sr / 1000)))


def shuffle_pieces_across(cut: Dict[str, Tuple[np.ndarray, List[Piece], np.ndarray]], rng: np.random.Generator,
                          sr: int, crossfade_ms: float = 5.0) -> Dict[str, Tuple[np.ndarray, List[CTMEntry]]]:
    """Shuffle the pooled pieces of several utterances (one speaker); each utterance keeps its piece count,
    leading and trailing audio. ``cut`` maps utt → :func:`cut_segments` output (utts in sorted order)."""
    utts = sorted(cut)
    pool = [pc for u in utts for pc in cut[u][1]]
    order = rng.permutation(len(pool))
    fade = int(round(crossfade_ms * sr / 1000))
    out, k = {}, 0
    for u in utts:
        lead, pieces, trail = cut[u]
        mine = [pool[i] for i in order[k:k + len(pieces)]]
        k += len(pieces)
        out[u] = _assemble(u, lead, mine, trail, sr, fade)
    return out


def shuffle_datadir(data_dir, ctm_path, out_dir, wav_dir, seed: int = 1, across_utts: bool = False,
                    crossfade_ms: float = 5.0, sample_rate: int = 16000, progress: bool = True) -> Dict[str, int]:
    """Write phone-shuffled copies of a data dir's audio and a new data dir pointing at them.

    ``out_dir`` gets ``wav.scp`` (``wav_dir/<utt>.wav``), ``utt2spk``, ``spk2utt``, ``utt2lang`` (if any),
    ``utt2dur``, ``phones`` and ``text`` (both the shuffled phone sequence: the words are gone) and
    ``phones.ctm`` (the pieces' new times; consecutive entries overlap by the cross-fade). Utterances without CTM entries are dropped (counted).
    Returns ``{"utts": n_written, "dropped": n_dropped}``.
    """
    from ..utils.progress import progress as progress_bar

    from ..data.audio import iter_data_audio, write_wav
    from ..data.datadir import DataDir, write_datadir

    d = DataDir(data_dir)
    d.validate()
    ctm = read_ctm(ctm_path)
    utt2spk = d.read("utt2spk")
    unknown = [u for u in ctm if u not in utt2spk]
    if unknown:
        raise DataError(ctm_path, None, f"utterance '{unknown[0]}' is not in {d.file('utt2spk')}")
    keep = [u for u in utt2spk if ctm.get(u)]
    dropped = len(utt2spk) - len(keep)
    if dropped:
        log.warning("%d of %d utterances have no CTM entries in %s; dropped", dropped, len(utt2spk), ctm_path)
    groups: Dict[str, List[str]] = {}
    for u in keep:
        groups.setdefault(utt2spk[u] if across_utts else u, []).append(u)
    wav_dir = Path(wav_dir).resolve()
    results: Dict[str, Tuple[np.ndarray, List[CTMEntry]]] = {}
    entries = {"wav.scp": {}, "utt2spk": {}, "utt2dur": {}, "phones": {}, "text": {}}
    new_ctm: Dict[str, List[CTMEntry]] = {}
    bar = progress_bar(total=len(keep), desc="shuffle phones", unit="utt", progress=progress)
    for key in sorted(groups):
        utts = groups[key]
        audio = dict(iter_data_audio(data_dir, sample_rate, utts=utts))
        rng = utt_rng(seed, key)
        if across_utts:
            cut = {u: cut_segments(audio[u], ctm[u], sample_rate) for u in utts}
            results = shuffle_pieces_across(cut, rng, sample_rate, crossfade_ms)
        else:
            u = utts[0]
            results = {u: shuffle_utterance(audio[u], ctm[u], sample_rate, rng, crossfade_ms, utt=u)}
        for u, (wav, ents) in results.items():
            path = wav_dir / f"{u}.wav"
            write_wav(path, wav, sample_rate)
            entries["wav.scp"][u] = str(path)
            entries["utt2spk"][u] = utt2spk[u]
            entries["utt2dur"][u] = f"{len(wav) / sample_rate:.3f}"
            seq = " ".join(e.token for e in ents)
            entries["phones"][u] = seq
            entries["text"][u] = seq
            new_ctm[u] = ents
        bar.update(len(utts))
    bar.close()
    if d.has("utt2lang"):
        entries["utt2lang"] = {u: v for u, v in d.read("utt2lang").items() if u in entries["utt2spk"]}
    out = write_datadir(out_dir, entries)
    write_ctm(out.file("phones.ctm"), new_ctm)
    out.validate()
    return {"utts": len(entries["utt2spk"]), "dropped": dropped}
