"""Distill-L2S (arXiv 2206.12638): distil a text model into a speech model during CTC fine-tuning.

1. :func:`shrink` the student's hidden states with its own CTC output: consecutive frames whose
   argmax label is the same form one group; groups whose label is blank are dropped; each remaining
   group becomes the mean of its frames. (B, T, D) → (B, T', D) + lengths T'.
2. :func:`interpolate_nearest` the text teacher's hidden states (B, N, D') to length T' per utterance
   (:func:`interpolate_linear` as an ablation).
3. :class:`L2SLoss`: ``MSE(Linear(shrunk), interpolated)`` over valid positions; the total fine-tuning
   loss is ``CTC + λ·L2S``.

Example::

    >>> h = torch.randn(2, 100, 256, requires_grad=True)       # student last hidden states
    >>> lp = torch.randn(2, 100, 40).log_softmax(-1)            # CTC log-probs, blank = 0
    >>> text = torch.randn(2, 12, 768)                          # frozen text model states
    >>> loss_fn = L2SLoss(256, 768)
    >>> loss = loss_fn(h, lp, torch.tensor([100, 80]), text, torch.tensor([12, 9]))
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F


def _pad_list(items, dim: int, like: torch.Tensor):
    lengths = torch.tensor([x.shape[0] for x in items], dtype=torch.long, device=like.device)
    T = int(lengths.max()) if len(items) and int(lengths.max()) > 0 else 0
    out = like.new_zeros(len(items), T, dim)
    for i, x in enumerate(items):
        out[i, : x.shape[0]] = x
    return out, lengths


def shrink(hidden: torch.Tensor, ctc_log_probs: torch.Tensor, lengths: Optional[torch.Tensor] = None,
           blank: int = 0, return_list: bool = False):
    """CTC-based shrinking: average runs of frames with the same argmax, drop blank runs.

    Args:
        hidden: (B, T, D) hidden states (gradients flow through the averages).
        ctc_log_probs: (B, T, V) CTC log-probs or logits (only the argmax is used).
        lengths: (B,) valid frames per utterance (default all T).
    Returns:
        ``(shrunk (B, T', D), shrunk_lengths (B,))`` zero-padded, or the list of (T'_i, D) tensors
        when ``return_list``. An utterance that is all blank gets length 0.

    Example: argmax ``[0, 3, 3, 0, 5, 5, 5, 3]`` keeps groups ``{1,2} {4,5,6} {7}`` → 3 vectors.
    """
    B, T, D = hidden.shape
    if lengths is None:
        lengths = torch.full((B,), T, dtype=torch.long)
    ids = ctc_log_probs.argmax(-1)
    out = []
    for b in range(B):
        L = int(lengths[b])
        if L == 0:
            out.append(hidden.new_zeros(0, D))
            continue
        lab = ids[b, :L]
        start = torch.ones(L, dtype=torch.bool, device=lab.device)
        start[1:] = lab[1:] != lab[:-1]
        seg = torch.cumsum(start.long(), 0) - 1                      # (L,) group index per frame
        n_seg = int(seg[-1]) + 1
        sums = hidden.new_zeros(n_seg, D).index_add(0, seg, hidden[b, :L])
        counts = torch.zeros(n_seg, dtype=hidden.dtype, device=hidden.device).index_add(
            0, seg, torch.ones(L, dtype=hidden.dtype, device=hidden.device))
        keep = lab[start] != blank
        out.append((sums / counts[:, None])[keep])
    if return_list:
        return out
    return _pad_list(out, D, hidden)


def _interp(states, n_lengths, target_lengths, mode: str):
    B, N, D = states.shape
    items = []
    for b in range(B):
        n, t = int(n_lengths[b]), int(target_lengths[b])
        if t == 0 or n == 0:
            items.append(states.new_zeros(t, D))
            continue
        x = states[b, :n]
        if mode == "nearest":
            idx = torch.div(torch.arange(t, device=x.device) * n, t, rounding_mode="floor")
            items.append(x[idx])
        else:
            if n == 1:
                items.append(x.expand(t, D))
                continue
            y = F.interpolate(x.t()[None], size=t, mode="linear", align_corners=t > 1)[0].t()
            items.append(y)
    return _pad_list(items, D, states)[0]


def interpolate_nearest(text_states: torch.Tensor, n_lengths: torch.Tensor,
                        target_lengths: torch.Tensor) -> torch.Tensor:
    """Nearest-neighbour resampling of each utterance's N_i text states to T'_i positions.

    Output position j takes source index ``floor(j · N_i / T'_i)`` (PyTorch ``nearest`` convention).

    Args:
        text_states: (B, N, D'); n_lengths, target_lengths: (B,).
    Returns:
        (B, max T', D') zero-padded.
    """
    return _interp(text_states, n_lengths, target_lengths, "nearest")


def interpolate_linear(text_states: torch.Tensor, n_lengths: torch.Tensor,
                       target_lengths: torch.Tensor) -> torch.Tensor:
    """Linear resampling (ablation): end points map to end points (``align_corners=True``)."""
    return _interp(text_states, n_lengths, target_lengths, "linear")


class L2SLoss(nn.Module):
    """MSE between linearly projected shrunk student states and interpolated text states.

    ``loss = Σ_b Σ_{j<T'_b} ||W s_bj + c − t_bj||² / (D' · Σ_b T'_b)``. Utterances whose shrunk
    length is 0 contribute nothing; if all are empty the loss is 0 (still attached to the graph).

    Args:
        student_dim: D of the speech model; teacher_dim: D' of the text model.
        interpolation: ``"nearest"`` (paper) or ``"linear"``.
    """

    def __init__(self, student_dim: int, teacher_dim: int, interpolation: str = "nearest",
                 blank: int = 0):
        super().__init__()
        if interpolation not in ("nearest", "linear"):
            raise ValueError(f"interpolation must be nearest or linear, got {interpolation!r}")
        self.proj = nn.Linear(student_dim, teacher_dim)
        self.interpolation, self.blank = interpolation, blank

    def forward(self, hidden: torch.Tensor, ctc_log_probs: torch.Tensor, lengths: Optional[torch.Tensor],
                text_states: torch.Tensor, text_lengths: torch.Tensor) -> torch.Tensor:
        """hidden (B,T,D), ctc_log_probs (B,T,V), lengths (B,), text_states (B,N,D'), text_lengths (B,)."""
        shrunk, s_len = shrink(hidden, ctc_log_probs, lengths, self.blank)
        interp = (interpolate_nearest if self.interpolation == "nearest" else interpolate_linear)(
            text_states, text_lengths.to(s_len.device), s_len)
        pred = self.proj(shrunk)
        if pred.shape[1] == 0:
            return pred.sum() * 0.0 + self.proj.weight.sum() * 0.0
        mask = (torch.arange(pred.shape[1], device=pred.device)[None] < s_len[:, None]).to(pred.dtype)
        se = ((pred - interp.to(pred.dtype)) ** 2).mean(-1)
        return (se * mask).sum() / mask.sum().clamp_min(1.0)
