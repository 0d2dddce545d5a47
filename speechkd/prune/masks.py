"""Binary weight masks on every ``nn.Linear`` weight (and ``nn.LSTM`` weight matrix), plus sparsity reports.

Masks are applied with :mod:`torch.nn.utils.parametrize`: the module's ``weight`` becomes
``original * mask``, so the stored weights outside the mask are **kept** (a pathway switch can bring them
back) while the forward pass and the gradient see only the masked weights (the gradient of ``original``
is ``grad * mask``: zero outside the mask). Masks are addressed by the original parameter name, e.g.
``"encoder.layers.0.feed_forward.intermediate_dense.weight"`` or ``"predictor.lstm.weight_hh_l0"``.

Example::

    >>> names = prunable_names(model)                       # ['encoder....weight', ...]
    >>> masks = {n: torch.rand_like(get_weight(model, n)) > 0.5 for n in names}
    >>> apply_masks(model, masks)                           # model now computes with W * M
    >>> print(format_sparsity_report(sparsity_report(model)))
    >>> set_masks(model, other_masks)                       # swap masks in place (same names)
    >>> remove_masks(model, bake=True)                      # plain parameters again, zeros baked in

Biases, embeddings, norms and convolutions are not pruned (as usual for magnitude pruning of ASR
models); ``exclude`` takes name substrings to leave out more (e.g. the joiner's output layer).
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Dict, Iterable, Optional, Sequence

from torch import Tensor, nn
from torch.nn.utils import parametrize

__all__ = ["prunable_names", "get_weight", "apply_masks", "set_masks", "get_masks", "remove_masks",
           "has_masks", "sparsity_report", "format_sparsity_report", "mask_sparsity", "MaskParametrization"]

Masks = Dict[str, Tensor]


class MaskParametrization(nn.Module):
    """``forward(w) = w * mask`` with ``mask`` a bool buffer of ``w``'s shape."""

    def __init__(self, mask: Tensor):
        super().__init__()
        self.register_buffer("mask", mask.detach().bool().clone())

    def forward(self, w: Tensor) -> Tensor:
        return w * self.mask.to(w.dtype)


def _split(name: str) -> tuple[str, str]:
    mod, _, attr = name.rpartition(".")
    return mod, attr


def prunable_names(model: nn.Module, include_lstm: bool = True, exclude: Sequence[str] = ()) -> list[str]:
    """Names of the weights to prune: every ``nn.Linear.weight`` and ``nn.LSTM`` ``weight_ih/hh_l*``.

    Names are those of the unmasked model (also when masks are applied already).
    """
    names = []
    for mname, mod in model.named_modules():
        if isinstance(mod, nn.Linear):
            attrs = ["weight"]
        elif include_lstm and isinstance(mod, nn.LSTM):
            attrs = [a for a in _lstm_weight_names(mod)]
        else:
            continue
        for attr in attrs:
            full = f"{mname}.{attr}" if mname else attr
            if not any(e in full for e in exclude):
                names.append(full)
    return names


def _lstm_weight_names(lstm: nn.LSTM) -> list[str]:
    out = []
    for layer in range(lstm.num_layers):
        for d in ([""] + (["_reverse"] if lstm.bidirectional else [])):
            out += [f"weight_ih_l{layer}{d}", f"weight_hh_l{layer}{d}"]
    return out


