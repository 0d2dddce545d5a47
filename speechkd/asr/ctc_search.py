"""CTC decoding: batched greedy search and prefix beam search (log domain).

Example::

    >>> log_probs = model_out.log_softmax(-1)            # (B, T, V), blank = 0
    >>> hyps = ctc_greedy(log_probs, lengths)              # list of B id lists
    >>> best = ctc_prefix_beam(log_probs[0], lengths[0], beam=8)          # one id list
    >>> nbest = ctc_prefix_beam_nbest(log_probs[0], beam=8)              # [(ids, log_prob), ...]
    >>> hyps = ctc_decode(log_probs, lengths, beam=8)      # greedy when beam <= 1

Greedy: per-frame argmax, merge repeats, drop blanks. Prefix beam search keeps, for each label prefix,
the log probability of all alignments ending in blank (``pb``) and in its last label (``pnb``), so it
ranks prefixes by their *total* probability (sum over alignments) rather than by the best single path.
``insertion_bonus`` adds a constant per emitted label to the ranking score (a length reward > 0 counters
deletions; < 0 penalises insertions); it does not change the returned log probabilities.
"""
from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

__all__ = ["ctc_greedy", "ctc_prefix_beam", "ctc_prefix_beam_nbest", "ctc_decode", "collapse"]

NEG_INF = -math.inf


def collapse(path: Sequence[int], blank: int = 0) -> List[int]:
    """Frame labels → label sequence: merge consecutive repeats, then drop blanks."""
    out, prev = [], None
    for p in path:
        p = int(p)
        if p != prev and p != blank:
            out.append(p)
        prev = p
    return out


def ctc_greedy(log_probs: Tensor, lengths: Optional[Tensor] = None, blank: int = 0) -> List[List[int]]:
    """Greedy (best path) decoding of a batch.

    Args:
        log_probs: (B, T, V) log posteriors (or any scores: only the argmax is used).
        lengths: (B,) valid frames per utterance; None means all T.
        blank: blank id.
    Returns:
        list of B label-id lists.
    """
    if log_probs.dim() == 2:
        log_probs = log_probs.unsqueeze(0)
    B, T, _ = log_probs.shape
    best = log_probs.argmax(-1)  # (B, T)
    if lengths is None:
        lengths = torch.full((B,), T, dtype=torch.long)
    lengths = lengths.to(best.device)
    valid = torch.arange(T, device=best.device)[None, :] < lengths[:, None]
    prev = torch.cat([torch.full_like(best[:, :1], -1), best[:, :-1]], dim=1)
    keep = valid & (best != blank) & (best != prev)
    best, keep = best.cpu().tolist(), keep.cpu().tolist()
    return [[b for b, k in zip(row, ks) if k] for row, ks in zip(best, keep)]


def log_add(a: float, b: float) -> float:
    """``log(exp(a) + exp(b))`` of two Python floats (``-inf`` allowed)."""
    if a == NEG_INF:
        return b
    if b == NEG_INF:
        return a
    m = a if a > b else b
    return m + math.log1p(math.exp(-abs(a - b)))


