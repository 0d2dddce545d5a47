"""k-means in torch for HuBERT targets: seeded k-means++ init, full-batch or mini-batch Lloyd updates.

Example::

    km = KMeans(n_clusters=100, seed=0).fit(frames)      # frames (N, D) float tensor
    labels = km.predict(frames)                          # (N,) int64
    km.save("exp/teacher/kmeans.pt"); km = KMeans.load("exp/teacher/kmeans.pt")

    feats = add_deltas(mfcc)                             # (T, 13) -> (T, 39), Kaldi add-deltas (window 2)

Assignment is by squared Euclidean distance; ``inertia_`` is the mean squared distance of the fitted
frames to their centroid. Empty clusters are re-seeded at the frames farthest from their centroid.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch
from torch import Tensor

from ..utils.errors import ConfigError
from ..utils.fileio import atomic_path


def _delta(x: Tensor, window: int) -> Tensor:
    """Kaldi-style regression delta of (T, D) features with edge replication."""
    t = x.shape[0]
    denom = 2 * sum(n * n for n in range(1, window + 1))
    out = torch.zeros_like(x)
    idx = torch.arange(t)
    for n in range(1, window + 1):
        fwd = x[(idx + n).clamp(max=t - 1)]
        bwd = x[(idx - n).clamp(min=0)]
        out += n * (fwd - bwd)
    return out / denom


def add_deltas(x: Tensor, order: int = 2, window: int = 2) -> Tensor:
    """(T, D) -> (T, D * (order + 1)): features, deltas, delta-deltas (Kaldi ``add-deltas``)."""
    feats = [x]
    for _ in range(order):
        feats.append(_delta(feats[-1], window))
    return torch.cat(feats, dim=-1)


def _sq_dists(x: Tensor, c: Tensor) -> Tensor:
    """(N, D), (K, D) -> (N, K) squared Euclidean distances."""
    return (x.pow(2).sum(1, keepdim=True) - 2 * x @ c.t() + c.pow(2).sum(1)).clamp_min_(0)


def kmeans_pp_init(x: Tensor, k: int, generator: torch.Generator) -> Tensor:
    """k-means++ seeding: each next centroid drawn with probability proportional to D(x)^2."""
    n = x.shape[0]
    first = int(torch.randint(n, (1,), generator=generator))
    cents = [x[first]]
    d2 = _sq_dists(x, x[first:first + 1]).squeeze(1)
    for _ in range(1, k):
        total = float(d2.sum())
        if total <= 0:
            idx = int(torch.randint(n, (1,), generator=generator))
        else:
            idx = int(torch.multinomial(d2 / total, 1, generator=generator))
        cents.append(x[idx])
        d2 = torch.minimum(d2, _sq_dists(x, x[idx:idx + 1]).squeeze(1))
    return torch.stack(cents)


class KMeans:
    """k-means clustering (see module doc).

    Args:
        n_clusters: K.
        max_iter: Lloyd iterations (full batch) or mini-batch steps.
        batch_size: None = full-batch Lloyd; an int = mini-batch k-means (Sculley 2010) with per-centroid
            learning rates 1/count.
        tol: stop when the relative inertia improvement falls below ``tol`` (full batch).
        seed: seeds the init and the mini-batch draws.
    """

    def __init__(self, n_clusters: int, max_iter: int = 50, batch_size: Optional[int] = None,
                 tol: float = 1e-4, seed: int = 0):
        if n_clusters < 1:
            raise ConfigError(f"n_clusters must be >= 1, got {n_clusters}")
        self.n_clusters, self.max_iter, self.batch_size = int(n_clusters), int(max_iter), batch_size
        self.tol, self.seed = float(tol), int(seed)
        self.centroids: Optional[Tensor] = None
        self.inertia_: Optional[float] = None

    def fit(self, x: Tensor) -> "KMeans":
        x = torch.as_tensor(x, dtype=torch.float32)
        if x.dim() != 2:
            raise ValueError(f"k-means input must be (N, D), got {tuple(x.shape)}")
        if x.shape[0] < self.n_clusters:
            raise ConfigError(f"k-means: {x.shape[0]} frames for {self.n_clusters} clusters")
        g = torch.Generator().manual_seed(self.seed)
        c = kmeans_pp_init(x, self.n_clusters, g)
        if self.batch_size is None:
            prev = None
            for _ in range(self.max_iter):
                d = _sq_dists(x, c)
                mind, lab = d.min(1)
                inertia = float(mind.mean())
                counts = torch.bincount(lab, minlength=self.n_clusters)
                sums = torch.zeros_like(c).index_add_(0, lab, x)
                new = sums / counts.clamp_min(1).unsqueeze(1).to(x.dtype)
                empty = (counts == 0).nonzero().flatten()
                if len(empty):
                    far = mind.topk(len(empty)).indices
                    new[empty] = x[far]
                c = new
                if prev is not None and prev - inertia <= self.tol * max(prev, 1e-12):
                    break
                prev = inertia
        else:
            counts = torch.zeros(self.n_clusters)
            for _ in range(self.max_iter):
                idx = torch.randint(x.shape[0], (int(self.batch_size),), generator=g)
                xb = x[idx]
                lab = _sq_dists(xb, c).argmin(1)
                bc = torch.bincount(lab, minlength=self.n_clusters).float()
                sums = torch.zeros_like(c).index_add_(0, lab, xb)
                counts += bc
                hit = bc > 0
                # c <- c + (batch mean - c) * bc / counts  (per-centroid learning rate 1/count)
                rate = (bc[hit] / counts[hit]).unsqueeze(1)
                c[hit] = c[hit] + rate * (sums[hit] / bc[hit].unsqueeze(1) - c[hit])
        self.centroids = c
        self.inertia_ = float(_sq_dists(x, c).min(1).values.mean())
        return self

    def predict(self, x: Tensor, chunk: int = 65536) -> Tensor:
        """(N, D) -> (N,) int64 nearest-centroid labels."""
        if self.centroids is None:
            raise ConfigError("KMeans.predict before fit/load")
        x = torch.as_tensor(x, dtype=torch.float32)
        c = self.centroids.to(x.device)
        return torch.cat([_sq_dists(x[i:i + chunk], c).argmin(1) for i in range(0, x.shape[0], chunk)]) \
            if x.shape[0] else torch.zeros(0, dtype=torch.long)

    def state_dict(self) -> dict:
        return {"centroids": self.centroids, "n_clusters": self.n_clusters, "seed": self.seed,
                "inertia": self.inertia_}

    def save(self, path) -> None:
        with atomic_path(path) as tmp:
            torch.save(self.state_dict(), tmp)

    @classmethod
    def load(cls, path) -> "KMeans":
        path = Path(path)
        if not path.exists():
            raise ConfigError(f"{path}: k-means model not found")
        st = torch.load(path, map_location="cpu", weights_only=True)
        km = cls(int(st["n_clusters"]), seed=int(st.get("seed", 0)))
        km.centroids, km.inertia_ = st["centroids"], st.get("inertia")
        return km
