"""PAD: prior-informed adaptive distillation from a frozen text model into a speech model
(after arXiv 2303.03600, abstract-level idea; this is our reading, not a copy of the paper's code).

Neither model changes structure. The speech model's embeddings are aligned with the text model's by a
metric, at several granularities:

* ``utterance``: mean-pooled speech frames ↔ mean-pooled text tokens (one unit per utterance);
* ``word``: speech frames inside each word's time span (from ``words.ctm``) mean-pooled ↔ the text
  model's word-piece states of that word mean-pooled (:func:`pool_word_pieces`);
* ``subword``: each word's span split among its word pieces by character count (:func:`split_span`)
  ↔ the word-piece states themselves;
* ``phone``: spans from ``phones.ctm`` ↔ any per-phone text-side embeddings the recipe supplies.

:func:`frame_spans_from_ctm` turns CTM times into frame spans and :func:`units_from_spans` pools a
batch of encoder outputs over them.

Each unit u of utterance b carries a prior weight ``w_bu`` (:func:`frequency_prior` — rare units
count more —, :func:`duration_prior`, or :func:`uniform_prior`), normalised to sum to 1 per utterance.
A granularity's loss is ``L_g = 1/B Σ_b Σ_u w_bu · m(P_g s_bu, t_bu)`` where ``P_g`` is a linear
projection head speech-dim → text-dim and ``m`` one of:

* ``mse``: ``mean_d (x − y)²``;
* ``cosine``: ``1 − cos(x, y)``;
* ``infonce``: ``−log softmax_j(cos(x_u, y_j)/τ)[u]`` with all units of the batch (same granularity) as
  negatives.

Granularities are combined adaptively by **uncertainty weighting** (Kendall et al. 2018):
``L = Σ_g exp(−σ_g)·L_g + σ_g`` with learnable ``σ_g`` (init 0) — learnable softmax weights alone would
collapse onto the smallest loss, so they are not offered. ``combine="fixed"`` uses given weights
(default 1 each). The baselines of the recipe are one metric, ``uniform`` priors and one granularity.

Example::

    >>> loss_fn = PADLoss(256, 768, granularities=("utterance", "word"), metric="cosine")
    >>> speech = {"utterance": [torch.randn(1, 256)] * 2, "word": [torch.randn(3, 256), torch.randn(2, 256)]}
    >>> text = {"utterance": [torch.randn(1, 768)] * 2, "word": [torch.randn(3, 768), torch.randn(2, 768)]}
    >>> total, logs = loss_fn(speech, text)        # uniform priors when weights are not given
"""
from __future__ import annotations

from collections import Counter
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

METRICS = ("mse", "cosine", "infonce")


# ------------------------------------------------------------------------------- unit extraction
def frame_spans_from_ctm(entries: Iterable[Tuple[float, float]], frame_rate: float = 50.0,
                         num_frames: Optional[int] = None) -> List[Tuple[int, int]]:
    """CTM ``(start_s, dur_s)`` pairs → frame spans ``[start, end)`` at ``frame_rate`` frames/s.

    ``start = round(start_s·rate)``, ``end = max(start + 1, round((start_s + dur_s)·rate))`` so every
    unit gets at least one frame; spans are clipped to ``num_frames`` when given.
    """
    spans = []
    for start_s, dur_s in entries:
        s = int(round(start_s * frame_rate))
        e = max(s + 1, int(round((start_s + dur_s) * frame_rate)))
        if num_frames is not None:
            s = min(s, num_frames - 1)
            e = min(max(e, s + 1), num_frames)
        spans.append((s, e))
    return spans


