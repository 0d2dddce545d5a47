"""Language-specific pathways: one binary mask per language over one shared multilingual model.

A *pathway* is the sub-network of language ``l``: the weights where ``mask_l`` is True (pruned weights
are Linear/LSTM matrices, see :mod:`speechkd.prune.masks`; biases, norms, embeddings and convolutions
are shared by every language and always trained). Masks are learned per language by iterative
magnitude pruning from the dense model (:func:`learn_pathway_masks`), then all languages are trained
jointly: a batch of language ``l`` runs through ``mask_l`` and updates only the weights in ``mask_l``.
Weights in the overlap of several masks are shared and trained by all of those languages.

Example::

    >>> pw = Pathways(model, {"en": masks_en, "de": masks_de})      # applies the masks
    >>> opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    >>> for lang, batch in batches:
    ...     pw.use(lang)                                            # switch the active mask
    ...     opt.zero_grad(); model(**batch).backward()
    ...     pw.step(opt)                                            # masked update of pathway `lang`
    >>> langs, iou = pw.overlap()                                   # (L, L) IoU matrix
    >>> pw.plot_overlap("exp/pathways/overlap.png")
    >>> dense_en, info = export_sparse(model, pw.masks["en"])       # zeros outside mask_en
    >>> info["params_nonzero"]

Why the update is masked *after* the optimizer step (choice of design):
    The mask parametrization already makes the gradient zero outside ``mask_l``. That is not enough:
    AdamW's decoupled weight decay shrinks every parameter that has a gradient tensor, and Adam's
    momentum keeps moving a weight for many steps after its last non-zero gradient (which came from
    another language). :meth:`Pathways.step` therefore snapshots the masked weights and the optimizer
    state tensors of their shape (``exp_avg``, ``exp_avg_sq``, momentum buffers) before
    ``optimizer.step()`` and restores them outside ``mask_l`` afterwards. So a step on language ``l``
    leaves every weight and every moment outside ``mask_l`` **bit-exactly** unchanged, whatever the
    optimizer (it works for AdamW, Adam, SGD with momentum); inside ``mask_l`` the update is the
    optimizer's ordinary one, with moments shared between languages on overlapping weights. (A
    per-language optimizer state would instead keep ``L`` copies of the moments and still need the
    weight-decay fix.) The scalar ``step`` counter of Adam is shared, so bias correction is counted
    in global steps. Cost: one copy of the prunable weights and their state per step.
"""
from __future__ import annotations

import contextlib
import copy
import warnings
from typing import Dict, Optional, Sequence

import torch
from torch import Tensor, nn

from ..utils.fileio import atomic_path
from .magnitude import iterative_magnitude_pruning
from .masks import apply_masks, get_masks, get_weight, prunable_names, remove_masks, set_masks

__all__ = ["Pathways", "mask_iou", "overlap_matrix", "plot_overlap", "export_sparse", "learn_pathway_masks",
           "save_pathway_masks", "load_pathway_masks"]

Masks = Dict[str, Tensor]


def mask_iou(a: Masks, b: Masks) -> float:
    """Intersection over union of the kept weights of two masks (over all their weights)."""
    inter = union = 0
    for n in a:
        x, y = a[n].bool(), b[n].bool().to(a[n].device)
        inter += int((x & y).sum())
        union += int((x | y).sum())
    return inter / union if union else 1.0


def overlap_matrix(masks: Dict[str, Masks]) -> tuple[list[str], Tensor]:
    """``(languages, iou (L, L))`` with ``iou[i, j] = mask_iou(masks[li], masks[lj])``."""
    langs = list(masks)
    m = torch.ones(len(langs), len(langs), dtype=torch.float64)
    for i, a in enumerate(langs):
        for j in range(i + 1, len(langs)):
            m[i, j] = m[j, i] = mask_iou(masks[a], masks[langs[j]])
    return langs, m


