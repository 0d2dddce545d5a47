"""The optimizer of every training task: AdamW with weight decay on matrices only, and the learning-rate
schedule (linear warmup, then linear / cosine decay or constant).

``build_optimizer(model, ocfg)`` takes the ``optim:`` config section merged over :data:`OPTIM_DEFAULTS`;
``lr_lambda_factory`` is the multiplier :class:`torch.optim.lr_scheduler.LambdaLR` applies.
"""
from __future__ import annotations

import math
from typing import Callable, Dict, Optional

import torch
import torch.nn as nn

from ..utils.errors import ConfigError

#: Defaults of the optimizer section.
OPTIM_DEFAULTS: Dict = {
    "lr": 1e-3,
    "weight_decay": 0.01,
    "betas": [0.9, 0.98],
    "eps": 1e-8,
    "warmup_steps": 0,
    "scheduler": "linear",      # linear | cosine | constant (after warmup)
    "min_lr_ratio": 0.0,
}


def build_optimizer(model: nn.Module, ocfg: Dict) -> torch.optim.Optimizer:
    """AdamW over the trainable parameters; biases and norms (1-d tensors) get no weight decay."""
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        if p.requires_grad:
            (decay if p.dim() >= 2 else no_decay).append(p)
    if not decay and not no_decay:
        raise ConfigError("no trainable parameters (check train.freeze)")
    groups = [{"params": decay, "weight_decay": float(ocfg["weight_decay"])},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=float(ocfg["lr"]),
                             betas=tuple(float(b) for b in ocfg["betas"]), eps=float(ocfg["eps"]))


def lr_lambda_factory(warmup: int, total: Optional[int], kind: str, min_ratio: float) -> Callable[[int], float]:
    """Multiplier of the base lr at optimizer step ``s`` (0-based): linear warmup then decay."""
    if kind not in ("linear", "cosine", "constant"):
        raise ConfigError(f"unknown scheduler '{kind}' (linear, cosine, constant)")

    def fn(s: int) -> float:
        if warmup > 0 and s < warmup:
            return (s + 1) / warmup
        if kind == "constant" or not total or total <= warmup:
            return 1.0
        frac = min(1.0, (s - warmup) / max(1, total - warmup))
        if kind == "linear":
            return min_ratio + (1 - min_ratio) * (1 - frac)
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * frac))

    return fn
