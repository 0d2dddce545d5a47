"""Streaming transducer (RNN-T): chunk-masked transformer encoder over Fbank, LSTM predictor, joiner.

Pieces (each a small module):

- :class:`Conv2dSubsampling4`: two 3×3 stride-2 convolutions, **no time padding**, so encoder frame
  ``j`` depends exactly on input frames ``4j .. 4j+6`` (100 Hz Fbank → 25 Hz); this is what makes the
  streaming computation identical to the full one.
- :class:`ChunkStreamingEncoder`: subsampling + sinusoidal absolute positions + pre-LN
  :class:`speechkd.models.components.EncoderLayer` stack under a **chunk mask**: a frame in chunk ``k``
  sees chunks ``k - left_chunks .. k`` (its whole own chunk, nothing later; ``left_chunks < 0`` = all
  past). ``streaming_forward`` feeds Fbank pieces of any size and caches each layer's keys/values of
  the last ``left_chunks`` chunks.
- :class:`Predictor`: embedding + LSTM; the blank id is the start symbol.
- :class:`Joiner`: ``Linear(enc) + Linear(pred) → tanh → Linear(vocab)``.
- :class:`TransducerModel`: ``forward(x, x_lengths, tokens, token_lengths) -> loss`` (RNN-T loss from
  :mod:`speechkd.asr.rnnt_loss`, mean over utterances) and ``encode``. Registered as ``type: transducer``.

Example::

    >>> model = TransducerModel(vocab_size=30, d_model=64, n_layers=2, n_heads=4, ffn_dim=128,
    ...                         chunk_size=4, left_chunks=2)
    >>> x = torch.randn(2, 120, 80); x_lengths = torch.tensor([120, 97])    # Fbank (B, T, 80)
    >>> tokens = torch.tensor([[3, 5, 7], [4, 2, -1]]); token_lengths = torch.tensor([3, 2])
    >>> loss = model(x, x_lengths, tokens, token_lengths)                    # scalar
    >>> enc, enc_lengths = model.encode(x, x_lengths)                       # (2, 29, 64), tensor([29, 23])

Config section::

    model: {type: transducer, vocab_size: 40, in_dim: 80, d_model: 144, n_layers: 4, n_heads: 4,
            ffn_dim: 576, dropout: 0.1, subsampling_channels: 64, chunk_size: 8, left_chunks: 4,
            pred_embed_dim: 128, pred_dim: 256, pred_layers: 1, joint_dim: 256, blank_id: 0}
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..asr.rnnt_loss import rnnt_loss, rnnt_loss_from_joiner
from ..utils.errors import ConfigError
from .checkpoint import register_model
from .components import EncoderLayer, build_attention_mask

__all__ = ["TransducerConfig", "Conv2dSubsampling4", "ChunkStreamingEncoder", "Predictor", "Joiner",
           "TransducerModel", "chunk_attention_mask", "subsampled_lengths"]


@dataclass
class TransducerConfig:
    vocab_size: int
    in_dim: int = 80
    d_model: int = 144
    n_layers: int = 4
    n_heads: int = 4
    ffn_dim: int = 576
    dropout: float = 0.1
    subsampling_channels: int = 64
    chunk_size: int = 8          # encoder frames (40 ms each) per chunk
    left_chunks: int = 4         # chunks of left context; < 0 = unlimited
    pred_embed_dim: int = 128
    pred_dim: int = 256
    pred_layers: int = 1
    joint_dim: int = 256
    blank_id: int = 0

    @classmethod
    def from_dict(cls, d: dict) -> "TransducerConfig":
        known = {f.name for f in fields(cls)}
        bad = sorted(set(d) - known - {"type"})
        if bad:
            raise ConfigError(f"transducer config: unknown key(s) {', '.join(bad)}; known: {', '.join(sorted(known))}")
        if "vocab_size" not in d:
            raise ConfigError("transducer config: 'vocab_size' is required")
        return cls(**{k: v for k, v in d.items() if k in known})


def subsampled_lengths(lengths: Tensor) -> Tensor:
    """Frames after :class:`Conv2dSubsampling4`: ``(T - 3) // 4`` (0 below 7 input frames)."""
    return torch.div(lengths - 3, 4, rounding_mode="floor").clamp(min=0)