def plot_overlap(masks: Dict[str, Masks], path, title: str = "pathway overlap (IoU)") -> None:
    """Heatmap PNG of :func:`overlap_matrix`, written atomically."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    langs, m = overlap_matrix(masks)
    fig, ax = plt.subplots(figsize=(1.2 + 0.7 * len(langs), 1.0 + 0.6 * len(langs)))
    im = ax.imshow(m.numpy(), vmin=0.0, vmax=1.0, cmap="viridis")
    ax.set_xticks(range(len(langs)), langs)
    ax.set_yticks(range(len(langs)), langs)
    for i in range(len(langs)):
        for j in range(len(langs)):
            ax.text(j, i, f"{float(m[i, j]):.2f}", ha="center", va="center",
                    color="black" if m[i, j] > 0.6 else "white", fontsize=8)
    ax.set_title(title)
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


class Pathways:
    """One mask per language over ``model``; ``use(lang)`` switches, ``step(optimizer)`` updates a pathway.

    Args:
        model: the shared model (masks are applied to it as parametrizations).
        masks: ``{lang: {weight_name: bool mask}}``; all languages must mask the same weight names.
    """

    def __init__(self, model: nn.Module, masks: Dict[str, Masks]):
        if not masks:
            raise ValueError("Pathways needs at least one language mask")
        names = None
        for lang, m in masks.items():
            if names is None:
                names = set(m)
            elif set(m) != names:
                raise ValueError(f"mask of '{lang}' covers different weights than the others")
        self.model = model
        self.masks = {lang: {n: t.bool() for n, t in m.items()} for lang, m in masks.items()}
        self.names = [n for n in prunable_names(model) if n in names] + sorted(names - set(prunable_names(model)))
        self.active: Optional[str] = None
        self.use(next(iter(self.masks)))

    @property
    def languages(self) -> list[str]:
        return list(self.masks)

    def use(self, lang: str) -> None:
        """Make ``mask_lang`` the active mask (forward and gradients go through pathway ``lang``)."""
        if lang not in self.masks:
            raise KeyError(f"no pathway for language '{lang}'; have {', '.join(self.masks)}")
        if self.active is None:
            apply_masks(self.model, self.masks[lang])
        elif lang != self.active:
            set_masks(self.model, self.masks[lang])
        self.active = lang

    @contextlib.contextmanager
    def using(self, lang: str):
        prev = self.active
        self.use(lang)
        try:
            yield self
        finally:
            self.use(prev)

    @torch.no_grad()
    def step(self, optimizer: torch.optim.Optimizer, lang: Optional[str] = None) -> None:
        """``optimizer.step()`` restricted to pathway ``lang`` (default: the active one); see module doc."""
        lang = lang or self.active
        if lang != self.active:
            self.use(lang)
        saved = []
        for n in self.names:
            p = get_weight(self.model, n)
            st = optimizer.state.get(p, {})
            state_keys = [k for k, v in st.items() if torch.is_tensor(v) and v.shape == p.shape]
            saved.append((n, p, p.detach().clone(), {k: st[k].clone() for k in state_keys}))
        optimizer.step()
        for n, p, old, old_state in saved:
            keep = self.masks[lang][n].to(p.device)
            p.copy_(torch.where(keep, p, old))
            st = optimizer.state.get(p, {})
            for k, v in old_state.items():
                st[k].copy_(torch.where(keep, st[k], v))
            for k, v in st.items():               # state created by this very step: zero outside the mask
                if k not in old_state and torch.is_tensor(v) and v.shape == p.shape:
                    v.masked_fill_(~keep, 0)

    def overlap(self) -> tuple[list[str], Tensor]:
        return overlap_matrix(self.masks)

    def plot_overlap(self, path, title: str = "pathway overlap (IoU)") -> None:
        plot_overlap(self.masks, path, title)

    def param_counts(self) -> Dict[str, int]:
        """Parameters used by each language: kept pruned-weight entries + all unpruned parameters."""
        return {lang: _param_count(self.model, m) for lang, m in self.masks.items()}

    def export(self, lang: str, csr: bool = False):
        """``export_sparse(self.model, self.masks[lang], csr)``: dense-shaped model of pathway ``lang``."""
        return export_sparse(self.model, self.masks[lang], csr)

    def save(self, path) -> None:
        save_pathway_masks(path, self.masks)


def _param_count(model: nn.Module, masks: Masks) -> int:
    masked = {id(get_weight(model, n)): n for n in masks}
    total = 0
    for p in model.parameters():
        total += int(masks[masked[id(p)]].sum()) if id(p) in masked else p.numel()
    return total


def _copy_module(model: nn.Module) -> nn.Module:
    """Unmasked deepcopy of ``model`` (original weights). Parametrized modules do not deepcopy, so the
    masks are taken off ``model`` (same Parameter objects stay: optimizers keep working), the copy is
    made, and the masks are put back."""
    current = get_masks(model)
    remove_masks(model, bake=False)
    try:
        with torch.no_grad():                 # LSTM caches of masked weights are non-leaf: refresh them
            for mod in model.modules():
                if isinstance(mod, nn.RNNBase):
                    mod._init_flat_weights()
        return copy.deepcopy(model)
    finally:
        if current:
            apply_masks(model, current)


def export_sparse(model, masks, csr: bool = False):
    """A dense-shaped copy of ``model`` with zeros outside ``masks`` (parametrizations removed).

    Call as ``export_sparse(model, masks_dict)`` or ``export_sparse(pathways, "en")`` (the mask of a
    language held by a :class:`Pathways`; the copy is made of ``pathways.model``).

    Returns ``(model_copy, info)``; ``info`` holds ``params_total`` (dense count), ``params_nonzero``
    (kept pruned-weight entries + unpruned parameters), ``sparsity`` of the pruned weights and, with
    ``csr=True``, ``csr``: ``{weight_name: torch.sparse_csr_tensor}`` for each (2-D) pruned weight.
    """
    if isinstance(model, Pathways):
        if isinstance(masks, str):
            masks = model.masks[masks]
        model = model.model
    out = _copy_module(model)
    remove_masks(out, bake=False)
    with torch.no_grad():
        for n, m in masks.items():
            get_weight(out, n).mul_(m.to(get_weight(out, n).device))
    total = sum(p.numel() for p in out.parameters())
    kept = sum(int(m.sum()) for m in masks.values())
    pruned_total = sum(m.numel() for m in masks.values())
    info = {"params_total": total, "params_nonzero": total - pruned_total + kept,
            "sparsity": 1.0 - kept / max(1, pruned_total)}
    if csr:
        with warnings.catch_warnings():           # "sparse CSR support is in beta"
            warnings.simplefilter("ignore", UserWarning)
            info["csr"] = {n: get_weight(out, n).detach().to_sparse_csr() for n in masks}
    return out, info


def learn_pathway_masks(model: nn.Module, languages: Sequence[str], target: float, steps: int,
                        train_fn=None, scope: str = "global", exclude: Sequence[str] = ()) -> Dict[str, Masks]:
    """Per language: from the dense weights, iterative magnitude pruning with ``train_fn(model, lang, round)``
    retraining (monolingual fine-tuning); the dense weights are restored after each language.

    Returns ``{lang: masks}``; ``model`` ends unmasked with its original dense weights.
    """
    remove_masks(model, bake=False)
    dense = copy.deepcopy(model.state_dict())
    out = {}
    for lang in languages:
        fn = None if train_fn is None else (lambda m, i, _l=lang: train_fn(m, _l, i))
        out[lang] = iterative_magnitude_pruning(model, target, steps, fn, scope=scope, exclude=exclude)
        remove_masks(model, bake=False)
        model.load_state_dict(dense)
    return out


def save_pathway_masks(path, masks: Dict[str, Masks]) -> None:
    """``{lang: {name: bool mask}}`` → ``path`` (torch.save, atomic)."""
    with atomic_path(path) as tmp:
        torch.save({lang: {n: t.bool().cpu() for n, t in m.items()} for lang, m in masks.items()}, tmp)


def load_pathway_masks(path, map_location="cpu") -> Dict[str, Masks]:
    return torch.load(path, map_location=map_location, weights_only=True)
