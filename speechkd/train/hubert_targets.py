"""HuBERT pretraining targets, computed once into ark/scp: k-means of MFCC (iteration 1) or of an
intermediate layer of a trained model (iteration 2, 3, ...).

Library form of ``speechkd-hubert-targets``::

    feats = {"train": mfcc_frames("data/pool_mfcc/train"), "dev": mfcc_frames("data/pool_mfcc/dev")}
    info = make_targets(feats, {"n_clusters": 100}, "exp/targets/iter1", phones_from={"train": "data/pool/train"})
    # -> exp/targets/iter1/{kmeans.pt, stats.json, train/labels.{ark,scp}, dev/labels.{ark,scp}}

    feats = {s: model_layer_frames("exp/iter1/model", f"data/pool/{s}", layer=6) for s in ("train", "dev")}
    make_targets(feats, {"n_clusters": 200}, "exp/targets/iter2")

Frames are at the encoder's 50 Hz: MFCC (100 Hz, + deltas, per-utterance mean/variance normalised as in
:func:`speechkd.train.hubert.mfcc_features`) keeps every second frame; a model layer is 50 Hz already.
Labels are int32 vectors, one per utterance, read back by :func:`read_targets` (``speechkd-pretrain
--targets.train exp/targets/iter1/train/labels.scp``). ``stats.json`` holds the k-means inertia, the
cluster usage and, when the data dir has ``phones.ctm`` (mini_espeak's exact phone times), the
quality measures of the HuBERT paper: phone purity, cluster purity and PNMI (phone-normalised mutual
information) of the labels of each set.
"""
from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Dict, Mapping, Optional

import numpy as np
import torch

from ..models.kmeans import KMeans
from ..utils.errors import DataError
from ..utils.fileio import atomic_open, atomic_path

log = logging.getLogger("speechkd")

FRAME_SHIFT = 0.02  # seconds per target frame (50 Hz)


# ------------------------------------------------------------------------------------- features
def mfcc_frames(data_dir, deltas: bool = True, scp_name: str = "feats.scp") -> Dict[str, torch.Tensor]:
    """``{utt: (ceil(T/2), 39) float32}``: normalised MFCC + deltas of ``data_dir/<scp_name>`` at 50 Hz."""
    from .hubert import mfcc_features

    feats = mfcc_features(data_dir, {"mfcc_scp": scp_name, "deltas": deltas}, progress=False)
    return {u: m[::2].contiguous() for u, m in feats.items()}


@torch.no_grad()
def model_layer_frames(model_dir, data_dir, layer: int, batch_seconds: float = 60.0,
                       precision: str = "auto", progress: bool = True) -> Dict[str, torch.Tensor]:
    """``{utt: (T', D) float16}``: output of transformer layer ``layer`` (1-based; 0 = the input of the
    first layer) of the SSL checkpoint ``model_dir`` over ``data_dir`` (no masking, eval mode)."""
    from ..models.checkpoint import load_checkpoint
    from ..utils.progress import progress as progress_bar
    from .data import make_dataset, make_loader
    from .precision import autocast, resolve_precision

    model, cfg = load_checkpoint(model_dir)
    model.eval()
    n_layers = model.cfg.n_layers
    if not 0 <= layer <= n_layers:
        raise ValueError(f"layer {layer} out of range 0..{n_layers} for {model_dir}")
    frontend = model.cfg.frontend
    data_cfg = dict(cfg.get("data") or {}, batch_seconds=batch_seconds)
    cmvn = Path(model_dir) / "cmvn.npz"
    ds = make_dataset(frontend, data_dir, data_cfg, cmvn=cmvn if frontend == "fbank" else None, text_file=None)
    loader = make_loader(ds, frontend, data_cfg, seed=0, train=False)
    dev = torch.device("cpu")
    _, dtype = resolve_precision(precision, dev)
    out: Dict[str, torch.Tensor] = {}
    for batch in progress_bar(loader, desc=f"layer {layer} {Path(data_dir).name}", progress=progress):
        with autocast(dev, dtype):
            o = model(batch["x"], batch["x_lengths"], mask=False)
        h = o.hidden_states[layer].float()
        for i, u in enumerate(batch["utts"]):
            out[u] = h[i, : int(o.lengths[i])].to(torch.float16).clone()
    return out


# ------------------------------------------------------------------------------------- k-means
def fit_kmeans_on(feats: Mapping[str, torch.Tensor], km_cfg: dict) -> KMeans:
    """k-means on at most ``max_fit_frames`` frames drawn (seeded) from all utterances of ``feats``."""
    allf = torch.cat([f.float() for f in feats.values()])
    n = int(km_cfg.get("max_fit_frames") or allf.shape[0])
    g = torch.Generator().manual_seed(int(km_cfg.get("seed", 0)))
    if allf.shape[0] > n:
        allf = allf[torch.randperm(allf.shape[0], generator=g)[:n]]
    log.info("k-means: %d clusters on %d frames of dim %d", km_cfg["n_clusters"], allf.shape[0], allf.shape[1])
    km = KMeans(int(km_cfg["n_clusters"]), max_iter=int(km_cfg.get("max_iter", 30)),
                batch_size=km_cfg.get("batch_size"), seed=int(km_cfg.get("seed", 0))).fit(allf)
    log.info("k-means inertia %.4f", km.inertia_)
    return km


