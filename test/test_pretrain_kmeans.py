"""k-means (k-means++ init, full and mini-batch) on separable blobs; Kaldi-style deltas by hand."""
from __future__ import annotations

import pytest
import torch

from speechkd.models.kmeans import KMeans, add_deltas

MEANS = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]])


def blobs(n=200, seed=0):
    g = torch.Generator().manual_seed(seed)
    lab = torch.arange(4).repeat_interleave(n)
    return MEANS[lab] + 0.5 * torch.randn(4 * n, 2, generator=g), lab


@pytest.mark.parametrize("batch_size", [None, 64])
def test_kmeans_recovers_blobs(batch_size, tmp_path):
    x, true = blobs()
    km = KMeans(4, max_iter=100, batch_size=batch_size, seed=1).fit(x)
    pred = km.predict(x)
    # each true blob maps to exactly one cluster, and vice versa (purity 1)
    mapping = {int(t): set(pred[true == t].tolist()) for t in range(4)}
    assert all(len(v) == 1 for v in mapping.values())
    assert len(set.union(*mapping.values())) == 4
    for t in range(4):
        c = km.centroids[next(iter(mapping[t]))]
        assert torch.dist(c, MEANS[t]) < 0.3
    assert km.inertia_ == pytest.approx(2 * 0.25, rel=0.25)  # 2 dims x variance 0.25
    km.save(tmp_path / "km.pt")
    km2 = KMeans.load(tmp_path / "km.pt")
    assert torch.equal(km2.predict(x), pred)
    again = KMeans(4, max_iter=100, batch_size=batch_size, seed=1).fit(x)
    assert torch.equal(again.centroids, km.centroids)  # seeded


def test_add_deltas_by_hand():
    x = torch.tensor([[0.0], [1.0], [4.0], [9.0], [16.0]])
    d = add_deltas(x, order=1, window=2)
    # delta_t = sum_n n (x_{t+n} - x_{t-n}) / 10 with edge replication
    want = [(1 * (1 - 0) + 2 * (4 - 0)) / 10, (1 * (4 - 0) + 2 * (9 - 0)) / 10,
            (1 * (9 - 1) + 2 * (16 - 0)) / 10, (1 * (16 - 4) + 2 * (16 - 1)) / 10,
            (1 * (16 - 9) + 2 * (16 - 4)) / 10]
    torch.testing.assert_close(d[:, 1], torch.tensor(want))
    assert add_deltas(torch.zeros(7, 13)).shape == (7, 39)
