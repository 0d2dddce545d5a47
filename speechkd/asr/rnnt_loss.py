"""RNN-T (transducer) loss in pure PyTorch.

The loss is ``-log P(y | x)`` summed over all alignments of the output lattice (Graves 2012). Node
``(t, u)`` of the lattice (``0 <= t < T``, ``0 <= u <= U``) emits either blank (move to ``t + 1``) or the
next label ``y[u]`` (move to ``u + 1``); the terminal is reached by the blank out of ``(T - 1, U)``.

How it is computed here:

1. Only two log-probabilities per node are needed, so they are **gathered first**: ``blank_lp`` and
   ``label_lp``, two ``(B, T, U+1)`` fp32 tensors. With logits as input the log-softmax normaliser is
   computed by :class:`_GatherLogProbs` (optionally in batch chunks, ``batch_chunk``), whose backward
   rebuilds the softmax chunk by chunk, so nothing of size ``(B, T, U+1, V)`` is kept besides the logits
   themselves and their gradient.
2. The forward variables ``alpha`` (and the backward variables ``beta``) are computed one
   **anti-diagonal** ``t + u = n`` at a time, vectorised over batch and diagonal. The lattice is stored
   *skewed* (row ``n``, column ``u``), so each diagonal is a contiguous row and one step is a
   ``logaddexp`` of two shifted rows. Everything is accumulated in float32 (float64 stays float64),
   also for half-precision logits.
3. The gradient is the usual occupation-probability formula
   ``dL/d blank_lp[t,u] = -exp(alpha[t,u] + blank_lp[t,u] + beta[t+1,u] - logZ)`` (and likewise for the
   label arc), computed in a custom autograd backward; it is checked against autograd through a plain
   DP and with :func:`torch.autograd.gradcheck` in the tests.

Example::

    >>> logits = torch.randn(2, 50, 6, 32, requires_grad=True)      # (B, T, U+1, V)
    >>> targets = torch.randint(1, 32, (2, 5))                      # (B, U), padded with anything
    >>> loss = rnnt_loss(logits, targets, torch.tensor([50, 41]), torch.tensor([5, 3]), blank=0)
    >>> loss.backward()

Memory beyond the logits (and their gradient): ``O(B * (T + U) * (U + 1))`` for the skewed lattice.
Without the logits at all: :func:`rnnt_loss_from_joiner` takes the joiner's projected inputs and runs the
joiner ``frame_chunk`` frames at a time under activation checkpointing, so at most
``B * frame_chunk * (U+1) * V`` logits exist at once, in the forward and in the backward
(``bench/rnnt_joiner_memory.py`` measures the peak).
:func:`rnnt_loss_reference` is the straightforward per-node Python DP through autograd, used as the
reference in tests and in ``bench/rnnt_loss.py``.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

__all__ = ["rnnt_loss", "rnnt_loss_from_log_probs", "rnnt_loss_reference", "gather_log_probs",
           "joint_log_probs", "rnnt_loss_from_joiner"]

_NEG_INF = float("-inf")


def _acc_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _check_inputs(x: Tensor, targets: Tensor, logit_lengths: Tensor, target_lengths: Tensor) -> None:
    if x.dim() != 4:
        raise ValueError(f"rnnt_loss: logits must be (B, T, U+1, V), got shape {tuple(x.shape)}")
    B, T, U1, _ = x.shape
    if targets.dim() != 2 or targets.shape[0] != B or targets.shape[1] != U1 - 1:
        raise ValueError(f"rnnt_loss: targets must be (B, U) = ({B}, {U1 - 1}), got {tuple(targets.shape)}")
    if logit_lengths.shape != (B,) or target_lengths.shape != (B,):
        raise ValueError("rnnt_loss: logit_lengths and target_lengths must be (B,)")
    if B and (int(logit_lengths.min()) < 1 or int(logit_lengths.max()) > T):
        raise ValueError(f"rnnt_loss: logit_lengths must lie in [1, {T}], got {logit_lengths.tolist()}")
    if B and (int(target_lengths.min()) < 0 or int(target_lengths.max()) > U1 - 1):
        raise ValueError(f"rnnt_loss: target_lengths must lie in [0, {U1 - 1}], got {target_lengths.tolist()}")


# --------------------------------------------------------------------------------------------------
# Step 1: gather blank / label log-probs
# --------------------------------------------------------------------------------------------------
def _label_index(targets: Tensor, V: int, blank: int) -> Tensor:
    """(B, U+1) vocabulary index of the label arc at each lattice column: ``y[u]`` (padding clamped into the
    vocabulary), and blank for the last column ``u = U``, which has no label (its arcs are masked later)."""
    return torch.cat([targets.long().clamp(0, V - 1), targets.new_full((targets.shape[0], 1), blank).long()], dim=1)


class _GatherLogProbs(torch.autograd.Function):
    """logits (B, T, U+1, V) → (blank_lp, label_lp), each (B, T, U+1) in the accumulation dtype.

    Saves only the logits (no copy) and the log-normaliser (B, T, U+1); the backward recomputes the
    softmax ``batch_chunk`` utterances at a time.
    """

    @staticmethod
    def forward(ctx, logits: Tensor, targets: Tensor, blank: int, batch_chunk: int):
        B, T, U1, V = logits.shape
        acc = _acc_dtype(logits.dtype)
        idx = _label_index(targets, V, blank)                                                # (B, U+1)
        lse = logits.new_empty((B, T, U1), dtype=acc)
        blank_lp = logits.new_empty((B, T, U1), dtype=acc)
        label_lp = logits.new_empty((B, T, U1), dtype=acc)
        for s in range(0, B, batch_chunk):
            e = min(B, s + batch_chunk)
            chunk = logits[s:e].to(acc)
            lse[s:e] = torch.logsumexp(chunk, dim=-1)
            blank_lp[s:e] = chunk[..., blank] - lse[s:e]
            gi = idx[s:e, None, :, None].expand(e - s, T, U1, 1)
            label_lp[s:e] = chunk.gather(-1, gi).squeeze(-1) - lse[s:e]
            del chunk
        ctx.save_for_backward(logits, idx, lse)
        ctx.blank, ctx.batch_chunk = blank, batch_chunk
        return blank_lp, label_lp

    @staticmethod
    def backward(ctx, g_blank: Tensor, g_label: Tensor):
        logits, idx, lse = ctx.saved_tensors
        B, T, U1, V = logits.shape
        blank, bc = ctx.blank, ctx.batch_chunk
        grad = torch.empty_like(logits)
        for s in range(0, B, bc):
            e = min(B, s + bc)
            gb, gl = g_blank[s:e], g_label[s:e]
            # work in place in the gradient buffer when dtypes allow (no temporary of logits' size)
            g = grad[s:e] if grad.dtype == lse.dtype else torch.empty_like(logits[s:e], dtype=lse.dtype)
            torch.sub(logits[s:e], lse[s:e, ..., None], out=g)
            g.exp_().mul_((-(gb + gl))[..., None])                       # -softmax * (gb + gl)
            g[..., blank] += gb
            gi = idx[s:e, None, :, None].expand(e - s, T, U1, 1)
            g.scatter_add_(-1, gi, gl[..., None])
            if g.data_ptr() != grad[s:e].data_ptr():
                grad[s:e] = g.to(grad.dtype)
            del g
        return grad, None, None, None


def gather_log_probs(logits: Tensor, targets: Tensor, blank: int = 0, batch_chunk: Optional[int] = None,
                     log_probs_input: bool = False) -> tuple[Tensor, Tensor]:
    """Blank and label log-probabilities per lattice node.

    Args:
        logits: (B, T, U+1, V) unnormalised scores, or log-probabilities with ``log_probs_input=True``.
        targets: (B, U) label ids (padding may hold any value, e.g. -1).
        batch_chunk: log-softmax this many utterances at a time (``None``: all at once).
    Returns:
        ``(blank_lp, label_lp)``, each (B, T, U+1) float32 (float64 for float64 input);
        ``label_lp[b, t, u] = log p(y[b, u] | t, u)`` (the column ``u = U`` is meaningless).
    """
    B, T, U1, V = logits.shape
    if log_probs_input:
        acc = _acc_dtype(logits.dtype)
        idx = _label_index(targets, V, blank)
        blank_lp = logits[..., blank].to(acc)
        label_lp = logits.gather(-1, idx[:, None, :, None].expand(B, T, U1, 1)).squeeze(-1).to(acc)
        return blank_lp, label_lp
    bc = B if not batch_chunk or batch_chunk <= 0 else int(batch_chunk)
    return _GatherLogProbs.apply(logits, targets.long(), int(blank), max(1, bc))


# --------------------------------------------------------------------------------------------------
# Step 2: alpha / beta over anti-diagonals, custom backward
# --------------------------------------------------------------------------------------------------
def _skew(x: Tensor, fill: float, n_rows: int) -> Tensor:
    """(B, T, U+1) → (B, n_rows, U+1) with ``out[b, n, u] = x[b, n - u, u]`` (``fill`` off the grid)."""
    B, T, U1 = x.shape
    n = torch.arange(n_rows, device=x.device)[:, None]
    u = torch.arange(U1, device=x.device)[None, :]
    t = n - u
    valid = (t >= 0) & (t < T)
    flat = (t.clamp(0, T - 1) * U1 + u).reshape(-1)
    out = x.reshape(B, T * U1)[:, flat].reshape(B, n_rows, U1)
    return out.masked_fill(~valid, fill)


def _unskew(xs: Tensor, T: int) -> Tensor:
    """Inverse of :func:`_skew`: (B, N, U+1) → (B, T, U+1) with ``out[b, t, u] = xs[b, t + u, u]``."""
    B, N, U1 = xs.shape
    t = torch.arange(T, device=xs.device)[:, None]
    u = torch.arange(U1, device=xs.device)[None, :]
    flat = ((t + u) * U1 + u).reshape(-1)
    return xs.reshape(B, N * U1)[:, flat].reshape(B, T, U1)


def _mask_lattice(blank_lp: Tensor, label_lp: Tensor, T_b: Tensor, U_b: Tensor) -> tuple[Tensor, Tensor]:
    """Set arcs that leave each utterance's lattice to -inf.

    Blank arcs exist at ``t < T_b, u <= U_b`` except out of the last frame unless ``u == U_b`` (the
    final blank, which leads to the terminal node ``(T_b, U_b)``); label arcs at ``t < T_b, u < U_b``.
    """
    B, T, U1 = blank_lp.shape
    t = torch.arange(T, device=blank_lp.device)[None, :, None]
    u = torch.arange(U1, device=blank_lp.device)[None, None, :]
    Tb, Ub = T_b[:, None, None], U_b[:, None, None]
    blank_ok = (t < Tb) & (u <= Ub) & ((t < Tb - 1) | (u == Ub))
    label_ok = (t < Tb) & (u < Ub)
    return blank_lp.masked_fill(~blank_ok, _NEG_INF), label_lp.masked_fill(~label_ok, _NEG_INF)


def _alpha_beta(blank_s: Tensor, label_s: Tensor, T_b: Tensor, U_b: Tensor, with_beta: bool):
    """Forward (and backward) variables on the skewed lattice.

    ``blank_s``/``label_s``: (B, N, U+1), N = T + U + 1, rows ``n = t + u`` (``t`` up to ``T``, so the
    terminal node ``(T_b, U_b)`` is on the grid). Returns ``alpha_s``, ``beta_s`` (or None), ``logZ`` (B,).
    """
    B, N, U1 = blank_s.shape
    alpha = blank_s.new_full((B, N, U1), _NEG_INF)
    alpha[:, 0, 0] = 0.0
    ninf_col = blank_s.new_full((B, 1), _NEG_INF)
    for n in range(1, N):
        prev = alpha[:, n - 1]
        from_blank = prev + blank_s[:, n - 1]                          # (t-1, u) → (t, u): same column
        from_label = torch.cat([ninf_col, (prev + label_s[:, n - 1])[:, :-1]], dim=1)  # (t, u-1) → (t, u)
        alpha[:, n] = torch.logaddexp(from_blank, from_label)
    b = torch.arange(B, device=alpha.device)
    logZ = alpha[b, T_b + U_b, U_b]
    if not with_beta:
        return alpha, None, logZ
    beta = blank_s.new_full((B, N, U1), _NEG_INF)
    term_row = T_b + U_b
    term_col = torch.nn.functional.one_hot(U_b, U1).bool()             # (B, U+1)
    beta[b, term_row, U_b] = 0.0
    ninf_col = blank_s.new_full((B, 1), _NEG_INF)
    for n in range(N - 2, -1, -1):
        nxt = beta[:, n + 1]
        via_blank = nxt + blank_s[:, n]                                 # (t, u) → (t+1, u)
        via_label = torch.cat([nxt[:, 1:], ninf_col], dim=1) + label_s[:, n]   # (t, u) → (t, u+1)
        row = torch.logaddexp(via_blank, via_label)
        beta[:, n] = torch.where(term_col & (term_row == n)[:, None], torch.zeros_like(row), row)
    return alpha, beta, logZ


class _RNNTLossFromLogProbs(torch.autograd.Function):
    @staticmethod
    def forward(ctx, blank_lp: Tensor, label_lp: Tensor, T_b: Tensor, U_b: Tensor):
        B, T, U1 = blank_lp.shape
        blank_lp, label_lp = _mask_lattice(blank_lp, label_lp, T_b, U_b)
        N = T + U1                                                       # rows n = t + u, t in [0, T]
        blank_s, label_s = _skew(blank_lp, _NEG_INF, N), _skew(label_lp, _NEG_INF, N)
        need_grad = ctx.needs_input_grad[0] or ctx.needs_input_grad[1]
        alpha, beta, logZ = _alpha_beta(blank_s, label_s, T_b, U_b, with_beta=need_grad)
        if need_grad:
            ctx.save_for_backward(alpha, beta, blank_s, label_s, logZ)
            ctx.T = T
        return -logZ

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        alpha, beta, blank_s, label_s, logZ = ctx.saved_tensors
        B, N, U1 = alpha.shape
        ninf_row = alpha.new_full((B, 1, U1), _NEG_INF)
        beta_down = torch.cat([beta[:, 1:], ninf_row], dim=1)           # beta at (t+1, u): row n+1, col u
        beta_diag = torch.cat([beta_down[:, :, 1:], alpha.new_full((B, N, 1), _NEG_INF)], dim=2)  # (t, u+1)
        z = logZ[:, None, None]
        g_blank_s = -torch.exp(alpha + blank_s + beta_down - z)
        g_label_s = -torch.exp(alpha + label_s + beta_diag - z)
        scale = grad_out.to(alpha.dtype)[:, None, None]
        g_blank = _unskew(g_blank_s * scale, ctx.T)
        g_label = _unskew(g_label_s * scale, ctx.T)
        return g_blank, g_label, None, None


def rnnt_loss_from_log_probs(blank_lp: Tensor, label_lp: Tensor, logit_lengths: Tensor,
                             target_lengths: Tensor, reduction: str = "mean") -> Tensor:
    """RNN-T loss from gathered log-probs (B, T, U+1) each (see :func:`gather_log_probs`)."""
    T_b = logit_lengths.to(device=blank_lp.device, dtype=torch.long)
    U_b = target_lengths.to(device=blank_lp.device, dtype=torch.long)
    losses = _RNNTLossFromLogProbs.apply(blank_lp, label_lp, T_b, U_b)
    return _reduce(losses, reduction)


def _reduce(losses: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return losses.mean()
    if reduction == "sum":
        return losses.sum()
    if reduction == "none":
        return losses
    raise ValueError(f"rnnt_loss: reduction must be mean|sum|none, got '{reduction}'")


def rnnt_loss(logits: Tensor, targets: Tensor, logit_lengths: Tensor, target_lengths: Tensor,
              blank: int = 0, reduction: str = "mean", log_probs_input: bool = False,
              batch_chunk: Optional[int] = None) -> Tensor:
    """RNN-T loss ``-log P(y|x)`` per utterance, reduced.

    Args:
        logits: (B, T, U+1, V) joiner output (any float dtype; accumulation is float32, or float64 for
            float64 input). With ``log_probs_input=True`` they are taken as log-probabilities already.
        targets: (B, U) label ids, padded with anything (e.g. -1) beyond ``target_lengths``.
        logit_lengths: (B,) valid frames per utterance, ``1 <= T_b <= T``.
        target_lengths: (B,) valid labels per utterance, ``0 <= U_b <= U``.
        blank: blank id.
        reduction: ``"mean"`` (over the batch), ``"sum"`` or ``"none"`` (per utterance, shape (B,)).
        batch_chunk: compute the log-softmax (and its backward) this many utterances at a time, to
            bound the temporary memory to ``batch_chunk * T * (U+1) * V`` floats ("memory-aware").
    Returns:
        the loss in the accumulation dtype (float32 for half/bfloat16/float32 logits).
    """
    _check_inputs(logits, targets, logit_lengths, target_lengths)
    blank_lp, label_lp = gather_log_probs(logits, targets, blank, batch_chunk, log_probs_input)
    return rnnt_loss_from_log_probs(blank_lp, label_lp, logit_lengths, target_lengths, reduction)


def _chunk_log_probs(logits: Tensor, idx: Tensor, blank: int) -> tuple[Tensor, Tensor]:
    """(blank_lp, label_lp) of one frame chunk of logits (B, t, U+1, V); ``idx`` (B, U+1) label ids."""
    lp = torch.log_softmax(logits.to(_acc_dtype(logits.dtype)), dim=-1)
    B, t, U1, _ = lp.shape
    # a copy of the blank column, not a view: a view would keep the whole chunk of log-probs alive
    return lp[..., blank].clone(), lp.gather(-1, idx[:, None, :, None].expand(B, t, U1, 1)).squeeze(-1)


def joint_log_probs(joint, enc_p: Tensor, pred_p: Tensor, targets: Tensor, blank: int = 0,
                    frame_chunk: int = 16) -> tuple[Tensor, Tensor]:
    """Blank and label log-probabilities (each (B, T, U+1)) without the (B, T, U+1, V) logits.

    ``joint(enc_p[:, :, None], pred_p[:, None]) -> logits`` is the joiner on projected inputs
    (``enc_p`` (B, T, J), ``pred_p`` (B, U+1, J); e.g. :meth:`~speechkd.models.transducer.Joiner.joint`).
    It runs ``frame_chunk`` frames at a time under :func:`torch.utils.checkpoint.checkpoint`: each chunk's
    logits are freed once its two log-probs are gathered and recomputed in the backward, so memory holds
    one chunk of logits (and its gradient) at a time.
    """
    from torch.utils.checkpoint import checkpoint

    T = enc_p.shape[1]

    def run(e: Tensor, p: Tensor):
        logits = joint(e[:, :, None], p[:, None])
        return _chunk_log_probs(logits, _label_index(targets, logits.shape[-1], blank), blank)

    blanks, labels = [], []
    for s in range(0, T, max(1, int(frame_chunk))):
        e = enc_p[:, s: s + frame_chunk]
        if torch.is_grad_enabled() and (e.requires_grad or pred_p.requires_grad):
            b, lab = checkpoint(run, e, pred_p, use_reentrant=False)
        else:
            b, lab = run(e, pred_p)
        blanks.append(b)
        labels.append(lab)
    return torch.cat(blanks, dim=1), torch.cat(labels, dim=1)


def rnnt_loss_from_joiner(joint, enc_p: Tensor, pred_p: Tensor, targets: Tensor, logit_lengths: Tensor,
                          target_lengths: Tensor, blank: int = 0, reduction: str = "mean",
                          frame_chunk: int = 16) -> Tensor:
    """:func:`rnnt_loss` from the joiner's projected inputs (see :func:`joint_log_probs`); same value and
    gradients as ``rnnt_loss(joint(enc_p[:, :, None], pred_p[:, None]), ...)``, with the logits' memory
    bounded by ``frame_chunk`` frames."""
    B, T, _ = enc_p.shape
    if targets.dim() != 2 or targets.shape[0] != B or pred_p.shape[:2] != (B, targets.shape[1] + 1):
        raise ValueError(f"rnnt_loss_from_joiner: targets (B, U) and pred_p (B, U+1, J) disagree: "
                         f"{tuple(targets.shape)} vs {tuple(pred_p.shape)}")
    if logit_lengths.shape != (B,) or target_lengths.shape != (B,):
        raise ValueError("rnnt_loss_from_joiner: logit_lengths and target_lengths must be (B,)")
    if B and (int(logit_lengths.min()) < 1 or int(logit_lengths.max()) > T):
        raise ValueError(f"rnnt_loss_from_joiner: logit_lengths must lie in [1, {T}], got {logit_lengths.tolist()}")
    blank_lp, label_lp = joint_log_probs(joint, enc_p, pred_p, targets, blank, frame_chunk)
    return rnnt_loss_from_log_probs(blank_lp, label_lp, logit_lengths, target_lengths, reduction)


# --------------------------------------------------------------------------------------------------
# Reference: the straightforward per-node DP, autograd through scalar ops
# --------------------------------------------------------------------------------------------------
def rnnt_loss_reference(logits: Tensor, targets: Tensor, logit_lengths: Tensor, target_lengths: Tensor,
                        blank: int = 0, reduction: str = "mean", log_probs_input: bool = False) -> Tensor:
    """Plain Python DP over every lattice node, one utterance at a time (slow; tests and benchmarks).

    ``alpha[t][u] = logaddexp(alpha[t-1][u] + lp(blank|t-1,u), alpha[t][u-1] + lp(y[u-1]|t,u-1))``,
    ``loss = -(alpha[T-1][U] + lp(blank|T-1,U))``.
    """
    _check_inputs(logits, targets, logit_lengths, target_lengths)
    acc = _acc_dtype(logits.dtype)
    lp_all = logits.to(acc) if log_probs_input else torch.log_softmax(logits.to(acc), dim=-1)
    losses = []
    for b in range(logits.shape[0]):
        T, U = int(logit_lengths[b]), int(target_lengths[b])
        lp = lp_all[b]
        y = [int(v) for v in targets[b, :U]]
        alpha = [[None] * (U + 1) for _ in range(T)]
        for t in range(T):
            for u in range(U + 1):
                if t == 0 and u == 0:
                    alpha[t][u] = lp.new_zeros(())
                    continue
                terms = []
                if t > 0:
                    terms.append(alpha[t - 1][u] + lp[t - 1, u, blank])
                if u > 0:
                    terms.append(alpha[t][u - 1] + lp[t, u - 1, y[u - 1]])
                alpha[t][u] = terms[0] if len(terms) == 1 else torch.logaddexp(terms[0], terms[1])
        losses.append(-(alpha[T - 1][U] + lp[T - 1, U, blank]))
    return _reduce(torch.stack(losses), reduction)

