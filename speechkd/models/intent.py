"""Intent classifier on a speech SSL encoder: :class:`IntentModel` = :class:`~speechkd.models.ssl.SSLModel`
+ :class:`~speechkd.models.heads.IntentHead` (mean pooling + MLP), registered as model ``type: intent``.

Example::

    model = IntentModel(mini_ssl().cfg.to_dict(), ["lights_on", "lights_off"], hidden_dim=128)
    logits = model(fbank, lengths)                       # (B, T, 80), (B,) -> (B, 2)

Training and evaluation: :mod:`speechkd.train.intent`.
"""
from __future__ import annotations

from typing import Optional, Sequence

from torch import Tensor, nn

from .checkpoint import register_model
from .heads import IntentHead
from .ssl import SSLConfig, SSLModel

__all__ = ["IntentModel"]


@register_model("intent")
class IntentModel(nn.Module):
    """SSL encoder + intent head. ``forward(x, lengths) -> logits (B, num_intents)``.

    Config (``model:`` of the checkpoint): ``encoder`` (SSLConfig dict), ``intents`` (label list),
    ``hidden_dim``, ``dropout``, ``layer`` (hidden-state index pooled), ``freeze_frontend``.
    """

    def __init__(self, encoder_cfg: dict, intents: Sequence[str], hidden_dim: int = 256, dropout: float = 0.1,
                 layer: int = -1, freeze_frontend: bool = True):
        super().__init__()
        self.encoder = SSLModel(SSLConfig.from_dict(dict(encoder_cfg, num_labels=0)))
        self.intents = list(intents)
        self.layer, self.freeze_frontend = layer, freeze_frontend
        self.hidden_dim, self.dropout = hidden_dim, dropout
        self.head = IntentHead(self.encoder.cfg.d_model, len(self.intents), hidden_dim, dropout)
        if freeze_frontend:
            for p in self.encoder.feature_extractor.parameters():
                p.requires_grad_(False)

    @classmethod
    def from_config(cls, model_cfg: dict) -> "IntentModel":
        return cls(model_cfg["encoder"], model_cfg["intents"], int(model_cfg.get("hidden_dim", 256)),
                   float(model_cfg.get("dropout", 0.1)), int(model_cfg.get("layer", -1)),
                   bool(model_cfg.get("freeze_frontend", True)))

    def model_config(self) -> dict:
        return {"type": "intent", "encoder": self.encoder.cfg.to_dict(), "intents": self.intents,
                "hidden_dim": self.hidden_dim, "dropout": self.dropout, "layer": self.layer,
                "freeze_frontend": self.freeze_frontend}

    def forward(self, x: Tensor, lengths: Optional[Tensor] = None) -> Tensor:
        out = self.encoder(x, lengths, mask=self.training)
        return self.head(out.hidden_states[self.layer], out.padding_mask)