def frame_phones(ctm_path, frames: Mapping[str, int]) -> Dict[str, np.ndarray]:
    """``{utt: (n,) int}`` phone index at the centre of each 20 ms frame (-1 outside any phone), from a
    CTM; phone indices follow the sorted phone inventory of the CTM."""
    from ..align.ctm import read_ctm

    ctm = read_ctm(ctm_path)
    inventory = sorted({e.token for segs in ctm.values() for e in segs})
    index = {p: i for i, p in enumerate(inventory)}
    out = {}
    for utt, n in frames.items():
        lab = np.full(n, -1, dtype=np.int64)
        for e in ctm.get(utt, []):
            a = max(0, int(math.ceil(e.start / FRAME_SHIFT - 0.5)))
            b = min(n, int(math.ceil((e.start + e.dur) / FRAME_SHIFT - 0.5)))
            lab[a:b] = index[e.token]
        out[utt] = lab
    return out


def label_quality(labels: Mapping[str, np.ndarray], phones: Mapping[str, np.ndarray], k: int) -> Dict:
    """HuBERT paper's measures of labels against frame phones: phone purity (mean over clusters of the
    share of their most frequent phone, weighted by cluster size), cluster purity (the same with the
    roles swapped) and PNMI = I(phone; label) / H(phone)."""
    ps, ls = [], []
    for u, lab in labels.items():
        if u in phones:
            n = min(len(lab), len(phones[u]))
            ps.append(phones[u][:n])
            ls.append(np.asarray(lab[:n], dtype=np.int64))
    if not ps:
        return {}
    p, lab = np.concatenate(ps), np.concatenate(ls)
    keep = p >= 0
    p, lab = p[keep], lab[keep]
    n_p = int(p.max()) + 1
    joint = np.zeros((n_p, k), dtype=np.float64)
    np.add.at(joint, (p, lab), 1.0)
    pxy = joint / joint.sum()
    px, py = pxy.sum(1, keepdims=True), pxy.sum(0, keepdims=True)
    nz = pxy > 0
    mi = float((pxy[nz] * np.log(pxy[nz] / (px @ py)[nz])).sum())
    hx = float(-(px[px > 0] * np.log(px[px > 0])).sum())
    return {"frames": int(p.size), "phone_purity": round(float(pxy.max(0).sum()), 4),
            "cluster_purity": round(float(pxy.max(1).sum()), 4), "pnmi": round(mi / hx, 4)}


# ------------------------------------------------------------------------------------- writing
def write_labels(labels: Mapping[str, torch.Tensor], out_dir) -> Path:
    """``out_dir/labels.ark`` + ``labels.scp`` (int32 vectors, sorted by utterance), written atomically."""
    import kaldiio

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ark, scp = out_dir / "labels.ark", out_dir / "labels.scp"
    with atomic_path(scp) as tmp_scp:          # outer: the scp appears only after its ark is in place
        with atomic_path(ark) as tmp_ark:
            with kaldiio.WriteHelper(f"ark,scp:{tmp_ark},{tmp_scp}") as w:
                for u in sorted(labels):
                    w[u] = np.asarray(labels[u], dtype=np.int32)
        # the scp names the temporary ark: point it at the final name
        text = Path(tmp_scp).read_text().replace(str(tmp_ark), str(ark.resolve()))
        Path(tmp_scp).write_text(text)
    return scp


def read_targets(scp) -> Dict[str, torch.Tensor]:
    """``{utt: (L,) int64}`` labels written by :func:`write_labels`."""
    import kaldiio

    scp = Path(scp)
    if not scp.exists():
        raise DataError(scp, None, "targets not found (run speechkd-hubert-targets)")
    return {u: torch.from_numpy(np.asarray(v, dtype=np.int64)) for u, v in kaldiio.load_scp(str(scp)).items()}


def make_targets(feats_by_set: Mapping[str, Mapping[str, torch.Tensor]], km_cfg: dict, out_dir,
                 fit_set: str = "train", phones_from: Optional[Mapping[str, str]] = None,
                 meta: Optional[dict] = None) -> Dict:
    """Fit k-means on ``feats_by_set[fit_set]``, write every set's labels under ``out_dir/<set>/`` and
    ``out_dir/{kmeans.pt,stats.json}``; returns the stats. ``phones_from``: ``{set: data dir}`` whose
    ``phones.ctm`` scores the labels (:func:`label_quality`)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    km = fit_kmeans_on(feats_by_set[fit_set], km_cfg)
    stats: Dict = {"n_clusters": km.n_clusters, "inertia": round(float(km.inertia_), 4), **(meta or {}),
                   "sets": {}}
    for name, feats in feats_by_set.items():
        labels = {u: km.predict(f.float()).to(torch.int32) for u, f in feats.items()}
        scp = write_labels(labels, out_dir / name)
        counts = torch.bincount(torch.cat(list(labels.values())).long(), minlength=km.n_clusters)
        s = {"utts": len(labels), "frames": int(counts.sum()), "scp": str(scp),
             "clusters_used": int((counts > 0).sum()),
             "largest_cluster_share": round(float(counts.max()) / max(1, int(counts.sum())), 4)}
        ctm = Path((phones_from or {}).get(name, "")) / "phones.ctm" if phones_from and name in phones_from else None
        if ctm is not None and ctm.exists():
            s.update(label_quality({u: v.numpy() for u, v in labels.items()},
                                   frame_phones(ctm, {u: len(v) for u, v in labels.items()}), km.n_clusters))
        stats["sets"][name] = s
        log.info("targets %s: %s", name, {k: v for k, v in s.items() if k != "scp"})
    km.save(out_dir / "kmeans.pt")
    with atomic_open(out_dir / "stats.json") as f:
        json.dump(stats, f, indent=1)
    return stats
