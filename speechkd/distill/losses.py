"""Distillation losses for speech SSL students (DistilHuBERT / HuBERT-KD style).

All losses take a frame mask so that padded frames never contribute. Masks follow the
:class:`speechkd.models.ssl.SSLOutput` convention: ``padding_mask`` (B, T) bool, True = padding.
Either a ``padding_mask`` or ``lengths`` (B,) may be passed; with neither, every frame is valid.

Regression (DistilHuBERT, arXiv 2110.01900; used in arXiv 2210.15631), per target layer l::

    L1_l  = 1/(N·D) Σ_{valid t} Σ_d |s_{t,d} − h_{t,d}|             (N = number of valid frames)
    cos_l = 1/N    Σ_{valid t} −log σ(cos(s_t, h_t))
    L_reg = Σ_l (w_rec·L1_l + w_cos·cos_l)

Discriminative (arXiv 2210.15631), over HuBERT's K label embeddings e_k::

    p_t(k | t) = softmax_k(cos(final_proj(h_t), e_k) / τ)              (teacher)
    p_s(k | t) = softmax_k(cos(W s_t, e_k) / τ)      ("type1", student projected into final_proj space)
               = softmax_k(U s_t)                      ("type2", direct logits from a linear head)
    L_disc = 1/N Σ_{valid t} KL(p_t || p_s)

Total (:class:`DistillLoss`): ``w_rec·L1 + w_cos·cos + w_disc·KL``.

Front-end regression (stage A of hubert_kd): :func:`frontend_loss`, L1 between the student front-end
output and the teacher CNN+projection output after truncating both to the shorter length.

The text-to-speech losses live in :mod:`speechkd.distill.l2s` (Distill-L2S) and
:mod:`speechkd.distill.pad` (PAD); they are re-exported here.

Example::

    >>> s = [torch.randn(2, 50, 768, requires_grad=True) for _ in range(3)]  # predicted layers
    >>> t = [torch.randn(2, 50, 768) for _ in range(3)]                         # teacher layers 4, 8, 12
    >>> pm = lengths_to_padding_mask(torch.tensor([50, 40]), 50)
    >>> total, logs = regression_loss(s, t, padding_mask=pm, layer_names=[4, 8, 12])
    >>> sorted(logs)[:3]
    ['cos', 'cos/12', 'cos/4']
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F


# ----------------------------------------------------------------------------------------- masks
def lengths_to_padding_mask(lengths: torch.Tensor, max_len: Optional[int] = None) -> torch.Tensor:
    """(B,) lengths → (B, T) bool padding mask, True = padding."""
    max_len = int(lengths.max()) if max_len is None else int(max_len)
    ar = torch.arange(max_len, device=lengths.device)
    return ar[None, :] >= lengths[:, None]


def valid_mask(x: torch.Tensor, padding_mask: Optional[torch.Tensor] = None,
               lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Float (B, T) mask, 1 = valid frame, for ``x`` of shape (B, T, ...)."""
    B, T = x.shape[:2]
    if padding_mask is not None:
        if padding_mask.shape != (B, T):
            raise ValueError(f"padding_mask shape {tuple(padding_mask.shape)} != {(B, T)}")
        return (~padding_mask.bool()).to(x.dtype)
    if lengths is not None:
        return (~lengths_to_padding_mask(lengths.to(x.device), T)).to(x.dtype)
    return x.new_ones(B, T)


