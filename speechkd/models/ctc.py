"""CTC fine-tuning model: SSL encoder + dropout + Linear to the vocabulary.

Example::

    model = CTCModel(mini_ssl().cfg, vocab_size=40, freeze_frontend=True)
    log_probs, out_lengths, ssl_out = model(wav, wav_lengths)   # (B, T', 40), (B,), SSLOutput

Config section (``type: ctc``)::

    model: {type: ctc, vocab_size: 40, freeze_frontend: true, final_dropout: 0.1, encoder: {...SSLConfig...}}
"""
from __future__ import annotations

from typing import Optional

from torch import Tensor, nn

from .checkpoint import register_model
from .heads import CTCHead
from .ssl import SSLConfig, SSLModel


@register_model("ctc")
class CTCModel(nn.Module):
    """``forward(x, lengths=None, mask=None) -> (log_probs (B, T', V), out_lengths (B,), SSLOutput)``.

    ``mask=None`` applies the encoder's time/channel masking in training mode only (SpecAugment-style
    fine-tuning, as Hugging Face's Wav2Vec2ForCTC). ``freeze_frontend`` keeps the front-end (waveform
    CNN / Fbank convs) fixed: no gradients and always in eval mode.
    """

    def __init__(self, encoder_cfg: SSLConfig | dict, vocab_size: int, freeze_frontend: bool = False,
                 final_dropout: float = 0.0):
        super().__init__()
        cfg = encoder_cfg if isinstance(encoder_cfg, SSLConfig) else SSLConfig.from_dict(encoder_cfg)
        self.encoder = SSLModel(cfg)
        self.head = CTCHead(cfg.d_model, vocab_size, final_dropout)
        self.vocab_size, self.final_dropout = vocab_size, final_dropout
        self.freeze_frontend = freeze_frontend
        if freeze_frontend:
            self.encoder.feature_extractor.requires_grad_(False)

    @classmethod
    def from_config(cls, model_cfg: dict) -> "CTCModel":
        return cls(model_cfg["encoder"], int(model_cfg["vocab_size"]),
                   bool(model_cfg.get("freeze_frontend", False)), float(model_cfg.get("final_dropout", 0.0)))

    def model_config(self) -> dict:
        return {"type": "ctc", "vocab_size": self.vocab_size, "freeze_frontend": self.freeze_frontend,
                "final_dropout": self.final_dropout, "encoder": self.encoder.cfg.to_dict()}

    def train(self, mode: bool = True):
        super().train(mode)
        if self.freeze_frontend:
            self.encoder.feature_extractor.eval()
        return self

    def output_lengths(self, lengths: Tensor) -> Tensor:
        return self.encoder.output_lengths(lengths)

    def forward(self, x: Tensor, lengths: Optional[Tensor] = None, mask: Optional[bool] = None, **kw):
        if mask is None:
            mask = self.training
        out = self.encoder(x, lengths, mask=mask, **kw)
        return self.head(out.last_hidden_state), out.lengths, out
