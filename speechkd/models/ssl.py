"""Self-supervised speech encoder (wav2vec 2.0 / HuBERT / XLSR layout) with a waveform-CNN or Fbank front-end.

Example::

    model = mini_ssl(n_layers=2, d_model=64)           # thin CNN front-end, 16 kHz waveform input
    out = model(torch.randn(2, 16000), torch.tensor([16000, 12000]), mask=False)
    out.hidden_states      # list of 3 tensors (2, 49, 64); out.hidden_states[-1] is out.last_hidden_state
    out.lengths            # tensor([49, 37]); out.padding_mask (2, 49) bool, True = padding

    fb = mini_ssl(frontend="fbank")                    # (B, T, 80) CMVN-normalised fbank at 100 Hz
    out = fb(torch.randn(2, 100, 80), torch.tensor([100, 80]))   # 50 frames at 20 ms

With ``cfg.num_labels > 0`` the model owns a HuBERT masked-prediction head ``model.head``
(:class:`HubertHead`).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import List, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..utils.errors import ConfigError
from .checkpoint import register_model
from .components import (WAV2VEC2_CONV_LAYERS, ConvFeatureExtractor, FbankFrontend, FeatureProjection,
                         TransformerEncoder, lengths_to_padding_mask)
from .masking import TimeChannelMasking


FEATURE_PADDING = ("lengths", "fairseq_hubert")


def feature_padding_lengths(lengths: Tensor, n_samples: int, n_frames: int) -> Tensor:
    """Valid frames per utterance by fairseq HuBERT's rule (``HubertModel.forward_padding_mask``).

    The padded batch has ``n_samples`` samples and the CNN gives ``n_frames`` frames; the sample mask,
    cut to a multiple of ``n_frames``, is split into ``n_frames`` chunks of ``R = n_samples // n_frames``
    samples and a frame is padding only when its whole chunk is. So utterance b keeps
    ``min(n_frames, ceil(len_b / R))`` frames: usually one or two more than its conv output length (the
    frames whose receptive field runs into the padding), and all ``n_frames`` for the longest utterance.
    """
    r = max(1, n_samples // max(1, n_frames))
    return torch.clamp((lengths + r - 1) // r, max=n_frames)


@dataclass
class SSLConfig:
    """All hyper-parameters of :class:`SSLModel` (defaults: wav2vec 2.0 Base)."""

    frontend: str = "cnn"                 # "cnn" (waveform) | "fbank" ((B, T, fbank_dim) at 100 Hz)
    conv_layers: List[List[int]] = field(default_factory=lambda: [list(c) for c in WAV2VEC2_CONV_LAYERS])
    conv_norm: str = "group_norm"         # "group_norm" (first layer) | "layer_norm" (all layers)
    conv_bias: bool = False
    fbank_dim: int = 80
    fbank_channels: int = 0               # Fbank front-end conv channels; 0 = d_model
    d_model: int = 768
    n_layers: int = 12
    n_heads: int = 12
    ffn_dim: int = 3072
    layer_norm_first: bool = False        # pre-LN (XLSR / large) vs post-LN (Base)
    pos_conv_kernel: int = 128            # 0 disables the positional conv
    pos_conv_groups: int = 16
    proj_layer_norm: bool = True          # LayerNorm before the feature projection
    dropout: float = 0.1
    attention_dropout: float = 0.1
    activation_dropout: float = 0.0
    proj_dropout: float = 0.1             # dropout after the feature projection
    layerdrop: float = 0.05
    layer_norm_eps: float = 1e-5
    mask_time_prob: float = 0.05
    mask_time_length: int = 10
    mask_time_min_masks: int = 2
    mask_channel_prob: float = 0.0
    mask_channel_length: int = 10
    num_labels: int = 0                   # > 0: HuBERT masked-prediction head with that many targets
    final_dim: int = 256
    logit_temp: float = 0.1
    arch: str = "wav2vec2"                # "wav2vec2" | "hubert": export target family
    feature_padding: str = "lengths"      # which frames of a padded batch are padding: "lengths" (conv output
                                          # lengths, wav2vec 2.0 and Hugging Face) | "fairseq_hubert" (fairseq
                                          # HuBERT: a frame is padding when all its samples are; see
                                          # feature_padding_lengths)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["conv_layers"] = [list(c) for c in self.conv_layers]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "SSLConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names - {"type"})
        if unknown:
            raise ConfigError(f"unknown SSL model config key(s): {', '.join(unknown)}; "
                              f"known: {', '.join(sorted(names))}")
        cfg = cls(**{k: v for k, v in d.items() if k in names})
        cfg.conv_layers = [list(c) for c in cfg.conv_layers]
        if cfg.frontend not in ("cnn", "fbank"):
            raise ConfigError(f"frontend must be 'cnn' or 'fbank', got '{cfg.frontend}'")
        if cfg.feature_padding not in FEATURE_PADDING:
            raise ConfigError(f"feature_padding must be one of {', '.join(FEATURE_PADDING)}, "
                              f"got '{cfg.feature_padding}'")
        return cfg


@dataclass
class SSLOutput:
    """Output of :meth:`SSLModel.forward` (T' = encoder frames at 20 ms)."""

    hidden_states: List[Tensor]           # n_layers + 1 tensors (B, T', D)
    last_hidden_state: Tensor             # (B, T', D) == hidden_states[-1]
    lengths: Tensor                       # (B,) valid frames
    padding_mask: Tensor                  # (B, T') bool, True = padding
    mask_indices: Optional[Tensor]        # (B, T') bool, True = masked, or None
    frontend_out: Tensor                  # (B, T', D) front-end + projection (encoder input, unmasked)


class HubertHead(nn.Module):
    """HuBERT masked-prediction head: ``logits = cos(final_proj(x), label_embs) / logit_temp``.

    Shapes: ``project(x (B, T, D)) -> (B, T, final_dim)``; ``logits(x (B, T, D)) -> (B, T, num_labels)``.
    """

    def __init__(self, d_model: int, final_dim: int, num_labels: int, logit_temp: float = 0.1):
        super().__init__()
        self.final_proj = nn.Linear(d_model, final_dim)
        self.label_embs = nn.Parameter(torch.empty(num_labels, final_dim).uniform_())
        self.logit_temp = logit_temp

    def project(self, x: Tensor) -> Tensor:
        return self.final_proj(x)

    def logits(self, x: Tensor) -> Tensor:
        proj = F.normalize(self.final_proj(x), dim=-1)
        return proj @ F.normalize(self.label_embs, dim=-1).t() / self.logit_temp


@register_model("ssl")
class SSLModel(nn.Module):
    """Front-end -> feature projection -> (masking) -> transformer encoder.

    ``forward(x, lengths=None, mask=False, attn_mask=None, generator=None) -> SSLOutput``:
    x is (B, S) waveform (``frontend="cnn"``) or (B, T, fbank_dim) fbank (``frontend="fbank"``);
    ``lengths`` (B,) in input samples/frames; ``mask=True`` applies time/channel masking (the
    masked frames are in ``mask_indices``); ``attn_mask`` (T', T') bool True=may attend (e.g. a chunk
    mask for streaming) is passed to every attention layer.
    """

    def __init__(self, cfg: SSLConfig | dict):
        super().__init__()
        if isinstance(cfg, dict):
            cfg = SSLConfig.from_dict(cfg)
        self.cfg = cfg
        if cfg.frontend == "cnn":
            self.feature_extractor = ConvFeatureExtractor(cfg.conv_layers, cfg.conv_norm, cfg.conv_bias,
                                                          cfg.layer_norm_eps)
        else:
            self.feature_extractor = FbankFrontend(cfg.fbank_dim, cfg.fbank_channels or cfg.d_model)
        self.feature_projection = FeatureProjection(self.feature_extractor.out_dim, cfg.d_model,
                                                    cfg.proj_dropout, cfg.proj_layer_norm, cfg.layer_norm_eps)
        self.masking = TimeChannelMasking(cfg.d_model, cfg.mask_time_prob, cfg.mask_time_length,
                                          cfg.mask_channel_prob, cfg.mask_channel_length,
                                          cfg.mask_time_min_masks)
        self.encoder = TransformerEncoder(cfg.d_model, cfg.n_layers, cfg.n_heads, cfg.ffn_dim, cfg.dropout,
                                          cfg.attention_dropout, cfg.activation_dropout, cfg.layer_norm_first,
                                          cfg.pos_conv_kernel, cfg.pos_conv_groups, cfg.layerdrop,
                                          cfg.layer_norm_eps)
        self.head = (HubertHead(cfg.d_model, cfg.final_dim, cfg.num_labels, cfg.logit_temp)
                     if cfg.num_labels > 0 else None)

    # -- registry hooks (speechkd.models.checkpoint)
    @classmethod
    def from_config(cls, model_cfg: dict) -> "SSLModel":
        return cls(SSLConfig.from_dict(model_cfg))

    def model_config(self) -> dict:
        return {"type": "ssl", **self.cfg.to_dict()}

    def output_lengths(self, lengths: Tensor) -> Tensor:
        """Input lengths (samples or fbank frames) -> encoder frame counts."""
        return self.feature_extractor.output_lengths(lengths)

    def extract_features(self, x: Tensor, lengths: Optional[Tensor] = None):
        """Front-end + projection: -> ((B, T', D), lengths (B,))."""
        feats, out_lengths = self.feature_extractor(x, lengths)
        if out_lengths is not None and self.cfg.feature_padding == "fairseq_hubert" and self.cfg.frontend == "cnn":
            out_lengths = feature_padding_lengths(lengths, x.shape[-1], feats.shape[1])
        if out_lengths is None:
            out_lengths = torch.full((feats.size(0),), feats.size(1), dtype=torch.long, device=feats.device)
        return self.feature_projection(feats), out_lengths

    def forward(self, x: Tensor, lengths: Optional[Tensor] = None, mask: bool = False,
                attn_mask: Optional[Tensor] = None, generator: Optional[torch.Generator] = None,
                mask_indices: Optional[Tensor] = None) -> SSLOutput:
        frontend_out, out_lengths = self.extract_features(x, lengths)
        padding_mask = lengths_to_padding_mask(out_lengths, frontend_out.size(1))
        h = frontend_out
        if mask or mask_indices is not None:
            h, mask_indices = self.masking(h, out_lengths, generator, time_mask=mask_indices)
        hidden = self.encoder(h, padding_mask, attn_mask, generator)
        return SSLOutput(hidden_states=hidden, last_hidden_state=hidden[-1], lengths=out_lengths,
                         padding_mask=padding_mask, mask_indices=mask_indices, frontend_out=frontend_out)


# ------------------------------------------------------------------------------------------- factories
def _make(base: dict, overrides: dict) -> SSLModel:
    d = {**base, **overrides}
    return SSLModel(SSLConfig.from_dict(d))


def wav2vec2_base(**overrides) -> SSLModel:
    """wav2vec 2.0 Base: 12 post-LN layers, d=768, group-norm CNN (95M params)."""
    return _make({}, overrides)


def hubert_base(**overrides) -> SSLModel:
    """HuBERT Base: as wav2vec 2.0 Base plus the masked-prediction head (504 labels, final_dim 256)."""
    return _make({"arch": "hubert", "num_labels": 504, "final_dim": 256, "mask_time_prob": 0.8}, overrides)


def xlsr_large(**overrides) -> SSLModel:
    """XLSR-53: 24 pre-LN layers, d=1024, 16 heads, FFN 4096, layer-norm CNN with bias (315M params)."""
    return _make({"d_model": 1024, "n_layers": 24, "n_heads": 16, "ffn_dim": 4096, "layer_norm_first": True,
                  "conv_norm": "layer_norm", "conv_bias": True, "final_dim": 768, "layerdrop": 0.1}, overrides)


MINI_SSL = {
    "conv_layers": [[32, 10, 5]] + [[64, 3, 2]] * 4 + [[64, 2, 2]] * 2,  # thin CNN: ~4x cheaper than 256 ch
    "d_model": 192, "n_layers": 4, "n_heads": 4, "ffn_dim": 768,
    "pos_conv_kernel": 32, "pos_conv_groups": 8, "final_dim": 64, "layerdrop": 0.0,
    "dropout": 0.1, "attention_dropout": 0.1, "proj_dropout": 0.1,
}


def mini_ssl(**overrides) -> SSLModel:
    """Mini teacher/student for the synthetic-speech recipes (thin CNN <= 64 channels, 4 x 192)."""
    return _make(MINI_SSL, overrides)
