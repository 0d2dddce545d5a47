"""CTC forced alignment: the single best (Viterbi) CTC path for a known label sequence, batched in torch.

The label sequence ``y_1..y_L`` is extended with blanks, ``b y_1 b y_2 ... y_L b`` (S = 2L + 1 states).
A path starts in state 0 or 1 and ends in state S-1 or S-2; at each frame it stays, moves one state, or
skips a blank (s-2 -> s) unless the two labels are equal (repeated labels need a blank between them).
All in log domain, vectorised over the batch and the states; a Python loop runs over frames only.

Example::

    >>> log_probs = model_log_probs                       # (B, T, V), blank = 0
    >>> targets = torch.tensor([[5, 7, 7, 2], [3, 4, 0, 0]])   # (B, L) padded (pad value ignored)
    >>> al = ctc_forced_align(log_probs, targets, torch.tensor([120, 80]), torch.tensor([4, 2]))
    >>> al[0].path.shape                                  # frame labels (T_0,) with blanks
    torch.Size([120])
    >>> al[0].spans[1]                                    # second token: frames [start, end)
    TokenSpan(index=1, token=7, start=31, end=33)
    >>> segments = spans_to_segments(al[0].spans, frame_shift=0.02, mode="start")   # [(start_s, dur_s)]

An impossible alignment (fewer frames than labels plus repeats) gives ``score == -inf`` and no spans.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor

__all__ = ["TokenSpan", "Alignment", "ctc_forced_align", "spans_to_segments", "min_frames"]

NEG_INF = -math.inf


@dataclass
class TokenSpan:
    """Token ``index`` (position in the label sequence) with id ``token`` occupies frames [start, end)."""

    index: int
    token: int
    start: int
    end: int


@dataclass
class Alignment:
    """Result for one utterance: ``path`` (T,) frame labels (blank included), ``states`` (T,) extended-state
    indices, ``spans`` per label, ``score`` (log probability of the best path; -inf if impossible)."""

    path: Tensor
    states: Tensor
    spans: List[TokenSpan] = field(default_factory=list)
    score: float = NEG_INF


def min_frames(labels: Sequence[int]) -> int:
    """Fewest frames a CTC path for ``labels`` needs (one per label plus a blank between repeats)."""
    labels = list(labels)
    return len(labels) + sum(1 for a, b in zip(labels, labels[1:]) if a == b)


def _as_padded(targets: Union[Tensor, Sequence[Sequence[int]]], target_lengths) -> Tuple[Tensor, Tensor]:
    if isinstance(targets, Tensor):
        tg = targets if targets.dim() == 2 else targets.unsqueeze(0)
        if target_lengths is None:
            target_lengths = torch.full((tg.shape[0],), tg.shape[1], dtype=torch.long)
        return tg.long(), torch.as_tensor(target_lengths, dtype=torch.long)
    seqs = [list(map(int, s)) for s in targets]
    L = max((len(s) for s in seqs), default=0)
    tg = torch.zeros(len(seqs), max(L, 1), dtype=torch.long)
    for i, s in enumerate(seqs):
        tg[i, :len(s)] = torch.tensor(s, dtype=torch.long)
    return tg, torch.tensor([len(s) for s in seqs], dtype=torch.long)


@torch.no_grad()
def ctc_forced_align(log_probs: Tensor, targets, input_lengths: Optional[Tensor] = None,
                     target_lengths: Optional[Tensor] = None, blank: int = 0) -> List[Alignment]:
    """Viterbi CTC alignment of a batch.

    Args:
        log_probs: (B, T, V) or (T, V) log posteriors.
        targets: (B, L) padded label ids (or a list of id lists); must not contain ``blank``.
        input_lengths: (B,) valid frames (default T).
        target_lengths: (B,) labels per utterance (default L, or the list lengths).
        blank: blank id.
    Returns:
        list of B :class:`Alignment`.
    """
    if log_probs.dim() == 2:
        log_probs = log_probs.unsqueeze(0)
    B, T, V = log_probs.shape
    tg, tlen = _as_padded(targets, target_lengths)
    if tg.shape[0] != B:
        raise ValueError(f"{tg.shape[0]} target sequences for a batch of {B}")
    dev = log_probs.device
    tg, tlen = tg.to(dev), tlen.to(dev)
    ilen = (torch.full((B,), T, dtype=torch.long) if input_lengths is None
            else torch.as_tensor(input_lengths, dtype=torch.long)).to(dev)
    L = tg.shape[1]
    pos = torch.arange(L, device=dev)
    if bool(((tg == blank) & (pos[None] < tlen[:, None])).any()):
        raise ValueError("targets contain the blank id")
    S = 2 * L + 1
    ext = torch.full((B, S), blank, dtype=torch.long, device=dev)
    ext[:, 1::2] = torch.where(pos[None] < tlen[:, None], tg, torch.full_like(tg, blank))
    s_idx = torch.arange(S, device=dev)
    valid_s = s_idx[None] < (2 * tlen + 1)[:, None]                        # (B, S)
    skip_ok = torch.zeros(B, S, dtype=torch.bool, device=dev)
    skip_ok[:, 2:] = (ext[:, 2:] != blank) & (ext[:, 2:] != ext[:, :-2])
    lp = log_probs.float()
    emit = lp.gather(2, ext[:, None, :].expand(B, T, S))                    # (B, T, S)
    emit = emit.masked_fill(~valid_s[:, None, :], NEG_INF)

    alpha = torch.full((B, S), NEG_INF, device=dev)
    alpha[:, 0] = emit[:, 0, 0]
    alpha[:, 1] = torch.where(tlen > 0, emit[:, 0, 1], torch.full_like(emit[:, 0, 1], NEG_INF))
    back = torch.zeros(B, T, S, dtype=torch.int8, device=dev)
    neg = torch.full((B, 1), NEG_INF, device=dev)
    active = torch.arange(T, device=dev)[None, :] < ilen[:, None]           # (B, T)
    for t in range(1, T):
        a1 = torch.cat([neg, alpha[:, :-1]], dim=1)
        a2 = torch.cat([neg, neg, alpha[:, :-2]], dim=1).masked_fill(~skip_ok, NEG_INF)
        # elementwise max of the three predecessors (much faster than stack().max(-1) on CPU)
        arg = (a1 > alpha).to(torch.int8)
        best = torch.maximum(alpha, a1)
        take2 = a2 > best
        arg = arg.masked_fill(take2, 2)
        best = torch.maximum(best, a2)
        alpha = torch.where(active[:, t:t + 1], best + emit[:, t], alpha)
        back[:, t] = arg

    # final states: S_b - 1 (last blank) or S_b - 2 (last label)
    last = (2 * tlen).clamp(max=S - 1)
    end_blank = alpha.gather(1, last[:, None])[:, 0]
    end_label = torch.where(tlen > 0, alpha.gather(1, (last - 1).clamp(min=0)[:, None])[:, 0],
                            torch.full_like(end_blank, NEG_INF))
    final_state = torch.where(end_label > end_blank, last - 1, last)
    scores = torch.maximum(end_blank, end_label)

    back_np, ext_np = back.cpu().numpy(), ext.cpu().numpy()
    out: List[Alignment] = []
    for b in range(B):
        Tb, score = int(ilen[b]), float(scores[b])
        if Tb == 0 or not math.isfinite(score):
            out.append(Alignment(torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long), [], NEG_INF))
            continue
        states = np.empty(Tb, dtype=np.int64)
        s = int(final_state[b])
        for t in range(Tb - 1, -1, -1):
            states[t] = s
            s -= int(back_np[b, t, s])
        labels = ext_np[b][states]
        spans: List[TokenSpan] = []
        for t, st in enumerate(states):
            if st % 2 == 1:
                k = st // 2
                if spans and spans[-1].index == k:
                    spans[-1].end = t + 1
                else:
                    spans.append(TokenSpan(index=k, token=int(labels[t]), start=t, end=t + 1))
        out.append(Alignment(torch.from_numpy(labels), torch.from_numpy(states), spans, score))
    return out


def spans_to_segments(spans: Sequence[TokenSpan], frame_shift: float, mode: str = "start",
                      offset: float = 0.0) -> List[Tuple[float, float]]:
    """Token spans (frames) → ``(start_s, dur_s)`` per token.

    Modes:
        ``peaky``: exactly the frames CTC emitted the token on (CTC spikes are short).
        ``start``: contiguous segments: token k lasts from its first frame to token k+1's first frame
            (blank frames after a token belong to it); the last token ends at its last frame.
        ``mid``: contiguous, with each boundary in the middle of the blank gap between two tokens.
    ``offset`` (s) is added to every start (e.g. a segment's start in its recording).
    """
    if mode not in ("peaky", "start", "mid"):
        raise ValueError(f"unknown segment mode '{mode}' (peaky, start, mid)")
    n = len(spans)
    out = []
    for k, sp in enumerate(spans):
        if mode == "peaky" or k == n - 1:
            a, b = float(sp.start), float(sp.end)
            if mode == "mid" and k > 0:
                a = (spans[k - 1].end + sp.start) / 2.0
        elif mode == "start":
            a, b = float(sp.start), float(spans[k + 1].start)
        else:  # mid
            a = float(sp.start) if k == 0 else (spans[k - 1].end + sp.start) / 2.0
            b = (sp.end + spans[k + 1].start) / 2.0
        out.append((offset + a * frame_shift, (b - a) * frame_shift))
    return out