def split_span(span: Tuple[int, int], piece_lengths: Sequence[int]) -> List[Tuple[int, int]]:
    """Split a word's frame span into sub-word spans proportional to the pieces' character counts.

    Sub-word (word-piece) units have no time alignment of their own; this gives each piece of a
    word a share of the word's frames (at least one frame each while frames last; a piece left
    without a frame reuses the word's last frame). Example: ``split_span((10, 20), [1, 4])`` →
    ``[(10, 12), (12, 20)]``.
    """
    start, end = span
    total = sum(max(1, n) for n in piece_lengths)
    out, acc = [], 0
    for n in piece_lengths:
        s = start + int(round(acc * (end - start) / total))
        acc += max(1, n)
        e = start + int(round(acc * (end - start) / total))
        s = min(s, end - 1)
        out.append((s, max(e, s + 1)))
    return out


def units_from_spans(hidden: torch.Tensor, lengths: Optional[torch.Tensor],
                     spans: Sequence[Sequence[Tuple[int, int]]]) -> List[torch.Tensor]:
    """Batch version of :func:`pool_spans`: hidden (B, T, D), per-utterance span lists → list of
    (U_b, D); spans are clipped to each utterance's valid length."""
    out = []
    for b, sp in enumerate(spans):
        L = int(lengths[b]) if lengths is not None else hidden.shape[1]
        clipped = [(min(s, L - 1), min(max(e, min(s, L - 1) + 1), L)) for s, e in sp]
        out.append(pool_spans(hidden[b, :L], clipped))
    return out


def pool_spans(hidden: torch.Tensor, spans: Sequence[Tuple[int, int]]) -> torch.Tensor:
    """Mean-pool frames of each span: hidden (T, D), spans ``[(start, end), ...]`` → (U, D)."""
    if len(spans) == 0:
        return hidden.new_zeros(0, hidden.shape[-1])
    return torch.stack([hidden[s:e].mean(0) for s, e in spans])


