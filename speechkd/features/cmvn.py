"""Global cepstral mean and variance normalisation (CMVN) over a whole training set.

Statistics are accumulated in float64 (sum, sum of squares, frame count) and frozen by :meth:`finalize`
into ``mean`` / ``std`` buffers (std floored at ``std_floor``). They are saved as ``cmvn.npz`` holding
``mean``, ``std`` and ``count`` (written atomically).

Example::

    cmvn = GlobalCMVN(80)
    for feats in feats_iter:            # (T, F) or (B, T, F) arrays/tensors
        cmvn.accumulate(feats)
    cmvn.finalize()
    cmvn.save("dump/fbank/train/cmvn.npz")

    cmvn = GlobalCMVN.load("dump/fbank/train/cmvn.npz")
    y = cmvn(x)                          # (B, T, F) or (T, F): (x - mean) / std

    cmvn = compute_cmvn_from_scp("data/train/feats.scp")
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from torch import Tensor, nn

from ..utils.errors import DataError
from ..utils.fileio import atomic_path

log = logging.getLogger(__name__)

__all__ = ["GlobalCMVN", "compute_cmvn_from_scp"]


class GlobalCMVN(nn.Module):
    """Global mean/variance normaliser.

    Args:
        dim: feature dimension F (may be None until the first :meth:`accumulate`).
        std_floor: lower bound on the std (avoids blowing up constant dimensions).

    Buffers ``mean`` (F,), ``std`` (F,) (float32, saved in the state dict) and ``count`` (frames).
    """

    def __init__(self, dim: Optional[int] = None, std_floor: float = 1e-5):
        super().__init__()
        self.dim = dim
        self.std_floor = float(std_floor)
        d = dim or 0
        self.register_buffer("mean", torch.zeros(d))
        self.register_buffer("std", torch.ones(d))
        self.count = 0
        self._sum: Optional[np.ndarray] = None
        self._sumsq: Optional[np.ndarray] = None

    def extra_repr(self) -> str:
        return f"dim={self.dim}, count={self.count}"

    # ----------------------------------------------------------------------------- statistics
    def accumulate(self, feats, lengths=None) -> None:
        """Add frames: ``feats`` (T, F) or (B, T, F) (numpy or torch); with ``lengths`` (B,) only valid frames."""
        x = feats.detach().cpu().double().numpy() if isinstance(feats, Tensor) else np.asarray(feats, np.float64)
        if x.ndim == 3:
            if lengths is not None:
                lengths = [int(n) for n in lengths]
                x = np.concatenate([x[b, :n] for b, n in enumerate(lengths)], axis=0)
            else:
                x = x.reshape(-1, x.shape[-1])
        if x.ndim != 2:
            raise ValueError(f"expected (T, F) or (B, T, F) features, got shape {x.shape}")
        if self.dim is None:
            self.dim = x.shape[1]
        if x.shape[1] != self.dim:
            raise ValueError(f"feature dim {x.shape[1]} != CMVN dim {self.dim}")
        if self._sum is None:
            self._sum = np.zeros(self.dim)
            self._sumsq = np.zeros(self.dim)
        self._sum += x.sum(0)
        self._sumsq += np.square(x).sum(0)
        self.count += x.shape[0]

    def finalize(self) -> "GlobalCMVN":
        """Turn the accumulated sums into ``mean`` / ``std``; returns self."""
        if not self.count:
            raise ValueError("GlobalCMVN.finalize(): no frames accumulated")
        mean = self._sum / self.count
        var = np.maximum(self._sumsq / self.count - mean ** 2, 0.0)
        std = np.maximum(np.sqrt(var), self.std_floor)
        self._set(mean, std, self.count)
        return self

    def _set(self, mean, std, count) -> None:
        self.dim = int(len(mean))
        self.mean = torch.as_tensor(np.asarray(mean), dtype=torch.float32).to(self.mean.device)
        self.std = torch.as_tensor(np.asarray(std), dtype=torch.float32).to(self.std.device)
        self.count = int(count)

    # ----------------------------------------------------------------------------- I/O
    def save(self, path) -> None:
        """Write ``mean``, ``std``, ``count`` to an ``.npz`` file atomically."""
        with atomic_path(path, suffix=".npz") as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, mean=self.mean.cpu().double().numpy(), std=self.std.cpu().double().numpy(),
                         count=np.int64(self.count))

    @classmethod
    def load(cls, path, std_floor: float = 1e-5) -> "GlobalCMVN":
        """Load a ``cmvn.npz`` written by :meth:`save` (or by ``speechkd-compute-cmvn``)."""
        path = Path(path)
        if not path.exists():
            raise DataError(path, None, "CMVN stats file not found (run speechkd-compute-cmvn)")
        try:
            with np.load(path) as z:
                mean, std, count = z["mean"], z["std"], int(z["count"])
        except Exception as e:  # corrupt zip, missing key
            raise DataError(path, None, f"cannot read CMVN stats: {e}") from None
        if mean.shape != std.shape or mean.ndim != 1:
            raise DataError(path, None, f"bad CMVN shapes mean {mean.shape} std {std.shape}")
        obj = cls(len(mean), std_floor=std_floor)
        obj._set(mean, np.maximum(std, std_floor), count)
        return obj

    # ----------------------------------------------------------------------------- apply
    def forward(self, x: Tensor) -> Tensor:
        """Normalise (..., F) features: ``(x - mean) / std``."""
        if x.shape[-1] != self.mean.numel():
            raise ValueError(f"feature dim {x.shape[-1]} != CMVN dim {self.mean.numel()}")
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)


def compute_cmvn_from_scp(feats_scp, std_floor: float = 1e-5, progress: bool = True) -> GlobalCMVN:
    """Accumulate global CMVN over every matrix of a ``feats.scp``; raises DataError on NaN/inf or bad dims."""
    import kaldiio
    from ..utils.progress import progress as progress_bar

    feats_scp = Path(feats_scp)
    if not feats_scp.exists():
        raise DataError(feats_scp, None, "file not found")
    keys = [ln.split(maxsplit=1)[0] for ln in open(feats_scp, encoding="utf-8") if ln.strip()]
    cmvn = GlobalCMVN(std_floor=std_floor)
    reader = kaldiio.load_scp_sequential(str(feats_scp))
    for n, (utt, mat) in enumerate(progress_bar(reader, total=len(keys), desc="cmvn", progress=progress), 1):
        mat = np.asarray(mat)
        if mat.ndim != 2:
            raise DataError(feats_scp, n, f"'{utt}': expected a (T, F) matrix, got shape {mat.shape}")
        if not np.all(np.isfinite(mat)):
            raise DataError(feats_scp, n, f"'{utt}': features contain NaN/inf")
        if cmvn.dim is not None and mat.shape[1] != cmvn.dim:
            raise DataError(feats_scp, n, f"'{utt}': feature dim {mat.shape[1]} != {cmvn.dim}")
        cmvn.accumulate(mat)
    if not cmvn.count:
        raise DataError(feats_scp, None, "no frames")
    log.info("CMVN over %d frames of %d utterances", cmvn.count, len(keys))
    return cmvn.finalize()
