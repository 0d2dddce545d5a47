"""Small building blocks of the SSL speech encoders (wav2vec 2.0 / HuBERT / XLSR and Fbank students).

Each module does one job and documents its tensor shapes; :mod:`speechkd.models.ssl` assembles them (with
the span masking of :mod:`speechkd.models.masking`).
Parameter names follow Hugging Face's ``Wav2Vec2Model`` layout where a counterpart exists, so weight
conversion (:mod:`speechkd.models.convert`) is a plain key rename.

Example::

    fe = ConvFeatureExtractor([(32, 10, 5), (32, 3, 2)], mode="group_norm")
    feats, lens = fe(torch.randn(2, 16000), torch.tensor([16000, 8000]))   # (2, T', 32), (2,)
    enc = TransformerEncoder(d_model=64, n_layers=2, n_heads=4, ffn_dim=128)
    hs = enc(FeatureProjection(32, 64)(feats), padding_mask=lengths_to_padding_mask(lens, feats.size(1)))
    # hs: list of 3 tensors (2, T', 64); hs[-1] is the encoder output
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

ConvSpec = Sequence[Sequence[int]]  # [(out_channels, kernel, stride), ...]

#: wav2vec 2.0 / HuBERT / XLSR waveform CNN: 7 layers, total stride 320 (20 ms at 16 kHz)
WAV2VEC2_CONV_LAYERS = [(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512, 2, 2)] * 2


def lengths_to_padding_mask(lengths: Optional[Tensor], max_len: int) -> Optional[Tensor]:
    """(B,) lengths -> (B, max_len) bool mask, True = padding. ``None`` stays ``None``."""
    if lengths is None:
        return None
    return torch.arange(max_len, device=lengths.device)[None, :] >= lengths[:, None]


def conv_output_length(lengths: Tensor, kernel: int, stride: int, padding: int = 0) -> Tensor:
    """Output length of a 1-D convolution (no dilation): floor((L + 2p - k) / s) + 1, clamped at 0."""
    return torch.clamp(torch.div(lengths + 2 * padding - kernel, stride, rounding_mode="floor") + 1, min=0)


# ----------------------------------------------------------------------------------------- front-ends
class ConvLayerBlock(nn.Module):
    """Conv1d -> optional norm -> GELU, one layer of the waveform CNN.

    Args:
        in_ch, out_ch, kernel, stride: convolution geometry.
        bias: conv bias (fairseq ``conv_bias``).
        norm: ``None``, ``"group_norm"`` (GroupNorm with one group per channel, i.e. per-channel
            normalisation over time) or ``"layer_norm"`` (LayerNorm over channels at each frame).

    Shapes: (B, C_in, L) -> (B, C_out, L').
    """

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, bias: bool = False,
                 norm: Optional[str] = None, eps: float = 1e-5):
        super().__init__()
        self.kernel, self.stride = kernel, stride
        self.conv = nn.Conv1d(in_ch, out_ch, kernel, stride=stride, bias=bias)
        if norm == "group_norm":
            self.layer_norm = nn.GroupNorm(out_ch, out_ch, eps=eps, affine=True)
        elif norm == "layer_norm":
            self.layer_norm = nn.LayerNorm(out_ch, eps=eps)
        elif norm is None:
            self.layer_norm = None
        else:
            raise ValueError(f"unknown conv norm '{norm}'")
        self.norm = norm

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(x)
        if self.norm == "layer_norm":
            x = self.layer_norm(x.transpose(1, 2)).transpose(1, 2)
        elif self.norm == "group_norm":
            x = self.layer_norm(x)
        return F.gelu(x)


class ConvFeatureExtractor(nn.Module):
    """wav2vec 2.0 waveform CNN.

    Args:
        conv_layers: list of ``(dim, kernel, stride)``.
        mode: ``"group_norm"`` (GroupNorm on the first layer only, wav2vec 2.0 / HuBERT Base) or
            ``"layer_norm"`` (LayerNorm after every layer, XLSR / large models).
        bias: conv bias.

    Shapes: ``forward(wav (B, S), lengths (B,) or None) -> (feats (B, T, C), lengths (B,) or None)``.
    """

    def __init__(self, conv_layers: ConvSpec = WAV2VEC2_CONV_LAYERS, mode: str = "group_norm",
                 bias: bool = False, eps: float = 1e-5):
        super().__init__()
        if mode not in ("group_norm", "layer_norm"):
            raise ValueError(f"conv_norm must be 'group_norm' or 'layer_norm', got '{mode}'")
        blocks, in_ch = [], 1
        for i, (dim, kernel, stride) in enumerate(conv_layers):
            norm = "layer_norm" if mode == "layer_norm" else ("group_norm" if i == 0 else None)
            blocks.append(ConvLayerBlock(in_ch, dim, kernel, stride, bias=bias, norm=norm, eps=eps))
            in_ch = dim
        self.conv_layers = nn.ModuleList(blocks)
        self.out_dim = in_ch

    def output_lengths(self, lengths: Tensor) -> Tensor:
        for block in self.conv_layers:
            lengths = conv_output_length(lengths, block.kernel, block.stride)
        return lengths

    def forward(self, x: Tensor, lengths: Optional[Tensor] = None):
        if x.dim() != 2:
            raise ValueError(f"waveform input must be (B, S), got {tuple(x.shape)}")
        x = x[:, None]
        for block in self.conv_layers:
            x = block(x)
        x = x.transpose(1, 2)
        if lengths is not None:
            lengths = self.output_lengths(lengths)
        return x, lengths


class FbankFrontend(nn.Module):
    """Fbank front-end: (B, T, F) features at 100 Hz -> (B, ceil(T/2), C) at the encoder's 20 ms rate.

    Two Conv1d layers (kernel 3, padding 1; strides 1 and 2) with GELU, i.e. x2 subsampling. This is
    the cheap replacement of the waveform CNN (see facts-measured.md: ~25x faster).

    Example::

        fe = FbankFrontend(80, 256)
        y, ylen = fe(torch.randn(2, 100, 80), torch.tensor([100, 61]))   # (2, 50, 256), [50, 31]
    """

    def __init__(self, in_dim: int = 80, channels: int = 512):
        super().__init__()
        self.conv1 = nn.Conv1d(in_dim, channels, 3, stride=1, padding=1)
        self.conv2 = nn.Conv1d(channels, channels, 3, stride=2, padding=1)
        self.in_dim, self.out_dim = in_dim, channels

    @staticmethod
    def output_lengths(lengths: Tensor) -> Tensor:
        return conv_output_length(lengths, 3, 2, padding=1)  # = (T - 1) // 2 + 1

    def forward(self, x: Tensor, lengths: Optional[Tensor] = None):
        if x.dim() != 3 or x.size(-1) != self.in_dim:
            raise ValueError(f"fbank input must be (B, T, {self.in_dim}), got {tuple(x.shape)}")
        pad = lengths_to_padding_mask(lengths, x.size(1))
        if pad is not None:  # zero the padding so it cannot leak into valid frames
            x = x.masked_fill(pad[..., None], 0.0)
        y = F.gelu(self.conv1(x.transpose(1, 2)))
        if pad is not None:  # as the zero padding a lone utterance gets: batching changes nothing
            y = y.masked_fill(pad[:, None, :], 0.0)
        y = F.gelu(self.conv2(y)).transpose(1, 2)
        return y, (self.output_lengths(lengths) if lengths is not None else None)


class FeatureProjection(nn.Module):
    """LayerNorm (optional) + Linear + dropout: front-end channels -> model dimension.

    Shapes: (B, T, in_dim) -> (B, T, out_dim).
    """

    def __init__(self, in_dim: int, out_dim: int, dropout: float = 0.0, layer_norm: bool = True,
                 eps: float = 1e-5):
        super().__init__()
        self.layer_norm = nn.LayerNorm(in_dim, eps=eps) if layer_norm else None
        self.projection = nn.Linear(in_dim, out_dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        if self.layer_norm is not None:
            x = self.layer_norm(x)
        return self.dropout(self.projection(x))


# ---------------------------------------------------------------------------------------- encoder
class ConvPositionalEmbedding(nn.Module):
    """Relative position by a weight-normalised grouped convolution (wav2vec 2.0).

    Args:
        d_model: channels; kernel: kernel size (128 in Base); groups: conv groups (16 in Base).
        For an even kernel the last output frame is dropped so the length is kept.

    Shapes: (B, T, D) -> (B, T, D) (the embedding only; the caller adds it to the input).
    """

    def __init__(self, d_model: int, kernel: int = 128, groups: int = 16):
        super().__init__()
        conv = nn.Conv1d(d_model, d_model, kernel, padding=kernel // 2, groups=groups)
        std = math.sqrt(4.0 / (kernel * d_model))
        nn.init.normal_(conv.weight, mean=0.0, std=std)
        nn.init.zeros_(conv.bias)
        self.conv = nn.utils.parametrizations.weight_norm(conv, name="weight", dim=2)
        self.num_remove = 1 if kernel % 2 == 0 else 0

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv(x.transpose(1, 2))
        if self.num_remove:
            y = y[..., : -self.num_remove]
        return F.gelu(y).transpose(1, 2)


def build_attention_mask(padding_mask: Optional[Tensor], attn_mask: Optional[Tensor],
                         batch: int, length: int) -> Optional[Tensor]:
    """Combine a key padding mask and an extra mask into one SDPA boolean mask (True = may attend).

    Args:
        padding_mask: (B, T) bool, True = padding, or None.
        attn_mask: (T, T) or (B, T, T) bool (True = may attend) or additive float mask, or None.
    Returns:
        None (attend everywhere: fastest kernels) or a bool / float mask broadcastable to (B, 1, T, T)
        ((B, 1, 1, T) for padding alone). Rows that would
        attend to nothing (e.g. padded query frames under a chunk mask) are opened fully, so no NaN
        ever appears (their outputs are padding anyway).
    """
    if padding_mask is None and attn_mask is None:
        return None
    if attn_mask is not None and attn_mask.dtype != torch.bool:
        mask = attn_mask if attn_mask.dim() == 4 else attn_mask.reshape(-1, 1, length, length)
        if padding_mask is not None:
            mask = mask.masked_fill(padding_mask[:, None, None, :], float("-inf"))
            dead = torch.isinf(mask).all(-1, keepdim=True)
            mask = mask.masked_fill(dead, 0.0)
        return mask
    allowed = None
    if padding_mask is not None:  # (B, 1, 1, T): broadcast over queries, no T x T tensor needed
        allowed = (~padding_mask)[:, None, None, :]
    if attn_mask is not None:
        am = attn_mask if attn_mask.dim() == 4 else attn_mask.reshape(-1, 1, length, length)
        allowed = am if allowed is None else allowed & am
    dead = ~allowed.any(-1, keepdim=True)
    return allowed | dead


class SelfAttention(nn.Module):
    """Multi-head self-attention through ``F.scaled_dot_product_attention``.

    Shapes: ``forward(x (B, T, D), mask)`` -> (B, T, D), where ``mask`` comes from
    :func:`build_attention_mask` (None, or (B|1, 1, T, T) bool True = may attend / additive float).
    """

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0, bias: bool = True):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model {d_model} is not divisible by n_heads {n_heads}")
        self.d_model, self.n_heads, self.head_dim = d_model, n_heads, d_model // n_heads
        self.dropout = dropout
        self.k_proj = nn.Linear(d_model, d_model, bias=bias)
        self.v_proj = nn.Linear(d_model, d_model, bias=bias)
        self.q_proj = nn.Linear(d_model, d_model, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)

    def forward(self, x: Tensor, mask: Optional[Tensor] = None) -> Tensor:
        b, t, _ = x.shape
        shape = (b, t, self.n_heads, self.head_dim)
        q = self.q_proj(x).view(shape).transpose(1, 2)
        k = self.k_proj(x).view(shape).transpose(1, 2)
        v = self.v_proj(x).view(shape).transpose(1, 2)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.out_proj(y.transpose(1, 2).reshape(b, t, self.d_model))


class FeedForward(nn.Module):
    """Linear -> GELU -> dropout -> Linear -> dropout. Shapes: (B, T, D) -> (B, T, D)."""

    def __init__(self, d_model: int, ffn_dim: int, activation_dropout: float = 0.0, dropout: float = 0.0):
        super().__init__()
        self.intermediate_dense = nn.Linear(d_model, ffn_dim)
        self.intermediate_dropout = nn.Dropout(activation_dropout)
        self.output_dense = nn.Linear(ffn_dim, d_model)
        self.output_dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        x = self.intermediate_dropout(F.gelu(self.intermediate_dense(x)))
        return self.output_dropout(self.output_dense(x))


class EncoderLayer(nn.Module):
    """Transformer layer; post-LN (wav2vec 2.0 / HuBERT Base) or pre-LN (``layer_norm_first``: XLSR, large).

    post-LN: x = LN(x + drop(attn(x))); x = LN_f(x + ffn(x))
    pre-LN:  x = x + drop(attn(LN(x)));   x = x + ffn(LN_f(x))

    Shapes: (B, T, D) -> (B, T, D).
    """

    def __init__(self, d_model: int, n_heads: int, ffn_dim: int, dropout: float = 0.1,
                 attention_dropout: float = 0.1, activation_dropout: float = 0.0,
                 layer_norm_first: bool = False, eps: float = 1e-5):
        super().__init__()
        self.attention = SelfAttention(d_model, n_heads, attention_dropout)
        self.dropout = nn.Dropout(dropout)
        self.layer_norm = nn.LayerNorm(d_model, eps=eps)
        self.feed_forward = FeedForward(d_model, ffn_dim, activation_dropout, dropout)
        self.final_layer_norm = nn.LayerNorm(d_model, eps=eps)
        self.layer_norm_first = layer_norm_first

    def forward(self, x: Tensor, mask: Optional[Tensor] = None) -> Tensor:
        if self.layer_norm_first:
            x = x + self.dropout(self.attention(self.layer_norm(x), mask))
            return x + self.feed_forward(self.final_layer_norm(x))
        x = self.layer_norm(x + self.dropout(self.attention(x, mask)))
        return self.final_layer_norm(x + self.feed_forward(x))


class TransformerEncoder(nn.Module):
    """Positional conv + stack of :class:`EncoderLayer` with layer drop.

    Returns all hidden states in Hugging Face's convention: a list of ``n_layers + 1`` tensors
    (B, T, D); ``[0]`` is the first layer's input (after positional conv, and LayerNorm for post-LN),
    ``[i]`` the output of layer i, and ``[-1]`` the encoder output (for pre-LN after the final
    LayerNorm, as in transformers 4.x; a layer dropped by layer drop repeats its input).

    Args:
        pos_conv_kernel: 0 disables the positional conv (e.g. streaming encoders).
        layerdrop: probability of skipping each layer, training only.

    ``forward(x (B, T, D), padding_mask (B, T) bool True=pad or None, attn_mask (T, T)/(B, T, T) bool
    True=may attend or None, generator=None) -> list[Tensor]``.
    """

    def __init__(self, d_model: int, n_layers: int, n_heads: int, ffn_dim: int, dropout: float = 0.1,
                 attention_dropout: float = 0.1, activation_dropout: float = 0.0,
                 layer_norm_first: bool = False, pos_conv_kernel: int = 128, pos_conv_groups: int = 16,
                 layerdrop: float = 0.0, eps: float = 1e-5):
        super().__init__()
        self.pos_conv_embed = (ConvPositionalEmbedding(d_model, pos_conv_kernel, pos_conv_groups)
                               if pos_conv_kernel > 0 else None)
        self.layer_norm = nn.LayerNorm(d_model, eps=eps)
        self.dropout = nn.Dropout(dropout)
        self.layers = nn.ModuleList(
            EncoderLayer(d_model, n_heads, ffn_dim, dropout, attention_dropout, activation_dropout,
                         layer_norm_first, eps) for _ in range(n_layers))
        self.layer_norm_first = layer_norm_first
        self.layerdrop = layerdrop

    def forward(self, x: Tensor, padding_mask: Optional[Tensor] = None, attn_mask: Optional[Tensor] = None,
                generator: Optional[torch.Generator] = None) -> list:
        if padding_mask is not None:
            x = x.masked_fill(padding_mask[..., None], 0.0)
            if not padding_mask.any() and attn_mask is None:
                padding_mask = None  # nothing padded: let SDPA use its unmasked kernels
        if self.pos_conv_embed is not None:
            x = x + self.pos_conv_embed(x)
        if not self.layer_norm_first:
            x = self.layer_norm(x)
        x = self.dropout(x)
        mask = build_attention_mask(padding_mask, attn_mask, x.size(0), x.size(1))
        hidden = []
        for layer in self.layers:
            hidden.append(x)
            if self.training and self.layerdrop > 0:
                if torch.rand((), generator=generator).item() < self.layerdrop:
                    continue
            x = layer(x, mask)
        if self.layer_norm_first:
            x = self.layer_norm(x)
        hidden.append(x)
        return hidden
