"""Span masking of encoder inputs: the time masks of HuBERT / wav2vec 2.0 pretraining (masked spans replaced
by a learned embedding) and SpecAugment-style channel masks in fine-tuning.

    m = compute_mask_indices((2, 500), mask_prob=0.8, mask_length=10)   # (2, 500) bool, ~half the frames
    x, time_mask = TimeChannelMasking(192, mask_time_prob=0.8)(torch.randn(2, 500, 192))
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn


def compute_mask_indices(shape, mask_prob: float, mask_length: int, lengths: Optional[Tensor] = None,
                         min_masks: int = 0, generator: Optional[torch.Generator] = None,
                         device=None) -> Tensor:
    """SpecAugment-style span mask (Hugging Face / fairseq ``compute_mask_indices`` semantics).

    Per utterance of valid length L: ``n = max(min_masks, int(mask_prob * L / mask_length + u))`` span
    starts (``u`` ~ U[0, 1), probabilistic rounding, drawn once per batch) are drawn without replacement
    from ``[0, L - mask_length]``; each span covers ``mask_length`` frames. Spans may overlap, so the
    masked fraction is ``1 - (1 - p/l)^l``-ish, below ``mask_prob`` for ``mask_length > 1``; for
    ``mask_length == 1`` it is ``mask_prob`` up to rounding.

    Args:
        shape: (B, T). lengths: (B,) valid lengths or None (all T).
        generator: torch.Generator for reproducible masks (CPU generator).
    Returns:
        (B, T) bool, True = masked; never masks padding.
    """
    b, t = shape
    if mask_length < 1:
        raise ValueError("mask_length must be >= 1")
    out = torch.zeros(b, t, dtype=torch.bool)
    lens = [t] * b if lengths is None else [int(v) for v in lengths.tolist()]
    u = torch.rand((), generator=generator).item()
    for i, n_valid in enumerate(lens):
        n_starts = n_valid - mask_length + 1
        if n_starts <= 0 or mask_prob <= 0:
            continue
        n = max(min_masks, int(mask_prob * n_valid / mask_length + u))
        n = min(n, n_starts)
        if n <= 0:
            continue
        starts = torch.randperm(n_starts, generator=generator)[:n]
        idx = (starts[:, None] + torch.arange(mask_length)[None, :]).reshape(-1)
        out[i, idx] = True
    return out if device is None else out.to(device)


class TimeChannelMasking(nn.Module):
    """Replace masked time spans with a learned embedding and zero masked channel spans.

    ``forward(x (B, T, D), lengths (B,) or None, generator=None) -> (x, time_mask (B, T) bool)``.
    Time spans: ``mask_time_prob``/``mask_time_length``; channel spans (same for all frames of one
    utterance): ``mask_channel_prob``/``mask_channel_length``.
    """

    def __init__(self, d_model: int, mask_time_prob: float = 0.0, mask_time_length: int = 10,
                 mask_channel_prob: float = 0.0, mask_channel_length: int = 10, min_masks: int = 2):
        super().__init__()
        self.masked_spec_embed = nn.Parameter(torch.empty(d_model).uniform_())
        self.mask_time_prob, self.mask_time_length = mask_time_prob, mask_time_length
        self.mask_channel_prob, self.mask_channel_length = mask_channel_prob, mask_channel_length
        self.min_masks = min_masks

    def forward(self, x: Tensor, lengths: Optional[Tensor] = None,
                generator: Optional[torch.Generator] = None, time_mask: Optional[Tensor] = None):
        b, t, d = x.shape
        if time_mask is None and self.mask_time_prob > 0:
            time_mask = compute_mask_indices((b, t), self.mask_time_prob, self.mask_time_length, lengths,
                                             self.min_masks, generator, x.device)
        if time_mask is not None:
            x = torch.where(time_mask[..., None], self.masked_spec_embed.to(x.dtype), x)
        if self.mask_channel_prob > 0:
            ch = compute_mask_indices((b, d), self.mask_channel_prob, self.mask_channel_length, None,
                                      0, generator, x.device)
            x = x.masked_fill(ch[:, None, :], 0.0)
        return x, time_mask
