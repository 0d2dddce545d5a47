"""Datasets and loaders for a model's input kind, shared by the pretrain/fine-tune/distill recipes.

A model whose front-end is ``cnn`` reads waveforms (``wav.scp``), one with ``fbank`` reads ``feats.scp``
normalised by a global CMVN (``cmvn.npz``)::

    cfg = merge(DATA_DEFAULTS, {"batch_seconds": 40})
    cmvn = resolve_cmvn(cfg, "data/train", "exp/teacher")       # None for waveform models
    ds = make_dataset("fbank", "data/train", cfg, cmvn=cmvn, tokenizer=tok)
    loader = make_loader(ds, "fbank", cfg, seed=0, train=True)  # BucketBatchSampler + collate

``batch_seconds`` bounds the padded audio per batch (converted to frames or samples).
"""
from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Optional

import torch

from ..data.collate import collate
from ..data.dataset import FeatsDataset, WavDataset
from ..data.sampler import BucketBatchSampler
from ..utils.errors import ConfigError, DataError

log = logging.getLogger("speechkd")

#: Defaults of the ``data:`` config section.
DATA_DEFAULTS = {
    "sample_rate": 16000,
    "feats_file": "feats.scp",
    "cmvn": None,             # path to cmvn.npz; null = <train data>/cmvn.npz, else computed from feats.scp
    "text_file": "text",      # transcript file for tokens: text | phones
    "batch_seconds": 40.0,    # padded seconds of audio per batch
    "max_batch_size": None,
    "num_workers": 0,
}

FRAME_RATE = 100  # feature frames per second


def resolve_cmvn(data_cfg: dict, train_data, exp_dir, init_dir=None) -> Optional[Path]:
    """Find (or compute) the CMVN stats for a fbank model and copy them to ``exp_dir/cmvn.npz``.

    Order: ``data_cfg['cmvn']``, ``init_dir/cmvn.npz`` (the model being fine-tuned/distilled),
    ``<train_data>/cmvn.npz``, else computed from ``<train_data>/feats.scp``.
    """
    from ..utils.fileio import atomic_path

    exp_dir = Path(exp_dir)
    out = exp_dir / "cmvn.npz"
    cands = [data_cfg.get("cmvn"), init_dir and Path(init_dir) / "cmvn.npz", Path(train_data) / "cmvn.npz"]
    for c in cands:
        if c and Path(c).exists():
            if Path(c).resolve() != out.resolve():
                exp_dir.mkdir(parents=True, exist_ok=True)
                with atomic_path(out) as tmp:
                    shutil.copyfile(c, tmp)
            log.info("CMVN stats: %s", c)
            return out
    if data_cfg.get("cmvn"):
        raise ConfigError(f"data.cmvn: {data_cfg['cmvn']} not found")
    if out.exists():
        return out
    from ..features.cmvn import compute_cmvn_from_scp

    scp = Path(train_data) / data_cfg.get("feats_file", "feats.scp")
    if not scp.exists():
        raise DataError(scp, None, "not found: a fbank front-end needs features (run the feature stage)")
    log.info("computing CMVN stats from %s", scp)
    exp_dir.mkdir(parents=True, exist_ok=True)
    compute_cmvn_from_scp(scp, progress=False).save(out)
    return out


def make_dataset(frontend: str, data_dir, data_cfg: dict, cmvn=None, tokenizer=None, extra=None,
                 arrays=None, text_file: Optional[str] = None):
    """FeatsDataset (``frontend="fbank"``) or WavDataset (``"cnn"``) over ``data_dir``."""
    text_file = text_file if text_file is not None else data_cfg.get("text_file", "text")
    if frontend == "fbank":
        return FeatsDataset(data_dir, cmvn=cmvn, tokenizer=tokenizer, text_file=text_file, extra=extra,
                            arrays=arrays, feats_file=data_cfg.get("feats_file", "feats.scp"))
    if frontend == "cnn":
        return WavDataset(data_dir, sample_rate=int(data_cfg.get("sample_rate", 16000)), tokenizer=tokenizer,
                          text_file=text_file, extra=extra, arrays=arrays)
    raise ConfigError(f"unknown front-end '{frontend}' (cnn, fbank)")


def units_per_second(frontend: str, data_cfg: dict) -> int:
    return FRAME_RATE if frontend == "fbank" else int(data_cfg.get("sample_rate", 16000))


def make_loader(ds, frontend: str, data_cfg: dict, seed: int = 0, train: bool = True, collate_fn=None):
    """DataLoader with a :class:`BucketBatchSampler` bounded by ``batch_seconds`` of padded audio
    (``frontend``'s units); ``collate_fn`` defaults to :func:`speechkd.data.collate.collate`."""
    max_units = int(float(data_cfg.get("batch_seconds", 40.0)) * units_per_second(frontend, data_cfg))
    sampler = BucketBatchSampler(ds.lengths, max_units, max_batch_size=data_cfg.get("max_batch_size"),
                                 shuffle=train, seed=seed, world_size=None if train else 1,
                                 rank=None if train else 0)
    return torch.utils.data.DataLoader(ds, batch_sampler=sampler, collate_fn=collate_fn or collate,
                                       num_workers=int(data_cfg.get("num_workers", 0)))


def copy_files_into(files):
    """``extra_save_fn`` for :class:`~speechkd.train.trainer.Trainer`: copy the existing ``files``
    (None entries skipped) into each saved checkpoint dir under their own names."""
    def fn(d: Path):
        for f in files:
            if f is not None and Path(f).exists():
                shutil.copyfile(f, d / Path(f).name)
    return fn
