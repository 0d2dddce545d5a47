"""HuBERT pretraining: masked prediction of k-means cluster labels (iteration 1: of MFCC; iteration 2+:
of an intermediate layer of the previous iteration's model, made by :mod:`speechkd.train.hubert_targets`).

Library form of ``speechkd-pretrain``::

    cfg = load_config("conf/pretrain.yaml", defaults=PRETRAIN_DEFAULTS)
    model_dir = pretrain_hubert(cfg, "data/train", "data/dev", "exp/teacher")
    model, config = load_checkpoint(model_dir)       # SSLModel (type ssl) with its HubertHead (model.head)
    km = KMeans.load(model_dir / "kmeans.pt")        # the k-means codebook of the targets

Labels: ``targets.train`` / ``targets.valid`` (label scp files written once by ``speechkd-hubert-targets``,
with ``targets.kmeans`` its codebook) when given; otherwise (iteration 1 in one step) Kaldi MFCC (13) of each utterance (or read from ``kmeans.mfcc_scp``) with deltas and
per-utterance mean/variance normalisation, clustered into ``kmeans.n_clusters`` classes on a seeded
sample of frames; the 100 Hz labels are taken every second frame to match the encoder's 50 Hz and
cut/padded (-1 = ignored) to the encoder length. Loss: cross-entropy of ``HubertHead.logits`` on masked
frames (+ ``loss.unmasked_weight`` x the unmasked frames); logged: ``acc_m``/``acc_u`` accuracies.
Masking as in the HuBERT paper: ``mask_time_prob`` 0.8 of the frames start a span of ``mask_time_length`` 10,
so that about half of the frames are masked (spans overlap).
"""
from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Dict

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..models.kmeans import KMeans, add_deltas
from ..models.ssl import MINI_SSL, SSLConfig, SSLModel
from ..utils.config import merge, save_config
from ..utils.errors import ConfigError, DataError
from .data import DATA_DEFAULTS, make_dataset, make_loader, resolve_cmvn
from .optim import OPTIM_DEFAULTS
from .rng import seed_everything
from .trainer import TRAIN_DEFAULTS, Trainer

log = logging.getLogger("speechkd")

PRETRAIN_DEFAULTS: Dict = {
    "model": {"type": "ssl", **SSLConfig.from_dict({**MINI_SSL, "arch": "hubert", "mask_time_prob": 0.8,
                                                    "mask_time_length": 10}).to_dict()},
    # label scp files from speechkd-hubert-targets (null: MFCC k-means computed here, iteration 1)
    "targets": {"train": None, "valid": None, "kmeans": None},
    # warm start: an SSL checkpoint dir (e.g. the previous iteration) whose encoder initialises this model;
    # the label head is always new (new targets). null = random weights, as in the HuBERT paper.
    "init": None,
    "kmeans": {"n_clusters": 100, "max_fit_frames": 100000, "max_iter": 30, "batch_size": None, "seed": 0,
               "deltas": True, "mfcc_scp": None},  # mfcc_scp: file in the data dir; null = computed
    "loss": {"unmasked_weight": 0.0},
    "data": dict(DATA_DEFAULTS),
    "optim": dict(OPTIM_DEFAULTS, lr=5e-4, warmup_steps=100),
    "train": dict(TRAIN_DEFAULTS, max_steps=1000, best_metric="acc_m", best_mode="max"),
}


# ------------------------------------------------------------------------------------- targets
def mfcc_features(data_dir, km_cfg: dict, sample_rate: int = 16000, progress: bool = True) -> Dict[str, torch.Tensor]:
    """``{utt: (T, 13 or 39) float32}`` normalised MFCC (+ deltas) of a data dir at 100 Hz."""
    from ..utils.progress import progress as progress_bar

    from ..data.datadir import DataDir

    utts = DataDir(data_dir).utt_ids()
    out: Dict[str, torch.Tensor] = {}
    if km_cfg.get("mfcc_scp"):
        import kaldiio

        scp = Path(data_dir) / km_cfg["mfcc_scp"]  # a file name inside each data dir, e.g. mfcc.scp
        table = kaldiio.load_scp(str(scp))
        it = ((u, torch.from_numpy(np.array(table[u], dtype=np.float32))) for u in utts if u in table)
    else:
        from ..data.audio import iter_data_audio
        from ..features.kaldi import mfcc

        it = ((u, mfcc(torch.from_numpy(w), sample_rate=sample_rate)) for u, w in
              iter_data_audio(data_dir, sample_rate, utts=utts))
    for u, m in progress_bar(it, total=len(utts), desc=f"mfcc {Path(data_dir).name}", progress=progress):
        if km_cfg.get("deltas", True):
            m = add_deltas(m)
        m = (m - m.mean(0)) / m.std(0, unbiased=False).clamp_min(1e-5) if m.shape[0] > 1 else m * 0
        out[u] = m
    if len(out) != len(utts):
        missing = [u for u in utts if u not in out][:1]
        raise DataError(km_cfg.get("mfcc_scp") or data_dir, None, f"no MFCC for utterance '{missing[0]}'")
    return out


