"""Transducer search: greedy and beam search (both ≤ N symbols per frame), and streaming greedy decoding.

All functions take a :class:`speechkd.models.transducer.TransducerModel` (anything with ``encoder``,
``predictor.step``, ``joiner.enc_proj/pred_proj/joint`` and ``blank_id``).

Example::

    >>> enc, enc_lengths = model.encode(feats, feat_lengths)            # (B, T', D), (B,)
    >>> hyps = greedy_search(model, enc, enc_lengths, max_symbols_per_frame=3)   # list of id lists
    >>> hyps = modified_beam_search(model, enc, enc_lengths, beam=4, max_symbols_per_frame=3)
    >>> dec = StreamingGreedyDecoder(model)                              # one utterance, (1, n, 80) pieces
    >>> for piece in pieces: dec.accept(piece)
    >>> tokens = dec.finalize()

Greedy decoding is frame-synchronous: at each frame it emits the argmax symbol until blank (or
``max_symbols_per_frame`` symbols), feeding each emitted symbol to the predictor. The streaming decoder
runs the very same per-frame step on encoder frames as they are produced chunk by chunk, so its
output equals :func:`greedy_search` on the full utterance with the same chunking.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

import torch
from torch import Tensor

from .ctc_search import log_add

__all__ = ["greedy_search", "modified_beam_search", "StreamingGreedyDecoder", "GreedyState"]


@dataclass
class GreedyState:
    """Decoding state of one utterance: emitted tokens and the predictor after the last of them."""
    tokens: List[int] = field(default_factory=list)
    pred_p: Optional[Tensor] = None          # (1, J) projected predictor output
    lstm_state: Optional[tuple] = None


def _start_state(model) -> GreedyState:
    dev = next(model.parameters()).device
    out, st = model.predictor.step(torch.tensor([model.blank_id], device=dev), None)
    return GreedyState([], model.joiner.pred_proj(out), st)


@torch.no_grad()
def _greedy_frames(model, enc_p: Tensor, state: GreedyState, max_symbols: int) -> GreedyState:
    """Advance ``state`` over projected encoder frames ``enc_p`` (T, J)."""
    dev = enc_p.device
    for t in range(enc_p.shape[0]):
        for _ in range(max_symbols):
            logits = model.joiner.joint(enc_p[t: t + 1], state.pred_p)        # (1, V)
            k = int(logits.argmax(-1))
            if k == model.blank_id:
                break
            state.tokens.append(k)
            out, state.lstm_state = model.predictor.step(torch.tensor([k], device=dev), state.lstm_state)
            state.pred_p = model.joiner.pred_proj(out)
    return state


@torch.no_grad()
def greedy_search(model, enc: Tensor, enc_lengths: Tensor, max_symbols_per_frame: int = 3) -> List[List[int]]:
    """Greedy decode of encoder output ``enc`` (B, T', D) → one token id list per utterance."""
    hyps = []
    enc_p = model.joiner.enc_proj(enc)
    for b in range(enc.shape[0]):
        st = _greedy_frames(model, enc_p[b, : int(enc_lengths[b])], _start_state(model), max_symbols_per_frame)
        hyps.append(st.tokens)
    return hyps


@torch.no_grad()
def modified_beam_search(model, enc: Tensor, enc_lengths: Tensor, beam: int = 4,
                         max_symbols_per_frame: int = 1) -> List[List[int]]:
    """Frame-synchronous beam search with at most ``max_symbols_per_frame`` symbols per frame.

    At frame t the hypotheses that are still on t (at first: all) are extended by blank, which finishes
    the frame, or by one label, which stays on t and may emit again; after ``max_symbols_per_frame``
    labels a hypothesis leaves the frame without a blank, as greedy search does. In every round the best
    ``beam`` of the finished and the still-emitting extensions survive together; hypotheses with the same
    token sequence and the same position are merged by adding their probabilities. With
    ``max_symbols_per_frame=1`` this is the "modified" beam search (a label also moves to the next frame),
    and ``beam=1`` gives exactly :func:`greedy_search` with the same ``max_symbols_per_frame``.
    Returns the best hypothesis (token ids) per utterance.
    """
    if beam < 1 or max_symbols_per_frame < 1:
        raise ValueError(f"beam ({beam}) and max_symbols_per_frame ({max_symbols_per_frame}) must be >= 1")
    dev = enc.device
    enc_p = model.joiner.enc_proj(enc)
    results = []
    for b in range(enc.shape[0]):
        start = _start_state(model)
        # hyp: tokens tuple -> (log prob, pred_p (1, J), lstm_state)
        hyps = {(): (0.0, start.pred_p, start.lstm_state)}
        for t in range(int(enc_lengths[b])):
            active, done = hyps, {}          # still emitting on frame t / finished frame t
            for _ in range(max_symbols_per_frame):
                keys = list(active)
                scores = torch.tensor([active[k][0] for k in keys], device=dev)
                pred_p = torch.cat([active[k][1] for k in keys], dim=0)                   # (H, J)
                logp = torch.log_softmax(model.joiner.joint(enc_p[b, t: t + 1], pred_p), dim=-1)   # (H, V)
                V = logp.shape[1]
                total = (scores[:, None] + logp).reshape(-1)
                # candidates of this round, and the hypotheses that already finished the frame
                cand = [(v[0], "done", k) for k, v in done.items()]
                top = torch.topk(total, min(beam, total.numel()))
                cand += [(s, "new", f) for s, f in zip(top.values.tolist(), top.indices.tolist())]
                cand.sort(key=lambda c: -c[0])
                new_done, new_active = {}, {}
                for score, kind, item in cand[:beam]:
                    if kind == "done":
                        new_done[item] = done[item]
                        continue
                    h, k = divmod(item, V)
                    prefix = keys[h]
                    if k == model.blank_id:
                        target, key, pp, ls = new_done, prefix, active[prefix][1], active[prefix][2]
                    else:
                        key = prefix + (k,)
                        out, ls = model.predictor.step(torch.tensor([k], device=dev), active[prefix][2])
                        target, pp = new_active, model.joiner.pred_proj(out)
                    if key in target:
                        old = target[key]
                        target[key] = (log_add(old[0], score), old[1], old[2])
                    else:
                        target[key] = (score, pp, ls)
                done, active = new_done, new_active
                if not active:
                    break
            for key, v in active.items():     # out of symbols on this frame: leave it without a blank
                done[key] = (log_add(done[key][0], v[0]), done[key][1], done[key][2]) if key in done else v
            hyps = done
        best = max(hyps.items(), key=lambda kv: kv[1][0])[0]
        results.append(list(best))
    return results


class StreamingGreedyDecoder:
    """Incremental greedy decoding of one utterance fed as Fbank pieces (1, n, F) of any size.

    The encoder runs chunk by chunk with cached keys/values (see
    :meth:`ChunkStreamingEncoder.streaming_forward`); every finished encoder frame is decoded at once.

    ``accept(piece) -> list of new tokens``; ``finalize() -> all tokens``; ``encoder_out`` (1, T', D)
    holds the encoder frames produced so far (for checking against the full computation).
    """

    def __init__(self, model, max_symbols_per_frame: int = 3):
        self.model = model
        self.max_symbols = max_symbols_per_frame
        self.enc_state = model.encoder.init_state()
        self.state = _start_state(model)
        self._enc: list = []

    @property
    def encoder_out(self) -> Tensor:
        return torch.cat(self._enc, dim=1) if self._enc else torch.zeros(1, 0, self.model.cfg.d_model)

    @property
    def tokens(self) -> List[int]:
        return list(self.state.tokens)

    @torch.no_grad()
    def _decode(self, enc: Tensor) -> List[int]:
        n = len(self.state.tokens)
        if enc.numel():
            self._enc.append(enc)
            self.state = _greedy_frames(self.model, self.model.joiner.enc_proj(enc[0]), self.state,
                                        self.max_symbols)
        return self.state.tokens[n:]

    def accept(self, piece: Tensor) -> List[int]:
        if piece.dim() == 2:
            piece = piece[None]
        enc, self.enc_state = self.model.encoder.streaming_forward(piece, self.enc_state)
        return self._decode(enc)

    def finalize(self) -> List[int]:
        enc, self.enc_state = self.model.encoder.streaming_forward(None, self.enc_state, final=True)
        self._decode(enc)
        return self.tokens
