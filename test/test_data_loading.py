"""Bucket sampler, padding collate, FeatsDataset/WavDataset on hand-made data."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from speechkd.data.collate import collate
from speechkd.data.dataset import FeatsDataset, WavDataset
from speechkd.data.datadir import DataDir
from speechkd.data.sampler import BucketBatchSampler, make_batches
from speechkd.utils.errors import DataError

LENGTHS = [5, 3, 4, 10, 2, 7, 7, 1]


def test_make_batches_by_hand():
    # ascending order: 7(1) 4(2) 1(3) 2(4) 0(5) 5(7) 6(7) 3(10); padded size <= 10
    assert make_batches(LENGTHS, 10) == [[7, 4, 1], [2, 0], [5], [6], [3]]
    assert make_batches(LENGTHS, 10, max_batch_size=2) == [[7, 4], [1, 2], [0], [5], [6], [3]]
    assert make_batches([12, 1], 10) == [[1], [0]]  # a too-long utterance is a batch of its own


def test_sampler_deterministic_and_covers_all():
    s = BucketBatchSampler(LENGTHS, 10, seed=3)
    for epoch in range(4):
        s.set_epoch(epoch)
        a = list(s)
        s.set_epoch(epoch)
        assert list(s) == a  # pure function of (seed, epoch)
        assert sorted(i for b in a for i in b) == list(range(8))
        for b in a:
            assert len(b) * max(LENGTHS[i] for i in b) <= 10
        assert len(a) == len(s) == 5
    orders = set()
    for epoch in range(6):
        s.set_epoch(epoch)
        orders.add(tuple(map(tuple, s)))
    assert len(orders) > 1  # shuffled between epochs
    # ties (7, 7) are broken by the seeded key, not always index order
    assert BucketBatchSampler(LENGTHS, 10, shuffle=False).global_batches() == make_batches(LENGTHS, 10)


def test_sampler_resume_position():
    s = BucketBatchSampler(LENGTHS, 10, seed=1)
    s.set_epoch(2)
    full = list(s)
    s.set_epoch(2)
    s.set_position(3)
    assert list(s) == full[3:]
    assert list(s) == full  # position is consumed by one iteration
    st = {"epoch": 2, "position": 1, "seed": 1}
    s2 = BucketBatchSampler(LENGTHS, 10, seed=1)
    s2.load_state_dict(st)
    assert list(s2) == full[1:]


def test_sampler_ddp_ranks():
    ref = BucketBatchSampler(LENGTHS, 10, seed=5, rank=0, world_size=1)
    ref.set_epoch(1)
    glob = ref.global_batches()  # 5 batches -> padded to 6 for 2 ranks
    parts = []
    for r in range(2):
        s = BucketBatchSampler(LENGTHS, 10, seed=5, rank=r, world_size=2)
        s.set_epoch(1)
        parts.append(list(s))
        assert len(parts[-1]) == len(s) == 3
    assert parts[0] == [glob[0], glob[2], glob[4]]
    assert parts[1] == [glob[1], glob[3], glob[0]]  # padded with the first batch
    s = BucketBatchSampler(LENGTHS, 10, seed=5, rank=1, world_size=2, drop_last=True)
    s.set_epoch(1)
    assert list(s) == [glob[1], glob[3]]


def test_collate_pads():
    items = [{"utt": "a", "x": torch.ones(3, 2), "tokens": torch.tensor([4, 5]), "lang": "en",
              "labels": torch.tensor([1, 2, 3])},
             {"utt": "b", "x": 2 * torch.ones(1, 2), "tokens": torch.tensor([6]), "lang": "de",
              "labels": torch.tensor([7])}]
    b = collate(items)
    assert b["utts"] == ["a", "b"]
    assert b["x"].shape == (2, 3, 2)
    assert torch.equal(b["x"][1], torch.tensor([[2.0, 2.0], [0, 0], [0, 0]]))
    assert b["x_lengths"].tolist() == [3, 1]
    assert b["tokens"].tolist() == [[4, 5], [6, -1]]
    assert b["token_lengths"].tolist() == [2, 1]
    assert b["lang"] == ["en", "de"]
    assert b["labels"].tolist() == [[1, 2, 3], [7, -1, -1]] and b["labels_lengths"].tolist() == [3, 1]


class SpaceTok:
    """Stand-in tokenizer: one id per space-separated word, unknown words rejected."""

    def __init__(self, words):
        self.ids = {w: i + 1 for i, w in enumerate(words)}

    def encode(self, text):
        return [self.ids[w] for w in text.split()]


def _write_feats(data_dir, rng):
    import kaldiio

    d = DataDir(data_dir)
    mats = {u: rng.standard_normal((20 + 5 * i, 3)).astype(np.float32) for i, u in enumerate(d.utt_ids())}
    with kaldiio.WriteHelper(f"ark,scp:{data_dir}/feats.ark,{data_dir}/feats.scp") as w:
        for u in sorted(mats):
            w(u, mats[u])
    return mats


def test_feats_dataset(tiny_datadir, tmp_path):
    rng = np.random.default_rng(0)
    mats = _write_feats(tiny_datadir, rng)
    mean, std = np.full(3, 0.5, np.float32), np.full(3, 2.0, np.float32)
    np.savez(tmp_path / "cmvn.npz", mean=mean, std=std, count=np.array(10))
    tok = SpaceTok(["alpha", "beta", "gamma", "delta"])
    ds = FeatsDataset(tiny_datadir, cmvn=tmp_path / "cmvn.npz", tokenizer=tok, extra={"lang": "utt2lang"})
    assert ds.lengths == [mats[u].shape[0] for u in ds.utts]
    it = ds[1]
    u = ds.utts[1]
    np.testing.assert_allclose(it["x"].numpy(), (mats[u] - 0.5) / 2.0, rtol=1e-6)
    assert it["tokens"].tolist() == tok.encode(DataDir(tiny_datadir).read("text")[u])
    assert it["lang"] == "en"
    sampler = BucketBatchSampler(ds.lengths, max_frames=80, seed=0)
    loader = torch.utils.data.DataLoader(ds, batch_sampler=sampler, collate_fn=collate)
    seen = [u for b in loader for u in b["utts"]]
    assert sorted(seen) == sorted(ds.utts)
    with pytest.raises(DataError, match=r"text:\d+: cannot tokenize"):
        FeatsDataset(tiny_datadir, tokenizer=SpaceTok(["alpha"]))


def test_wav_dataset(tiny_datadir):
    ds = WavDataset(tiny_datadir, sample_rate=8000, text_file="text")
    # utterance i lasts 0.5 + 0.1 i seconds (conftest)
    idx = [int(u.rsplit("utt", 1)[1]) for u in ds.utts]
    assert ds.lengths == [int(round((0.5 + 0.1 * i) * 8000)) for i in idx]
    it = ds[2]
    assert it["x"].dtype == torch.float32 and it["x"].shape == (ds.lengths[2],)
    assert it["text"] == DataDir(tiny_datadir).read("text")[it["utt"]]
    (tiny_datadir / "wav.scp").write_text(
        (tiny_datadir / "wav.scp").read_text().replace("spk1-utt3.wav", "missing.wav"))
    with pytest.raises(DataError, match=r"wav.scp:5 \(spk1-utt3\): cannot read audio"):
        WavDataset(tiny_datadir, sample_rate=8000)  # found while measuring lengths