def _masked_frame_mean(per_frame: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of (B, T) values over frames where mask == 1 (0 if none are valid, keeping the graph)."""
    return (per_frame * mask).sum() / mask.sum().clamp_min(1.0)


# ------------------------------------------------------------------------------------ regression
def l1_loss(pred: torch.Tensor, target: torch.Tensor, padding_mask: Optional[torch.Tensor] = None,
            lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Mean absolute error over feature dims and valid frames.

    Args:
        pred, target: (B, T, D).
    Returns:
        scalar ``Σ_valid |pred − target| / (N_valid · D)``.
    """
    pred, target = pred.float(), target.float()   # fp32 under bf16/fp16 autocast
    m = valid_mask(pred, padding_mask, lengths)
    return _masked_frame_mean((pred - target).abs().mean(-1), m)


def cosine_loss(pred: torch.Tensor, target: torch.Tensor, padding_mask: Optional[torch.Tensor] = None,
                lengths: Optional[torch.Tensor] = None, eps: float = 1e-8) -> torch.Tensor:
    """DistilHuBERT's cosine term: mean over valid frames of −log σ(cos(pred_t, target_t)).

    Args:
        pred, target: (B, T, D).
    """
    pred, target = pred.float(), target.float()
    m = valid_mask(pred, padding_mask, lengths)
    cos = F.cosine_similarity(pred, target, dim=-1, eps=eps)
    return _masked_frame_mean(-F.logsigmoid(cos), m)


def regression_loss(preds: Sequence[torch.Tensor], targets: Sequence[torch.Tensor],
                    padding_mask: Optional[torch.Tensor] = None, lengths: Optional[torch.Tensor] = None,
                    l1_weight: float = 1.0, cos_weight: float = 1.0,
                    layer_names: Optional[Sequence] = None):
    """Layer-wise regression loss ``Σ_l (l1_weight·L1_l + cos_weight·cos_l)``.

    Args:
        preds, targets: sequences of (B, T, D) tensors (one per target layer; D may differ per layer).
        layer_names: names for the log dict (default 0, 1, ...).
    Returns:
        ``(total, logs)`` with ``logs`` holding detached floats ``l1/<name>``, ``cos/<name>``, ``l1``,
        ``cos``.
    """
    if len(preds) != len(targets):
        raise ValueError(f"{len(preds)} predictions for {len(targets)} targets")
    names = list(layer_names) if layer_names is not None else list(range(len(preds)))
    logs = {}
    l1_sum = cos_sum = 0.0
    for name, p, t in zip(names, preds, targets):
        l1 = l1_loss(p, t, padding_mask, lengths)
        cs = cosine_loss(p, t, padding_mask, lengths)
        l1_sum = l1_sum + l1
        cos_sum = cos_sum + cs
        logs[f"l1/{name}"] = float(l1.detach())
        logs[f"cos/{name}"] = float(cs.detach())
    logs["l1"] = float(torch.as_tensor(l1_sum).detach())
    logs["cos"] = float(torch.as_tensor(cos_sum).detach())
    return l1_weight * l1_sum + cos_weight * cos_sum, logs


# -------------------------------------------------------------------------------- discriminative
def codebook_logits(proj: torch.Tensor, codebook: torch.Tensor, tau: float = 0.1) -> torch.Tensor:
    """Cosine logits against a codebook: ``cos(proj_t, e_k) / tau``.

    Args:
        proj: (B, T, F) vectors in the label-embedding space (e.g. HuBERT ``final_proj`` output).
        codebook: (K, F) label embeddings.
    Returns:
        (B, T, K) logits.
    """
    return F.normalize(proj.float(), dim=-1) @ F.normalize(codebook.float(), dim=-1).t() / tau


def kl_div_loss(teacher_logits: torch.Tensor, student_logits: torch.Tensor,
                padding_mask: Optional[torch.Tensor] = None, lengths: Optional[torch.Tensor] = None,
                teacher_temperature: float = 1.0) -> torch.Tensor:
    """``1/N Σ_valid KL(p_t || p_s)`` with ``p = softmax(logits)`` over the last dim.

    Args:
        teacher_logits, student_logits: (B, T, K). The teacher side is not detached here; callers
            pass teacher outputs computed under ``torch.no_grad()``.
    """
    teacher_logits, student_logits = teacher_logits.float(), student_logits.float()
    m = valid_mask(student_logits, padding_mask, lengths)
    log_pt = F.log_softmax(teacher_logits / teacher_temperature, dim=-1)
    log_ps = F.log_softmax(student_logits, dim=-1)
    kl = (log_pt.exp() * (log_pt - log_ps)).sum(-1)
    return _masked_frame_mean(kl, m)


class DiscriminativeHead(nn.Module):
    """Student head producing a distribution over the teacher's K HuBERT labels.

    ``kind="type1"``: ``Linear(student_dim, final_dim)`` then cos with the (frozen, given) codebook / τ.
    ``kind="type2"``: ``Linear(student_dim, num_labels)`` direct logits (codebook not used).

    Example::

        >>> head = DiscriminativeHead(256, final_dim=256, num_labels=500, kind="type1")
        >>> head(torch.randn(2, 10, 256), codebook=torch.randn(500, 256)).shape
        torch.Size([2, 10, 500])
    """

    def __init__(self, student_dim: int, final_dim: int, num_labels: int, kind: str = "type1",
                 tau: float = 0.1):
        super().__init__()
        if kind not in ("type1", "type2"):
            raise ValueError(f"discriminative head kind must be type1 or type2, got {kind!r}")
        self.kind, self.tau = kind, tau
        self.proj = nn.Linear(student_dim, final_dim if kind == "type1" else num_labels)

    @classmethod
    def from_hubert_head(cls, hubert_head: nn.Module, student_dim: int,
                         copy_proj: bool = True) -> "DiscriminativeHead":
        """A type1 head with the teacher's τ; with ``copy_proj`` its projection starts as a copy of the
        teacher's ``final_proj`` when ``student_dim`` equals the teacher width (e.g. layer-jumped students),
        otherwise it starts random.

        A copied projection on a student whose top layer is a copy of the teacher's makes the KL nearly
        zero from the first update (mini hubert_kd: 0.024 -> 0.002), so the loss carries little signal;
        a random one has to learn the codebook distribution from the student's own top layer."""
        fp = hubert_head.final_proj
        head = cls(student_dim, fp.out_features, hubert_head.label_embs.shape[0], "type1",
                   hubert_head.logit_temp)
        if copy_proj and fp.in_features == student_dim:
            head.proj.load_state_dict(fp.state_dict())
        return head

    def forward(self, x: torch.Tensor, codebook: Optional[torch.Tensor] = None) -> torch.Tensor:
        """(B, T, student_dim) → (B, T, K) logits."""
        y = self.proj(x)
        if self.kind == "type2":
            return y
        if codebook is None:
            raise ValueError("type1 discriminative head needs the teacher codebook")
        return codebook_logits(y, codebook, self.tau)


class DistillLoss(nn.Module):
    """``w_rec·L1 + w_cos·cos + w_disc·KL`` (arXiv 2210.15631).

    ``forward(preds, targets, padding_mask, student_last=None, teacher_logits=None, codebook=None)``:
    ``preds``/``targets`` as in :func:`regression_loss`; if ``w_disc > 0`` a
    :class:`DiscriminativeHead` maps ``student_last`` (B, T, D_s) to logits compared with
    ``teacher_logits`` (B, T, K) (e.g. ``HubertHead.logits(teacher_last)`` with the same τ).
    Returns ``(total, logs)``.
    """

    def __init__(self, w_rec: float = 1.0, w_cos: float = 1.0, w_disc: float = 0.0,
                 student_dim: Optional[int] = None, final_dim: Optional[int] = None,
                 num_labels: Optional[int] = None, disc_kind: str = "type1", tau: float = 0.1,
                 layer_names: Optional[Sequence] = None):
        super().__init__()
        self.w_rec, self.w_cos, self.w_disc = w_rec, w_cos, w_disc
        self.layer_names = layer_names
        self.disc_head = None
        if w_disc > 0:
            if student_dim is None or num_labels is None or (disc_kind == "type1" and final_dim is None):
                raise ValueError("w_disc > 0 needs student_dim, num_labels (and final_dim for type1)")
            self.disc_head = DiscriminativeHead(student_dim, final_dim or num_labels, num_labels,
                                                disc_kind, tau)

    def forward(self, preds, targets, padding_mask=None, student_last=None, teacher_logits=None,
                codebook=None, lengths=None):
        total, logs = regression_loss(preds, targets, padding_mask, lengths, self.w_rec, self.w_cos,
                                      self.layer_names)
        if self.disc_head is not None:
            if student_last is None or teacher_logits is None:
                raise ValueError("discriminative loss needs student_last and teacher_logits")
            kl = kl_div_loss(teacher_logits, self.disc_head(student_last, codebook), padding_mask, lengths)
            total = total + self.w_disc * kl
            logs["kl"] = float(kl.detach())
        logs["loss"] = float(total.detach())
        return total, logs


# ------------------------------------------------------------------------------------- front-end
def frontend_loss(student: torch.Tensor, teacher: torch.Tensor,
                  student_lengths: Optional[torch.Tensor] = None,
                  teacher_lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
    """L1 between a student front-end output and the teacher's CNN+projection output (stage A).

    The two front-ends may differ by a frame or two (Fbank ×2 subsampling vs the CNN's receptive
    field), so both are truncated to ``T = min(T_s, T_t)`` and the valid length per utterance is the
    minimum of the two lengths (clipped to T).

    Args:
        student: (B, T_s, D), teacher: (B, T_t, D).
    Returns:
        scalar mean |student − teacher| over dims and valid frames.
    """
    T = min(student.shape[1], teacher.shape[1])
    s, t = student[:, :T], teacher[:, :T]
    B = s.shape[0]
    full = torch.full((B,), T, dtype=torch.long, device=s.device)
    ls = full if student_lengths is None else student_lengths.to(s.device).clamp(max=T)
    lt = full if teacher_lengths is None else teacher_lengths.to(s.device).clamp(max=T)
    return l1_loss(s, t, lengths=torch.minimum(ls, lt))


from .l2s import L2SLoss, interpolate_linear, interpolate_nearest, shrink  # noqa: E402,F401
from .pad import PADLoss  # noqa: E402,F401