def ctc_prefix_beam_nbest(log_probs: Tensor, length: Optional[int] = None, beam: int = 10, blank: int = 0,
                          insertion_bonus: float = 0.0, token_beam: Optional[int] = None,
                          nbest: Optional[int] = None,
                          prune_threshold: Optional[float] = 15.0) -> List[Tuple[List[int], float]]:
    """CTC prefix beam search over one utterance; returns up to ``nbest`` (ids, log_prob) best first.

    Args:
        log_probs: (T, V) log posteriors of one utterance.
        length: valid frames (default T).
        beam: prefixes kept after each frame.
        blank: blank id.
        insertion_bonus: added to the ranking score once per emitted label.
        token_beam: labels considered per frame: the ``token_beam`` most probable (default
            ``max(2, 3 * beam // 2)``, ESPnet's pre-beam) and only those within ``prune_threshold``
            nats of the frame's best label; exact search needs ``token_beam=V`` and no threshold.
        prune_threshold: see ``token_beam`` (None: no threshold).
        nbest: number of hypotheses returned (default ``beam``).
    Returns:
        ``[(ids, log_prob)]`` where ``log_prob`` is the total (all-alignments) log probability of ``ids``
        over the frames searched, sorted by ``log_prob + insertion_bonus * len(ids)``.
    """
    if log_probs.dim() != 2:
        raise ValueError(f"expected (T, V) log_probs, got shape {tuple(log_probs.shape)}")
    T, V = log_probs.shape
    T = T if length is None else int(length)
    lp = log_probs[:T].detach().to(torch.float64).cpu().numpy()
    k = min(V, token_beam if token_beam is not None else max(2, 3 * beam // 2))
    # prefix (tuple) -> [pb, pnb]
    beams: Dict[tuple, List[float]] = {(): [0.0, NEG_INF]}

    def rank(item):
        prefix, (pb, pnb) = item
        return log_add(pb, pnb) + insertion_bonus * len(prefix)

    for t in range(T):
        row = lp[t]
        cand = np.argpartition(-row, k - 1)[:k] if k < V else np.arange(V)
        if prune_threshold is not None:
            cand = cand[row[cand] >= row.max() - prune_threshold]
        cand = [int(c) for c in cand if int(c) != blank]
        p_blank = float(row[blank])
        nxt: Dict[tuple, List[float]] = {}

        def get(p):
            e = nxt.get(p)
            if e is None:
                e = nxt[p] = [NEG_INF, NEG_INF]
            return e

        for prefix, (pb, pnb) in beams.items():
            total = log_add(pb, pnb)
            # stay on blank
            e = get(prefix)
            e[0] = log_add(e[0], total + p_blank)
            last = prefix[-1] if prefix else None
            for c in cand:
                p = float(row[c])
                if c == last:
                    # repeat without blank: same prefix; after a blank: new label
                    e[1] = log_add(e[1], pnb + p)
                    ext = get(prefix + (c,))
                    ext[1] = log_add(ext[1], pb + p)
                else:
                    ext = get(prefix + (c,))
                    ext[1] = log_add(ext[1], total + p)
        live = [kv for kv in nxt.items() if kv[1][0] > NEG_INF or kv[1][1] > NEG_INF]
        beams = dict(sorted(live or nxt.items(), key=rank, reverse=True)[:beam])
    ranked = sorted(beams.items(), key=rank, reverse=True)[: (nbest or beam)]
    return [(list(p), log_add(pb, pnb)) for p, (pb, pnb) in ranked]


def ctc_prefix_beam(log_probs: Tensor, length: Optional[int] = None, beam: int = 10, blank: int = 0,
                    insertion_bonus: float = 0.0, token_beam: Optional[int] = None,
                    prune_threshold: Optional[float] = 15.0) -> List[int]:
    """Best label sequence of one utterance by prefix beam search (see :func:`ctc_prefix_beam_nbest`)."""
    return ctc_prefix_beam_nbest(log_probs, length, beam, blank, insertion_bonus, token_beam, nbest=1,
                                 prune_threshold=prune_threshold)[0][0]


def ctc_decode(log_probs: Tensor, lengths: Optional[Tensor] = None, beam: int = 1, blank: int = 0,
               insertion_bonus: float = 0.0) -> List[List[int]]:
    """Decode a (B, T, V) batch: greedy when ``beam <= 1``, else prefix beam search per utterance."""
    if beam <= 1:
        return ctc_greedy(log_probs, lengths, blank)
    B, T, _ = log_probs.shape
    lens = [T] * B if lengths is None else [int(x) for x in lengths]
    return [ctc_prefix_beam(log_probs[b], lens[b], beam, blank, insertion_bonus) for b in range(B)]