def frame_labels(km: KMeans, feats: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """``{utt: (ceil(T/2),) int64}``: k-means labels of the 100 Hz frames, every second one (50 Hz)."""
    return {u: km.predict(m)[::2].contiguous() for u, m in feats.items()}


def align_labels(labels: torch.Tensor, length: int) -> torch.Tensor:
    """Cut or pad (with -1) padded labels (B, L) to (B, length)."""
    if labels.shape[1] >= length:
        return labels[:, :length]
    return F.pad(labels, (0, length - labels.shape[1]), value=-1)


# ------------------------------------------------------------------------------------- task
class HubertPretrainTask(nn.Module):
    """SSLModel (with ``head``) + masked-prediction loss; ``forward(batch) -> (loss, stats)``.

    ``batch``: ``x`` (B, S) or (B, T, F), ``x_lengths`` (B,), ``labels`` (B, L) int64 padded with -1.
    """

    def __init__(self, model: SSLModel, unmasked_weight: float = 0.0):
        super().__init__()
        if model.head is None:
            raise ConfigError("HuBERT pretraining needs model.num_labels > 0")
        self.model = model
        self.unmasked_weight = float(unmasked_weight)

    def forward(self, batch):
        out = self.model(batch["x"], batch["x_lengths"], mask=True)
        logits = self.model.head.logits(out.last_hidden_state).float()
        labels = align_labels(batch["labels"], logits.shape[1])
        valid = (labels >= 0) & ~out.padding_mask
        masked = valid & out.mask_indices if out.mask_indices is not None else valid
        unmasked = valid & ~masked
        stats = {}
        loss = logits.sum() * 0.0
        for name, sel, w in (("m", masked, 1.0), ("u", unmasked, self.unmasked_weight)):
            if sel.any():
                lg, lb = logits[sel], labels[sel]
                ce = F.cross_entropy(lg, lb)
                if w:
                    loss = loss + w * ce
                stats[f"loss_{name}"] = float(ce.detach())
                stats[f"acc_{name}"] = float((lg.argmax(-1) == lb).float().mean())
        return loss, stats


def hubert_step(model, batch):
    return model(batch)


# ------------------------------------------------------------------------------------- recipe
def _copy_into(files):
    def fn(d: Path):
        for f in files:
            if f is not None and Path(f).exists():
                shutil.copyfile(f, d / Path(f).name)
    return fn


def _has_sets(labels: dict, with_valid: bool) -> bool:
    return "train" in labels and (not with_valid or "valid" in labels)


def warm_start_encoder(model: SSLModel, init) -> None:
    """Copy every non-head weight of the SSL checkpoint ``init`` into ``model`` (same encoder architecture
    required); the HubertHead keeps its fresh initialisation, since the targets (and their number) change."""
    from ..models.checkpoint import load_checkpoint, load_state_dict_checked

    src, src_cfg = load_checkpoint(init)
    if src_cfg["model"].get("type") != "ssl":
        raise ConfigError(f"{init}: init must be an SSL checkpoint (type ssl), not '{src_cfg['model'].get('type')}'")
    state = {k: v for k, v in src.state_dict().items() if not k.startswith("head.")}
    n_copied = len(state)
    state.update({k: v for k, v in model.state_dict().items() if k.startswith("head.")})   # the new head
    load_state_dict_checked(model, state, f"{init} (warm start of this model config)")
    log.info("warm start: encoder from %s (%d tensors), new label head", init, n_copied)


def pretrain_hubert(cfg: dict, train_data, valid_data=None, exp_dir="exp/teacher") -> Path:
    """Run one HuBERT iteration (see module doc); returns ``exp_dir/model``."""
    cfg = merge(PRETRAIN_DEFAULTS, cfg)
    exp_dir = Path(exp_dir)
    exp_dir.mkdir(parents=True, exist_ok=True)
    km_cfg, data_cfg = cfg["kmeans"], cfg["data"]
    sr = int(data_cfg.get("sample_rate", 16000))
    progress = bool(cfg["train"].get("progress", True))

    # 1. targets: precomputed label scp files, or MFCC k-means (cached in exp_dir for re-runs/resume)
    tg = cfg["targets"]
    km_path = exp_dir / "kmeans.pt"
    labels_path = exp_dir / "labels.pt"
    if tg.get("train"):
        from .hubert_targets import read_targets

        if not tg.get("kmeans"):
            raise ConfigError("targets.kmeans (the codebook of targets.train) must be set with targets.train")
        km = KMeans.load(tg["kmeans"])
        if Path(tg["kmeans"]).resolve() != km_path.resolve():
            shutil.copyfile(tg["kmeans"], km_path)
        labels = {"train": read_targets(tg["train"])}
        if valid_data is not None:
            if not tg.get("valid"):
                raise ConfigError("targets.valid must be set with targets.train when --valid-data is given")
            labels["valid"] = read_targets(tg["valid"])
        log.info("targets: %s (%d utts), %d clusters", tg["train"], len(labels["train"]), km.n_clusters)
    elif (km_path.exists() and labels_path.exists()
          and _has_sets(labels := torch.load(labels_path, weights_only=True), valid_data is not None)):
        km = KMeans.load(km_path)
        log.info("reusing %s and %s", km_path, labels_path)
    else:
        feats = mfcc_features(train_data, km_cfg, sr, progress)
        from .hubert_targets import fit_kmeans_on

        km = fit_kmeans_on(feats, km_cfg)
        labels = {"train": frame_labels(km, feats)}
        if valid_data is not None:
            labels["valid"] = frame_labels(km, mfcc_features(valid_data, km_cfg, sr, progress))
        km.save(km_path)
        from ..utils.fileio import atomic_path

        with atomic_path(labels_path) as tmp:
            torch.save(labels, tmp)
    counts = torch.bincount(torch.cat(list(labels["train"].values())), minlength=km.n_clusters)
    log.info("label usage: %d of %d clusters used, largest %.1f%% of frames", int((counts > 0).sum()),
             km.n_clusters, 100.0 * float(counts.max()) / float(counts.sum()))

    # 2. model and data
    model_cfg = dict(cfg["model"], num_labels=km.n_clusters, type="ssl")
    seed_everything(int(cfg["train"].get("seed", 0)))  # model init is part of the seeded run
    model = SSLModel(SSLConfig.from_dict(model_cfg))
    if cfg.get("init"):
        warm_start_encoder(model, cfg["init"])
    cfg["model"] = model.model_config()
    frontend = model.cfg.frontend
    cmvn = resolve_cmvn(data_cfg, train_data, exp_dir) if frontend == "fbank" else None
    if cmvn is not None:
        cfg["data"] = dict(data_cfg, cmvn=str(cmvn))
    seed = int(cfg["train"].get("seed", 0))
    train_ds = make_dataset(frontend, train_data, data_cfg, cmvn=cmvn, arrays={"labels": labels["train"]},
                            text_file="text")
    train_loader = make_loader(train_ds, frontend, data_cfg, seed=seed, train=True)
    valid_loader = None
    if valid_data is not None:
        valid_ds = make_dataset(frontend, valid_data, data_cfg, cmvn=cmvn, arrays={"labels": labels["valid"]},
                                text_file="text")
        valid_loader = make_loader(valid_ds, frontend, data_cfg, seed=seed, train=False)
    save_config(cfg, exp_dir / "config.yaml")

    # 3. train
    task = HubertPretrainTask(model, cfg["loss"]["unmasked_weight"])
    trainer = Trainer(task, hubert_step, cfg["optim"], exp_dir, cfg,
                      state_dict_fn=lambda t: t.model.state_dict(), extra_save_fn=_copy_into([km_path, cmvn]))
    trainer.fit(train_loader, valid_loader)
    return exp_dir / "model"
