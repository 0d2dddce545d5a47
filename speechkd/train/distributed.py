"""Where a training process runs: its device, its rank under ``torchrun`` (env ``RANK``/``WORLD_SIZE``/
``LOCAL_RANK``; gloo on CPU, nccl on GPU), moving batches there, and statistics averaged over ranks."""
from __future__ import annotations

import os
from typing import Dict, Tuple

import torch
import torch.nn as nn


def init_process(device: str = "auto") -> Tuple[torch.device, int, int]:
    """``(device, rank, world_size)`` of this process; joins the process group when ``world_size > 1``.

    ``device``: auto (cuda when available) | cpu | cuda; under torchrun each rank takes ``cuda:LOCAL_RANK``."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and world_size > 1:
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
        torch.cuda.set_device(torch.device(device))
    dev = torch.device(device)
    if world_size > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return dev, rank, world_size


def mean_over_ranks(stats: Dict[str, float], world_size: int, device: torch.device) -> Dict[str, float]:
    """Under DDP, the mean of each statistic over ranks, so a logged loss curve is that of the global batch
    (the same curve as one process at the same global batch). Collective: every rank calls it."""
    if world_size <= 1 or not stats:
        return stats
    keys = sorted(stats)
    t = torch.tensor([float(stats[k]) for k in keys], dtype=torch.float64,
                     device=device if device.type == "cuda" else "cpu")
    torch.distributed.all_reduce(t)
    return {k: float(v) / world_size for k, v in zip(keys, t.tolist())}


def unwrap_model(model: nn.Module) -> nn.Module:
    """The module inside a DistributedDataParallel/DataParallel wrapper (or the model itself)."""
    return model.module if hasattr(model, "module") and isinstance(
        model, (nn.parallel.DistributedDataParallel, nn.DataParallel)) else model


def move_to(batch, device):
    """Move every tensor of a (nested) batch to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: move_to(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)) and any(isinstance(v, torch.Tensor) for v in batch):
        return type(batch)(move_to(v, device) for v in batch)
    return batch