def mean_pool(hidden: torch.Tensor, padding_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Utterance embedding: (B, T, D) → (B, D) mean over valid frames (``padding_mask`` True = pad)."""
    if padding_mask is None:
        return hidden.mean(1)
    m = (~padding_mask).to(hidden.dtype)[..., None]
    return (hidden * m).sum(1) / m.sum(1).clamp_min(1.0)


def pool_word_pieces(token_states: torch.Tensor, word_ids: Sequence[Optional[int]]) -> torch.Tensor:
    """Mean of the word-piece states of each word: token_states (N, D), ``word_ids`` length N with the
    word index of each token (None for special tokens, as from a HF fast tokenizer) → (W, D)."""
    n_words = max((w for w in word_ids if w is not None), default=-1) + 1
    D = token_states.shape[-1]
    if n_words == 0:
        return token_states.new_zeros(0, D)
    idx = torch.tensor([w if w is not None else -1 for w in word_ids], device=token_states.device)
    keep = idx >= 0
    sums = token_states.new_zeros(n_words, D).index_add(0, idx[keep], token_states[keep])
    counts = torch.bincount(idx[keep], minlength=n_words).to(token_states.dtype)
    return sums / counts.clamp_min(1)[:, None]


# ------------------------------------------------------------------------------------------ priors
def normalise_prior(w: torch.Tensor) -> torch.Tensor:
    """Scale non-negative weights to sum 1 (uniform if they sum to 0)."""
    w = torch.as_tensor(w, dtype=torch.float32)
    s = w.sum()
    return w / s if s > 0 else torch.full_like(w, 1.0 / max(len(w), 1))


def uniform_prior(n: int) -> torch.Tensor:
    """``1/n`` for each of n units."""
    return torch.full((n,), 1.0 / max(n, 1))


def unit_counts(corpus_units: Iterable[Sequence[str]]) -> Counter:
    """Count unit labels over a training set (list of per-utterance unit lists)."""
    c = Counter()
    for units in corpus_units:
        c.update(units)
    return c


def frequency_prior(units: Sequence[str], counts: Dict[str, int], alpha: float = 1.0,
                    smoothing: float = 1.0) -> torch.Tensor:
    """Inverse-frequency prior: ``w_u ∝ (count(u) + smoothing)^−alpha``, normalised per utterance."""
    return normalise_prior(torch.tensor([(counts.get(u, 0) + smoothing) ** -alpha for u in units]))


def duration_prior(durations: Sequence[float]) -> torch.Tensor:
    """Duration prior: ``w_u ∝ duration(u)`` (longer units are more reliable), normalised."""
    return normalise_prior(torch.tensor(list(durations), dtype=torch.float32))


# -------------------------------------------------------------------------- target normalisation
TARGET_NORMS = ("none", "center", "standardize")


def target_statistics(targets: Iterable[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
    """Mean and per-dimension standard deviation (D,) of all rows of the (U_b, D) target tensors."""
    rows = torch.cat([t.float().reshape(-1, t.shape[-1]) for t in targets if t.numel()])
    return rows.mean(0), rows.std(0, unbiased=False)


def mean_pairwise_cosine(rows: Sequence[torch.Tensor], limit: int = 512) -> float:
    """Mean cosine between distinct rows of the (U_b, D) tensors (the first ``limit`` rows; 1.0 for fewer
    than 2): ~1 when the targets are nearly collinear, so a constant output already fits them."""
    x = torch.cat([t.float().reshape(-1, t.shape[-1]) for t in rows if t.numel()])[:limit]
    x = torch.nn.functional.normalize(x, dim=-1)
    n = x.shape[0]
    if n < 2:
        return 1.0
    sim = x @ x.t()
    return float((sim.sum() - sim.diagonal().sum()) / (n * (n - 1)))


def normalise_targets(t: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, mode: str) -> torch.Tensor:
    """Text targets (U, D) made comparable across units: ``center`` subtracts the training-set mean,
    ``standardize`` also divides each dimension by its training-set std (floored at 1e-6 of the largest),
    ``none`` leaves them as they are.

    Why: a text model's pooled states can be nearly collinear (the mini text model's utterance
    targets have mean pairwise cosine 0.85), so one constant speech embedding already sits near the
    cosine/MSE optimum and distillation collapses onto it. Around the mean the targets differ, and a
    constant output scores cosine 0 (loss 1) instead of ~0.9.
    """
    if mode not in TARGET_NORMS:
        raise ValueError(f"unknown target normalisation {mode!r}; choose from {TARGET_NORMS}")
    if mode == "none":
        return t
    out = t.float() - mean
    if mode == "standardize":
        out = out / std.clamp_min(1e-6 * float(std.max().clamp_min(1e-12)))
    return out.to(t.dtype)


# ----------------------------------------------------------------------------------------- metrics
def unit_distance(x: torch.Tensor, y: torch.Tensor, metric: str, temperature: float = 0.1) -> torch.Tensor:
    """Per-unit distance between matched rows of x (M, D) and y (M, D) → (M,).

    For ``infonce`` the rows of y other than the matching one are the negatives.
    """
    x, y = x.float(), y.float()   # fp32 under bf16/fp16 autocast
    if metric == "mse":
        return ((x - y) ** 2).mean(-1)
    if metric == "cosine":
        return 1.0 - F.cosine_similarity(x, y, dim=-1)
    if metric == "infonce":
        logits = F.normalize(x, dim=-1) @ F.normalize(y, dim=-1).t() / temperature
        return F.cross_entropy(logits, torch.arange(x.shape[0], device=x.device), reduction="none")
    raise ValueError(f"unknown metric {metric!r}; choose from {METRICS}")


def weighted_alignment_loss(speech: Sequence[torch.Tensor], text: Sequence[torch.Tensor],
                            weights: Optional[Sequence[torch.Tensor]], metric: str,
                            temperature: float = 0.1) -> torch.Tensor:
    """``1/B' Σ_b Σ_u w_bu · m(speech_bu, text_bu)`` over the B' utterances that have units.

    Args:
        speech, text: per-utterance lists of (U_b, D) (already in the same space).
        weights: per-utterance (U_b,) priors (normalised here), or None for uniform.
    """
    if len(speech) != len(text):
        raise ValueError(f"{len(speech)} speech vs {len(text)} text utterances")
    for b, (s, t) in enumerate(zip(speech, text)):
        if s.shape[0] != t.shape[0]:
            raise ValueError(f"utterance {b}: {s.shape[0]} speech units vs {t.shape[0]} text units")
    nonempty = [b for b, s in enumerate(speech) if s.shape[0] > 0]
    if not nonempty:
        ref = speech[0] if len(speech) else torch.zeros(0)
        return ref.sum() * 0.0
    S = torch.cat([speech[b] for b in nonempty])
    T = torch.cat([text[b] for b in nonempty]).to(S.dtype)
    W = torch.cat([normalise_prior(weights[b]) if weights is not None else uniform_prior(speech[b].shape[0])
                   for b in nonempty]).to(S.device, S.dtype)
    d = unit_distance(S, T, metric, temperature)
    return (W * d).sum() / len(nonempty)


class PADLoss(nn.Module):
    """Prior-weighted, multi-granularity, adaptively combined speech↔text embedding alignment.

    Args:
        speech_dim, text_dim: embedding sizes; one ``Linear(speech_dim, text_dim)`` head per granularity.
        granularities: names (e.g. ``("utterance", "word", "phone")``).
        metric: ``mse`` | ``cosine`` | ``infonce``.
        combine: ``uncertainty`` (learnable σ_g, see module doc) or ``fixed``.
        fixed_weights: per-granularity weights for ``combine="fixed"`` (default all 1).
        temperature: InfoNCE τ.

    ``forward(speech, text, weights=None)`` takes dicts granularity → per-utterance lists of
    (U_b, speech_dim) / (U_b, text_dim) / (U_b,) and returns ``(total, logs)``.
    """

    def __init__(self, speech_dim: int, text_dim: int,
                 granularities: Sequence[str] = ("utterance", "word", "phone"), metric: str = "mse",
                 combine: str = "uncertainty", fixed_weights: Optional[Sequence[float]] = None,
                 temperature: float = 0.1):
        super().__init__()
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}; choose from {METRICS}")
        if combine not in ("uncertainty", "fixed"):
            raise ValueError(f"combine must be 'uncertainty' or 'fixed', got {combine!r}")
        self.granularities = list(granularities)
        self.metric, self.combine, self.temperature = metric, combine, temperature
        self.heads = nn.ModuleDict({g: nn.Linear(speech_dim, text_dim) for g in self.granularities})
        if combine == "uncertainty":
            self.log_vars = nn.Parameter(torch.zeros(len(self.granularities)))
        fw = list(fixed_weights) if fixed_weights is not None else [1.0] * len(self.granularities)
        if len(fw) != len(self.granularities):
            raise ValueError("fixed_weights needs one weight per granularity")
        self.register_buffer("fixed_weights", torch.tensor(fw, dtype=torch.float32), persistent=False)

    def granularity_weights(self) -> torch.Tensor:
        """Current effective weight per granularity (exp(−σ_g) or the fixed weights)."""
        if self.combine == "uncertainty":
            return torch.exp(-self.log_vars)
        return self.fixed_weights

    def forward(self, speech: Dict[str, List[torch.Tensor]], text: Dict[str, List[torch.Tensor]],
                weights: Optional[Dict[str, List[torch.Tensor]]] = None):
        total = 0.0
        logs = {}
        for i, g in enumerate(self.granularities):
            proj = [self.heads[g](s) for s in speech[g]]
            w = None if weights is None else weights.get(g)
            lg = weighted_alignment_loss(proj, text[g], w, self.metric, self.temperature)
            if self.combine == "uncertainty":
                total = total + torch.exp(-self.log_vars[i]) * lg + self.log_vars[i]
            else:
                total = total + self.fixed_weights[i] * lg
            logs[f"pad/{g}"] = float(lg.detach())
        logs["pad"] = float(torch.as_tensor(total).detach())
        return total, logs