def chunk_attention_mask(length: int, chunk_size: int, left_chunks: int, device=None) -> Tensor:
    """(T, T) bool, True = query ``i`` may attend key ``j``: ``c(i) - left_chunks <= c(j) <= c(i)``.

    >>> chunk_attention_mask(4, 2, 0).int()
    tensor([[1, 1, 0, 0],
            [1, 1, 0, 0],
            [0, 0, 1, 1],
            [0, 0, 1, 1]], dtype=torch.int32)
    """
    c = torch.arange(length, device=device) // chunk_size
    ok = c[None, :] <= c[:, None]
    if left_chunks >= 0:
        ok &= c[None, :] >= c[:, None] - left_chunks
    return ok


def sinusoidal_positions(start: int, length: int, dim: int, device=None, dtype=torch.float32) -> Tensor:
    """(length, dim) sinusoidal encodings of absolute positions ``start .. start+length-1``."""
    pos = torch.arange(start, start + length, device=device, dtype=torch.float32)[:, None]
    inv = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    pe = torch.zeros(length, dim, device=device)
    pe[:, 0::2] = torch.sin(pos * inv)
    pe[:, 1::2] = torch.cos(pos * inv)[:, : dim // 2]
    return pe.to(dtype)


class Conv2dSubsampling4(nn.Module):
    """(B, T, F) → (B, (T-3)//4, D): Conv2d(1→C, 3, s2) → ReLU → Conv2d(C→C, 3, s2) → ReLU → Linear."""

    def __init__(self, in_dim: int, d_model: int, channels: int = 64):
        super().__init__()
        self.conv1 = nn.Conv2d(1, channels, 3, stride=2)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride=2)
        f = ((in_dim - 1) // 2 - 1) // 2
        self.out = nn.Linear(channels * f, d_model)

    def forward(self, x: Tensor) -> Tensor:
        y = F.relu(self.conv2(F.relu(self.conv1(x[:, None]))))        # (B, C, T', F')
        b, c, t, f = y.shape
        return self.out(y.transpose(1, 2).reshape(b, t, c * f))


class ChunkStreamingEncoder(nn.Module):
    """Chunk-masked transformer encoder; full (``forward``) and incremental (``streaming_forward``) use.

    ``forward(x (B, T, F), lengths (B,)) -> (out (B, T', D), out_lengths (B,))``.

    Streaming::

        state = enc.init_state()
        for piece in pieces:                                    # (B, n, F) Fbank, any n
            out, state = enc.streaming_forward(piece, state)    # (B, k, D), k whole chunks' frames
        out, state = enc.streaming_forward(None, state, final=True)   # flush the last partial chunk

    Concatenated outputs equal ``forward`` on the whole input (to float rounding).
    """

    def __init__(self, cfg: TransducerConfig):
        super().__init__()
        self.cfg = cfg
        self.subsampling = Conv2dSubsampling4(cfg.in_dim, cfg.d_model, cfg.subsampling_channels)
        self.dropout = nn.Dropout(cfg.dropout)
        self.layers = nn.ModuleList(
            EncoderLayer(cfg.d_model, cfg.n_heads, cfg.ffn_dim, cfg.dropout, cfg.dropout, 0.0,
                         layer_norm_first=True) for _ in range(cfg.n_layers))
        self.layer_norm = nn.LayerNorm(cfg.d_model)

    def _embed(self, x: Tensor, start: int) -> Tensor:
        y = self.subsampling(x)
        return self.dropout(y + sinusoidal_positions(start, y.shape[1], y.shape[2], y.device, y.dtype))

    def forward(self, x: Tensor, lengths: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        B, T, _ = x.shape
        if lengths is None:
            lengths = torch.full((B,), T, dtype=torch.long, device=x.device)
        out_lengths = subsampled_lengths(lengths)
        y = self._embed(x, 0)
        Tp = y.shape[1]
        pad = torch.arange(Tp, device=x.device)[None, :] >= out_lengths[:, None]
        y = y.masked_fill(pad[..., None], 0.0)
        mask = build_attention_mask(pad, chunk_attention_mask(Tp, self.cfg.chunk_size, self.cfg.left_chunks,
                                                              x.device), B, Tp)
        for layer in self.layers:
            y = layer(y, mask)
        return self.layer_norm(y), out_lengths

    # ------------------------------------------------------------------------------- streaming
    def init_state(self) -> dict:
        """Empty streaming state: Fbank buffer, frames emitted, per-layer key/value caches."""
        return {"feats": None, "consumed": 0, "emitted": 0, "kv": [None] * len(self.layers)}

    def _layer_step(self, layer: EncoderLayer, x: Tensor, kv: Optional[tuple]) -> tuple[Tensor, tuple]:
        """One pre-LN layer on a chunk x (B, c, D) attending to cached keys/values + its own chunk."""
        att = layer.attention
        b, c, _ = x.shape
        h = layer.layer_norm(x)
        shape = (b, c, att.n_heads, att.head_dim)
        q = att.q_proj(h).view(shape).transpose(1, 2)
        k = att.k_proj(h).view(shape).transpose(1, 2)
        v = att.v_proj(h).view(shape).transpose(1, 2)
        if kv is not None:
            k, v = torch.cat([kv[0], k], dim=2), torch.cat([kv[1], v], dim=2)
        a = F.scaled_dot_product_attention(q, k, v)
        x = x + layer.dropout(att.out_proj(a.transpose(1, 2).reshape(b, c, att.d_model)))
        x = x + layer.feed_forward(layer.final_layer_norm(x))
        keep = self.cfg.left_chunks * self.cfg.chunk_size
        if self.cfg.left_chunks >= 0:
            start = max(0, k.shape[2] - keep)
            k, v = k[:, :, start:], v[:, :, start:]
        return x, (k, v)

    @torch.no_grad()
    def streaming_forward(self, x: Optional[Tensor], state: dict, final: bool = False) -> tuple[Tensor, dict]:
        """Feed Fbank frames ``x`` (B, n, F) (or None); return the newly finished encoder frames (B, k, D).

        Only whole chunks are computed, except with ``final=True`` where the rest is flushed.
        Frame ``j`` needs input frames up to ``4j + 6``; the Fbank buffer keeps what later frames need.
        """
        state = dict(state)
        buf = state["feats"]
        if x is not None:
            buf = x if buf is None else torch.cat([buf, x], dim=1)
        if buf is None:
            return torch.zeros(0), state
        B = buf.shape[0]
        avail = state["consumed"] + buf.shape[1]                     # input frames received so far
        ready = max(0, (avail - 3) // 4)                               # encoder frames computable
        C, j0 = self.cfg.chunk_size, state["emitted"]
        j1 = j0 + (ready - j0) // C * C if not final else ready
        if j1 <= j0:
            state["feats"] = buf
            return buf.new_zeros(B, 0, self.cfg.d_model), state
        outs, kv = [], list(state["kv"])
        for s in range(j0, j1, C):
            e = min(j1, s + C)
            lo = 4 * s - state["consumed"]
            y = self._embed(buf[:, lo: lo + 4 * (e - s) + 3], s)
            for i, layer in enumerate(self.layers):
                y, kv[i] = self._layer_step(layer, y, kv[i])
            outs.append(self.layer_norm(y))
        drop = 4 * j1 - state["consumed"]                              # input frames no longer needed
        state.update(feats=buf[:, drop:], consumed=4 * j1, emitted=j1, kv=kv)
        return torch.cat(outs, dim=1), state


class Predictor(nn.Module):
    """Embedding + LSTM over ``[blank, y_1 .. y_U]``.

    ``forward(tokens (B, U) padded with anything < 0) -> (B, U+1, H)``;
    ``step(token (B,), state) -> (out (B, H), state)`` for search (``state=None`` to start).
    """

    def __init__(self, vocab_size: int, embed_dim: int, dim: int, num_layers: int = 1,
                 dropout: float = 0.0, blank_id: int = 0):
        super().__init__()
        self.blank_id = blank_id
        self.embed = nn.Embedding(vocab_size, embed_dim)
        self.lstm = nn.LSTM(embed_dim, dim, num_layers=num_layers, batch_first=True,
                            dropout=dropout if num_layers > 1 else 0.0)
        self.dropout = nn.Dropout(dropout)

    def forward(self, tokens: Tensor) -> Tensor:
        start = tokens.new_full((tokens.shape[0], 1), self.blank_id)
        inp = torch.cat([start, tokens.masked_fill(tokens < 0, self.blank_id)], dim=1)
        out, _ = self.lstm(self.dropout(self.embed(inp)))
        return out

    def step(self, token: Tensor, state: Optional[tuple] = None) -> tuple[Tensor, tuple]:
        out, state = self.lstm(self.embed(token)[:, None], state)
        return out[:, 0], state


class Joiner(nn.Module):
    """``logits = out(tanh(enc_proj(enc) + pred_proj(pred)))``.

    ``forward(enc (B, T, D), pred (B, U+1, H)) -> (B, T, U+1, V)``; search uses ``project_*`` + ``joint``
    on already projected frames/states of matching (broadcastable) shapes.
    """

    def __init__(self, enc_dim: int, pred_dim: int, joint_dim: int, vocab_size: int):
        super().__init__()
        self.enc_proj = nn.Linear(enc_dim, joint_dim)
        self.pred_proj = nn.Linear(pred_dim, joint_dim)
        self.out = nn.Linear(joint_dim, vocab_size)

    def joint(self, enc_p: Tensor, pred_p: Tensor) -> Tensor:
        return self.out(torch.tanh(enc_p + pred_p))

    def forward(self, enc: Tensor, pred: Tensor) -> Tensor:
        return self.joint(self.enc_proj(enc)[:, :, None], self.pred_proj(pred)[:, None])


@register_model("transducer")
class TransducerModel(nn.Module):
    """Streaming RNN-T. ``forward(x, x_lengths, tokens, token_lengths) -> loss`` (scalar, mean over
    utterances of ``-log P(y|x)``); ``encode(x, x_lengths) -> (enc (B, T', D), enc_lengths)``.

    ``x``: (B, T, in_dim) CMVN-normalised Fbank at 100 Hz; ``tokens``: (B, U) padded with -1.
    """

    def __init__(self, vocab_size: int, **kwargs):
        super().__init__()
        cfg = TransducerConfig(vocab_size=vocab_size, **kwargs)
        self.cfg = cfg
        self.blank_id = cfg.blank_id
        self.encoder = ChunkStreamingEncoder(cfg)
        self.predictor = Predictor(cfg.vocab_size, cfg.pred_embed_dim, cfg.pred_dim, cfg.pred_layers,
                                   cfg.dropout, cfg.blank_id)
        self.joiner = Joiner(cfg.d_model, cfg.pred_dim, cfg.joint_dim, cfg.vocab_size)

    @classmethod
    def from_config(cls, model_cfg: dict) -> "TransducerModel":
        cfg = TransducerConfig.from_dict(model_cfg)
        d = asdict(cfg)
        return cls(d.pop("vocab_size"), **d)

    def model_config(self) -> dict:
        return {"type": "transducer", **asdict(self.cfg)}

    def encode(self, x: Tensor, x_lengths: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        return self.encoder(x, x_lengths)

    def forward(self, x: Tensor, x_lengths: Tensor, tokens: Tensor, token_lengths: Tensor,
                reduction: str = "mean", joint_frame_chunk: int = 0) -> Tensor:
        """``joint_frame_chunk > 0``: the joiner runs that many frames at a time under checkpointing
        (:func:`~speechkd.asr.rnnt_loss.rnnt_loss_from_joiner`), never holding the (B, T', U+1, V) logits."""
        enc, enc_lengths = self.encode(x, x_lengths)
        if int(enc_lengths.min()) < 1:
            raise ValueError(f"transducer: input of {int(x_lengths.min())} frames is too short (need >= 7)")
        tokens = tokens[:, : int(token_lengths.max())]
        pred = self.predictor(tokens)
        if joint_frame_chunk > 0:
            return rnnt_loss_from_joiner(self.joiner.joint, self.joiner.enc_proj(enc), self.joiner.pred_proj(pred),
                                         tokens, enc_lengths, token_lengths, blank=self.blank_id,
                                         reduction=reduction, frame_chunk=joint_frame_chunk)
        logits = self.joiner(enc, pred)
        return rnnt_loss(logits, tokens, enc_lengths, token_lengths, blank=self.blank_id, reduction=reduction)
