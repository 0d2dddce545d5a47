"""Task heads on top of an encoder's hidden states.

Example::

    ctc = CTCHead(d_model=192, vocab_size=40, dropout=0.1)
    log_probs = ctc(h)                                   # h (B, T, 192) -> (B, T, 40) log-probabilities

    intent = IntentHead(d_model=192, num_intents=7, hidden_dim=128)
    logits = intent(h, padding_mask)                     # (B, T, 192), (B, T) bool -> (B, 7)
"""
from __future__ import annotations

from typing import Optional

import torch.nn.functional as F
from torch import Tensor, nn


class CTCHead(nn.Module):
    """Dropout + Linear to the vocabulary (blank = 0) + log-softmax. Shapes: (B, T, D) -> (B, T, V)."""

    def __init__(self, d_model: int, vocab_size: int, dropout: float = 0.0):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.proj = nn.Linear(d_model, vocab_size)

    def logits(self, x: Tensor) -> Tensor:
        return self.proj(self.dropout(x))

    def forward(self, x: Tensor) -> Tensor:
        return F.log_softmax(self.logits(x).float(), dim=-1)


def masked_mean(x: Tensor, padding_mask: Optional[Tensor] = None) -> Tensor:
    """Mean over time of (B, T, D), ignoring frames where ``padding_mask`` (B, T) is True -> (B, D)."""
    if padding_mask is None:
        return x.mean(dim=1)
    keep = (~padding_mask).to(x.dtype)[..., None]
    return (x * keep).sum(dim=1) / keep.sum(dim=1).clamp(min=1.0)


class IntentHead(nn.Module):
    """Utterance-level classifier: masked mean pooling + MLP (Linear-GELU-dropout-Linear).

    ``forward(x (B, T, D), padding_mask (B, T) bool True=pad or None) -> logits (B, num_intents)``;
    ``pool(x, padding_mask) -> (B, D)`` is the utterance embedding (e.g. for utterance-level distillation).
    """

    def __init__(self, d_model: int, num_intents: int, hidden_dim: int = 256, dropout: float = 0.1):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(d_model, hidden_dim), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(hidden_dim, num_intents))

    def pool(self, x: Tensor, padding_mask: Optional[Tensor] = None) -> Tensor:
        return masked_mean(x, padding_mask)

    def forward(self, x: Tensor, padding_mask: Optional[Tensor] = None) -> Tensor:
        return self.mlp(self.pool(x, padding_mask))
