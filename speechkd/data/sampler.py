"""Length-bucketed batch sampler: batches bounded by padded frames, deterministic, DDP- and resume-aware.

Utterances are sorted by length (ties broken by a seeded random key, so equal-length utterances mix
between epochs), cut greedily into batches whose *padded* size ``n_utts * max_len`` stays within
``max_frames``, and the batch order is shuffled. Everything is a pure function of ``(seed, epoch)``::

    sampler = BucketBatchSampler(lengths=[120, 80, 300, 95], max_frames=400, seed=1)
    sampler.set_epoch(3)
    batches = list(sampler)            # e.g. [[2], [1, 3, 0]] -- lists of dataset indices
    loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=collate)

Resuming mid-epoch: ``sampler.set_epoch(e); sampler.set_position(k)`` makes the next iteration skip the
first ``k`` batches of epoch ``e`` (the trainer does this from ``train_state.pt``). Under DDP each rank
takes every ``world_size``-th batch of the same global order; the batch list is padded by repeating
batches from its start so that every rank sees the same number of batches.
"""
from __future__ import annotations

import os
from typing import Iterator, List, Optional, Sequence

import numpy as np

from ..utils.errors import ConfigError


def _dist_info(rank: Optional[int], world_size: Optional[int]):
    if world_size is None:
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if rank is None:
        rank = int(os.environ.get("RANK", "0"))
    if not 0 <= rank < world_size:
        raise ConfigError(f"rank {rank} out of range for world size {world_size}")
    return rank, world_size


def make_batches(lengths: Sequence[int], max_frames: int, max_batch_size: Optional[int] = None,
                 order: Optional[Sequence[int]] = None) -> List[List[int]]:
    """Cut indices (in ``order``, default ascending length) into batches of padded size <= max_frames.

    A single utterance longer than ``max_frames`` becomes a batch of its own.

    >>> make_batches([5, 3, 4, 10], max_frames=10)
    [[1, 2], [0], [3]]
    """
    if order is None:
        order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    batches: List[List[int]] = []
    cur: List[int] = []
    cur_max = 0
    for i in order:
        n = int(lengths[i])
        new_max = max(cur_max, n)
        too_big = cur and (new_max * (len(cur) + 1) > max_frames
                           or (max_batch_size is not None and len(cur) >= max_batch_size))
        if too_big:
            batches.append(cur)
            cur, new_max = [], n
        cur.append(i)
        cur_max = new_max
    if cur:
        batches.append(cur)
    return batches


class ResumableSamplerState:
    """Epoch/position state the trainer sets on a batch sampler whose order is a function of
    ``(seed, epoch)``: ``set_epoch``, ``set_position`` (batches to skip on the next ``iter()``) and
    ``state_dict``/``load_state_dict``. Subclasses set ``self.seed``, ``self.epoch``, ``self.position``."""

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        self.position = 0

    def set_position(self, position: int) -> None:
        """Skip the first ``position`` batches of the current epoch on the next ``iter()``."""
        self.position = int(position)

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position, "seed": self.seed}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.position = int(state["epoch"]), int(state["position"])


class BucketBatchSampler(ResumableSamplerState):
    """Batch sampler yielding lists of dataset indices (see module doc).

    Args:
        lengths: per-utterance length (frames or samples; the same unit as ``max_frames``).
        max_frames: bound on ``batch_size * longest`` in a batch.
        max_batch_size: optional bound on utterances per batch.
        shuffle: shuffle batch order (and ties) by ``(seed, epoch)``; False keeps length order.
        seed: base seed.
        rank, world_size: DDP position; default from env ``RANK``/``WORLD_SIZE`` (1 process if unset).
        drop_last: under DDP drop the tail instead of padding it with repeated batches.
    """

    def __init__(self, lengths: Sequence[int], max_frames: int, max_batch_size: Optional[int] = None,
                 shuffle: bool = True, seed: int = 0, rank: Optional[int] = None,
                 world_size: Optional[int] = None, drop_last: bool = False):
        if max_frames <= 0:
            raise ConfigError(f"max_frames must be positive, got {max_frames}")
        if len(lengths) == 0:
            raise ConfigError("BucketBatchSampler: no utterances")
        self.lengths = [int(n) for n in lengths]
        self.max_frames = int(max_frames)
        self.max_batch_size = max_batch_size
        self.shuffle = shuffle
        self.seed = int(seed)
        self.rank, self.world_size = _dist_info(rank, world_size)
        self.drop_last = drop_last
        self.epoch = 0
        self.position = 0  # batches of this rank's current epoch to skip on the next iteration

    # ------------------------------------------------------------------ batches
    def global_batches(self, epoch: Optional[int] = None) -> List[List[int]]:
        """All batches of one epoch, in order, before splitting between ranks."""
        epoch = self.epoch if epoch is None else epoch
        if self.shuffle:
            rng = np.random.default_rng([self.seed, epoch])
            tie = rng.permutation(len(self.lengths))
            order = sorted(range(len(self.lengths)), key=lambda i: (self.lengths[i], tie[i]))
            batches = make_batches(self.lengths, self.max_frames, self.max_batch_size, order)
            perm = rng.permutation(len(batches))
            batches = [batches[j] for j in perm]
        else:
            batches = make_batches(self.lengths, self.max_frames, self.max_batch_size)
        return batches

    def rank_batches(self, epoch: Optional[int] = None) -> List[List[int]]:
        batches = self.global_batches(epoch)
        w = self.world_size
        if w > 1:
            if self.drop_last:
                batches = batches[: len(batches) // w * w]
            else:
                extra = (-len(batches)) % w
                batches = batches + [batches[i % len(batches)] for i in range(extra)]
            batches = batches[self.rank::w]
        return batches

    def __iter__(self) -> Iterator[List[int]]:
        batches = self.rank_batches()
        start, self.position = self.position, 0
        for b in batches[start:]:
            yield list(b)

    def __len__(self) -> int:
        """Number of batches of this rank in a full epoch (does not depend on the epoch)."""
        return len(self.rank_batches(0))
