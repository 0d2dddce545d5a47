"""Unstructured magnitude pruning to an exact target sparsity, global or per layer, and the iterative
prune → retrain → prune schedule.

Example::

    >>> masks = magnitude_masks(model, 0.5, scope="global")        # {name: bool mask}, exactly 50 % zeros
    >>> apply_masks(model, masks)
    >>> schedule = sparsity_schedule(0.7, steps=3)                  # [0.3306, 0.5519, 0.7] (rounded)
    >>> masks = iterative_magnitude_pruning(model, 0.7, steps=3, train_fn=lambda m, i: finetune(m))

Exactness: the number of pruned weights is ``round(sparsity * total)`` (over all weights for
``scope="global"``, per weight matrix for ``"layer"``); ties in magnitude are broken by position, so the
count is exact even for many equal (e.g. zero) weights. Weights already pruned by ``prev_masks`` count as
magnitude ``-1`` (pruned first), so iterative masks are nested: a weight once pruned stays pruned.
"""
from __future__ import annotations

import logging
from typing import Callable, Dict, Optional, Sequence

import torch
from torch import Tensor, nn
from ..utils.progress import progress as progress_bar

from .masks import apply_masks, get_weight, prunable_names, sparsity_report

__all__ = ["magnitude_masks", "sparsity_schedule", "iterative_magnitude_pruning", "prune_lowest"]

log = logging.getLogger("speechkd")
Masks = Dict[str, Tensor]


def prune_lowest(scores: Tensor, n_prune: int) -> Tensor:
    """Bool keep-mask of ``scores``' shape with exactly ``n_prune`` of the lowest scores set False."""
    flat = scores.reshape(-1)
    keep = torch.ones_like(flat, dtype=torch.bool)
    if n_prune > 0:
        order = torch.argsort(flat, stable=True)
        keep[order[:n_prune]] = False
    return keep.view_as(scores)


def _scores(model: nn.Module, names: Sequence[str], prev_masks: Optional[Masks]) -> Dict[str, Tensor]:
    out = {}
    for n in names:
        s = get_weight(model, n).detach().abs().float()
        if prev_masks is not None and n in prev_masks:
            s = s.masked_fill(~prev_masks[n].to(s.device).bool(), -1.0)
        out[n] = s
    return out


def magnitude_masks(model: nn.Module, sparsity: float, scope: str = "global",
                    names: Optional[Sequence[str]] = None, prev_masks: Optional[Masks] = None,
                    exclude: Sequence[str] = ()) -> Masks:
    """Keep-masks (True = keep) pruning the smallest-magnitude weights to ``sparsity`` exactly.

    Args:
        sparsity: fraction of weights set to zero, in [0, 1].
        scope: ``"global"`` (one threshold over all weights) or ``"layer"`` (each matrix to ``sparsity``).
        names: weights to prune (default :func:`prunable_names`, minus ``exclude`` substrings).
        prev_masks: weights already pruned; they are pruned first (nested masks).
    """
    if not 0.0 <= sparsity <= 1.0:
        raise ValueError(f"sparsity must be in [0, 1], got {sparsity}")
    names = list(names or prunable_names(model, exclude=exclude))
    scores = _scores(model, names, prev_masks)
    if scope == "layer":
        return {n: prune_lowest(s, int(round(sparsity * s.numel()))) for n, s in scores.items()}
    if scope != "global":
        raise ValueError(f"scope must be 'global' or 'layer', got '{scope}'")
    flat = torch.cat([s.reshape(-1) for s in scores.values()])
    keep = prune_lowest(flat, int(round(sparsity * flat.numel())))
    out, i = {}, 0
    for n, s in scores.items():
        out[n] = keep[i: i + s.numel()].view_as(s).to(get_weight(model, n).device)
        i += s.numel()
    return out


def sparsity_schedule(target: float, steps: int, kind: str = "geometric", start: float = 0.0) -> list[float]:
    """Sparsity after each of ``steps`` pruning rounds, ending exactly at ``target``.

    ``geometric``: each round prunes the same fraction of the remaining weights
    (``1 - (1 - target) ** (i / steps)``, Frankle & Carbin's iterative magnitude pruning);
    ``linear``: equal steps from ``start``.
    """
    if steps < 1:
        raise ValueError("steps must be >= 1")
    if kind == "geometric":
        keep0, keep1 = 1.0 - start, 1.0 - target
        out = [1.0 - keep0 * (keep1 / keep0) ** (i / steps) for i in range(1, steps + 1)]
    elif kind == "linear":
        out = [start + (target - start) * i / steps for i in range(1, steps + 1)]
    else:
        raise ValueError(f"schedule kind must be geometric|linear, got '{kind}'")
    out[-1] = target
    return out


def iterative_magnitude_pruning(model: nn.Module, target: float, steps: int,
                                train_fn: Optional[Callable[[nn.Module, int], None]] = None,
                                scope: str = "global", schedule: str = "geometric",
                                names: Optional[Sequence[str]] = None, exclude: Sequence[str] = (),
                                prev_masks: Optional[Masks] = None, retrain_last: bool = True) -> Masks:
    """prune → retrain → prune ... until ``target`` sparsity; returns the final masks (applied to model).

    ``train_fn(model, round)`` trains the masked model in place (the masks are applied as
    parametrizations, so pruned weights stay zero and get no gradient). It runs after every pruning
    round (after the last only if ``retrain_last``).
    """
    masks = prev_masks
    names = list(names or prunable_names(model, exclude=exclude))
    for i, s in enumerate(progress_bar(sparsity_schedule(target, steps, schedule), desc="prune", leave=False)):
        masks = magnitude_masks(model, s, scope=scope, names=names, prev_masks=masks)
        apply_masks(model, masks)
        log.info("prune round %d: sparsity %.4f (target %.4f)", i + 1,
                 sparsity_report(masks)["global"]["sparsity"], s)
        if train_fn is not None and (retrain_last or i < steps - 1):
            train_fn(model, i)
    return masks