def _module(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    mod, attr = _split(name)
    return (model.get_submodule(mod) if mod else model), attr


def get_weight(model: nn.Module, name: str) -> Tensor:
    """The stored (unmasked) weight tensor behind ``name`` (a Parameter)."""
    mod, attr = _module(model, name)
    if parametrize.is_parametrized(mod, attr):
        return getattr(mod.parametrizations, attr).original
    return getattr(mod, attr)


def has_masks(model: nn.Module) -> bool:
    return any(isinstance(m, MaskParametrization) for m in model.modules())


def _mask_module(model: nn.Module, name: str) -> Optional[MaskParametrization]:
    mod, attr = _module(model, name)
    if not parametrize.is_parametrized(mod, attr):
        return None
    for p in getattr(mod.parametrizations, attr):
        if isinstance(p, MaskParametrization):
            return p
    return None


def apply_masks(model: nn.Module, masks: Masks) -> nn.Module:
    """Register a mask parametrization on each named weight (or update it when already there)."""
    for name, mask in masks.items():
        w = get_weight(model, name)
        if tuple(mask.shape) != tuple(w.shape):
            raise ValueError(f"mask for {name} has shape {tuple(mask.shape)}, weight has {tuple(w.shape)}")
        existing = _mask_module(model, name)
        if existing is not None:
            existing.mask.copy_(mask.to(existing.mask.device).bool())
            continue
        mod, attr = _module(model, name)
        parametrize.register_parametrization(mod, attr, MaskParametrization(mask.to(w.device)),
                                             unsafe=True)
    return model


def set_masks(model: nn.Module, masks: Masks) -> None:
    """Copy new mask values into already applied masks (fast switch; names must be masked already)."""
    for name, mask in masks.items():
        pm = _mask_module(model, name)
        if pm is None:
            raise KeyError(f"{name} has no mask applied")
        pm.mask.copy_(mask.to(pm.mask.device).bool())


def get_masks(model: nn.Module) -> Masks:
    """The applied masks by weight name (clones)."""
    out: Masks = OrderedDict()
    for name in prunable_names(model):
        pm = _mask_module(model, name)
        if pm is not None:
            out[name] = pm.mask.clone()
    return out


def remove_masks(model: nn.Module, bake: bool = True, names: Optional[Iterable[str]] = None) -> nn.Module:
    """Remove mask parametrizations; ``bake=True`` leaves ``W * M`` (zeros), ``False`` the original W."""
    for name in list(names if names is not None else prunable_names(model)):
        mod, attr = _module(model, name)
        if _mask_module(model, name) is not None:
            parametrize.remove_parametrizations(mod, attr, leave_parametrized=bake)
    return model


def mask_sparsity(masks: Masks) -> float:
    """Global fraction of zeros over all masks."""
    total = sum(m.numel() for m in masks.values())
    zeros = sum(int((~m.bool()).sum()) for m in masks.values())
    return zeros / max(1, total)


def sparsity_report(model_or_masks, names: Optional[Sequence[str]] = None) -> dict:
    """Per-weight and global sparsity: ``{name: {"zeros", "total", "sparsity"}, ..., "global": {...}}``.

    Given a model, counts the zeros of the *effective* weights (``W * M`` where masked); given a dict
    of masks, counts the zeros of the masks.
    """
    if isinstance(model_or_masks, nn.Module):
        model = model_or_masks
        tensors = {}
        for n in (names or prunable_names(model)):
            mod, attr = _module(model, n)
            tensors[n] = getattr(mod, attr).detach() != 0
    else:
        tensors = {n: m.bool() for n, m in model_or_masks.items() if names is None or n in names}
    rep: dict = OrderedDict()
    tz = tt = 0
    for n, nz in tensors.items():
        total, zeros = nz.numel(), int((~nz).sum())
        rep[n] = {"zeros": zeros, "total": total, "sparsity": zeros / max(1, total)}
        tz, tt = tz + zeros, tt + total
    rep["global"] = {"zeros": tz, "total": tt, "sparsity": tz / max(1, tt)}
    return rep


def format_sparsity_report(rep: dict) -> str:
    """A fixed-width table of :func:`sparsity_report`."""
    width = max([len(n) for n in rep] + [6])
    lines = [f"{'weight':<{width}} {'zeros':>10} {'total':>10} {'sparsity':>8}"]
    for n, r in rep.items():
        lines.append(f"{n:<{width}} {r['zeros']:>10} {r['total']:>10} {r['sparsity']:>8.2%}")
    return "\n".join(lines)
