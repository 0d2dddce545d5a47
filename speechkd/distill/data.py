"""Data for speech → speech distillation: the paired teacher/student dataset, its collate and loader,
and SpecAugment on the student's Fbank input.

* :class:`PairedDataset`: the same utterances for two inputs when teacher and student front-ends
  differ (``x`` for the teacher, ``s_x`` for the student).
* :func:`paired_collate`: :func:`~speechkd.data.collate.collate` plus ``s_x`` / ``s_x_lengths``.
* :func:`make_distill_loader`: a DataLoader with a bucket sampler bounded by ``batch_seconds``.
* :func:`spec_augment`: random frequency bands and time spans of a (B, T, F) feature batch zeroed
  (on the fly, in training; the offline, data-dir level augmentation is :mod:`speechkd.data.augment`).

Used by :mod:`speechkd.distill.train`.
"""
from __future__ import annotations

import logging
from typing import Dict, List, Optional

import torch
from torch import Tensor

from ..data.collate import collate, pad_sequence
from ..train.data import make_loader
from ..utils.errors import ConfigError

log = logging.getLogger("speechkd")


# ------------------------------------------------------------------------------------------ data
class PairedDataset(torch.utils.data.Dataset):
    """The same utterances for two inputs: ``x`` from ``teacher_ds`` and ``s_x`` from ``student_ds``.

    Used when teacher and student front-ends differ (waveform CNN teacher, Fbank student). Utterances
    are those of ``teacher_ds`` that ``student_ds`` also has (a missing one is logged and dropped);
    ``lengths`` are the teacher's (for the bucket sampler).

    Example::

        ds = PairedDataset(WavDataset("data/train"), FeatsDataset("data/train", cmvn="cmvn.npz"))
        ds[0]["x"].shape, ds[0]["s_x"].shape     # (S,), (T, 80)
    """

    def __init__(self, teacher_ds, student_ds):
        s_index = {u: i for i, u in enumerate(student_ds.utts)}
        keep = [i for i, u in enumerate(teacher_ds.utts) if u in s_index]
        if len(keep) < len(teacher_ds.utts):
            log.warning("%d of %d utterances have no student input (e.g. missing from feats.scp): dropped",
                        len(teacher_ds.utts) - len(keep), len(teacher_ds.utts))
        if not keep:
            raise ConfigError("teacher and student data share no utterance")
        self.t, self.s = teacher_ds, student_ds
        self.t_index = keep
        self.s_index = [s_index[teacher_ds.utts[i]] for i in keep]
        self.utts = [teacher_ds.utts[i] for i in keep]
        self.lengths = [teacher_ds.lengths[i] for i in keep]

    def __len__(self) -> int:
        return len(self.utts)

    def __getitem__(self, i: int) -> Dict:
        item = self.t[self.t_index[i]]
        item["s_x"] = self.s[self.s_index[i]]["x"]
        return item


def paired_collate(items: List[Dict]) -> Dict:
    """:func:`~speechkd.data.collate.collate` plus ``s_x`` (zero padded) and ``s_x_lengths``."""
    s = [torch.as_tensor(it.pop("s_x")) for it in items] if "s_x" in items[0] else None
    batch = collate(items)
    if s is not None:
        batch["s_x"] = pad_sequence(s, 0.0)
        batch["s_x_lengths"] = torch.tensor([x.shape[0] for x in s], dtype=torch.long)
    return batch


def make_distill_loader(ds, frontend: str, data_cfg: dict, seed: int = 0, train: bool = True):
    """:func:`speechkd.train.data.make_loader` with :func:`paired_collate` (batches bounded by
    ``batch_seconds`` in the teacher ``frontend``'s units)."""
    return make_loader(ds, frontend, data_cfg, seed=seed, train=train, collate_fn=paired_collate)


# ----------------------------------------------------------------------------------- SpecAugment
def spec_augment(x: Tensor, lengths: Optional[Tensor], freq_masks: int = 2, freq_width: int = 10,
                 time_masks: int = 2, time_width: int = 20, generator: Optional[torch.Generator] = None) -> Tensor:
    """Zero ``freq_masks`` random bands (width < ``freq_width``) and ``time_masks`` random spans
    (width < ``time_width``, inside each utterance's valid length) of Fbank features.

    Args:
        x: (B, T, F) features (CMVN-normalised, so zero = the mean).
        lengths: (B,) valid frames or None.
    Returns:
        a masked copy of ``x``.
    """
    B, T, F = x.shape
    keep = torch.ones(B, T, F, dtype=torch.bool, device=x.device)
    lens = lengths.tolist() if lengths is not None else [T] * B
    r = lambda hi: int(torch.randint(0, max(1, hi), (1,), generator=generator))  # noqa: E731
    for b in range(B):
        for _ in range(freq_masks):
            w = r(freq_width)
            f0 = r(F - w + 1)
            keep[b, :, f0:f0 + w] = False
        for _ in range(time_masks):
            w = min(r(time_width), int(lens[b]))
            t0 = r(int(lens[b]) - w + 1)
            keep[b, t0:t0 + w, :] = False
    return x * keep.to(x.dtype)
