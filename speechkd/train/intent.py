"""Intent classification: fine-tune an :class:`~speechkd.models.intent.IntentModel` from an SSL
checkpoint on a small labelled set (``utt2intent``), pick that set, and evaluate/score a data dir.

``finetune_intent`` trains SSL encoder + intent head with cross-entropy; ``finetune.freeze_encoder_steps``
trains only the head first (``finetune.freeze_encoder``: the head only, throughout). ``evaluate_intent``
writes ``<dir>/hyp`` and ``<dir>/ref`` (``utt intent``), ``accuracy.json`` and a ``score.json`` in the
ESPnet table form (unit ``intent``: one token per utterance, so ``Corr`` is the accuracy and ``Err`` the
error rate) for ``speechkd-make-results``.

Library use::

    cfg = load_config("conf/intent.yaml", defaults=INTENT_DEFAULTS)
    utts = select_labelled("data/train", per_intent=3, seed=1)
    model_dir = finetune_intent(cfg, "data/train_sub", "exp/pad/pad_seed1/model", "exp/intent/pad/seed1",
                                valid_data="data/dev")
    acc = evaluate_intent(model_dir, "data/test", "exp/intent/pad/seed1/decode_test")["accuracy"]
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..data.datadir import DataDir, read_kv
from ..models.checkpoint import load_checkpoint
from ..models.intent import IntentModel
from ..models.ssl import SSLModel
from ..utils.config import merge, save_config
from ..utils.errors import ConfigError
from ..utils.fileio import atomic_open, atomic_write_text
from .data import DATA_DEFAULTS, copy_files_into, make_dataset, make_loader, resolve_cmvn
from .optim import OPTIM_DEFAULTS
from .rng import seed_everything
from .trainer import TRAIN_DEFAULTS, Trainer

__all__ = ["INTENT_DEFAULTS", "IntentTask", "select_labelled", "finetune_intent", "intent_score",
           "evaluate_intent"]

log = logging.getLogger("speechkd")

#: Defaults of an intent fine-tuning config.
INTENT_DEFAULTS: Dict = {
    "model": {"hidden_dim": 256, "dropout": 0.1, "layer": -1, "freeze_frontend": True,
              "overrides": {"mask_time_prob": 0.05, "mask_time_length": 5, "layerdrop": 0.0}},
    "finetune": {"freeze_encoder_steps": 0, "freeze_encoder": False},
    "data": dict(DATA_DEFAULTS),
    "optim": dict(OPTIM_DEFAULTS, lr=1e-3, warmup_steps=10),
    "train": dict(TRAIN_DEFAULTS, max_steps=150, best_metric="acc", best_mode="max"),
}


class IntentTask(nn.Module):
    def __init__(self, model: IntentModel):
        super().__init__()
        self.model = model
        self.index = {n: i for i, n in enumerate(model.intents)}

    def forward(self, batch):
        logits = self.model(batch["x"], batch["x_lengths"])
        y = torch.tensor([self.index[i] for i in batch["intent"]], device=logits.device)
        loss = F.cross_entropy(logits.float(), y)
        acc = float((logits.argmax(-1) == y).float().mean())
        return loss, {"acc": 100.0 * acc}


@torch.no_grad()
def _validate_intent(task, loader) -> Dict[str, float]:
    task.eval()
    loss = correct = n = 0.0
    dev = next(task.parameters()).device
    for batch in loader:
        logits = task.model(batch["x"].to(dev), batch["x_lengths"].to(dev))
        y = torch.tensor([task.index.get(i, -100) for i in batch["intent"]], device=dev)
        loss += float(F.cross_entropy(logits.float(), y, reduction="sum", ignore_index=-100))
        correct += float((logits.argmax(-1) == y).sum())
        n += len(y)
    task.train()
    return {"loss": loss / max(n, 1), "acc": 100.0 * correct / max(n, 1)}


def select_labelled(data_dir, per_intent: int, seed: int) -> List[str]:
    """``per_intent`` utterances of each intent (``utt2intent``), drawn with ``seed``; sorted ids."""
    import random

    u2i = read_kv(DataDir(data_dir).file("utt2intent"))
    by: Dict[str, List[str]] = {}
    for u, i in u2i.items():
        by.setdefault(i, []).append(u)
    rng = random.Random(seed)
    out = []
    for i in sorted(by):
        out += rng.sample(by[i], min(per_intent, len(by[i])))
    return sorted(out)


def finetune_intent(cfg: dict, train_data, init, exp_dir, valid_data=None, intents: Optional[Sequence[str]] = None
                    ) -> Path:
    """Train :class:`IntentModel` from the SSL checkpoint ``init`` on ``train_data`` (feats.scp +
    utt2intent); returns ``exp_dir/model``. ``intents`` fixes the label list (default: sorted labels of
    ``train_data`` and ``valid_data``)."""
    cfg = merge(INTENT_DEFAULTS, cfg)
    exp_dir = Path(exp_dir)
    exp_dir.mkdir(parents=True, exist_ok=True)
    seed = int(cfg["train"].get("seed", 0))
    seed_everything(seed)
    src, src_cfg = load_checkpoint(init)
    if isinstance(src, IntentModel):
        src = src.encoder
    if not isinstance(src, SSLModel):
        raise ConfigError(f"{init}: intent fine-tuning starts from an SSL checkpoint, got '{src_cfg['model']['type']}'")
    if intents is None:
        labels = set(read_kv(DataDir(train_data).file("utt2intent")).values())
        if valid_data is not None:
            labels |= set(read_kv(DataDir(valid_data).file("utt2intent")).values())
        intents = sorted(labels)
    mcfg = cfg["model"]
    enc_cfg = dict(src.cfg.to_dict(), **(mcfg.get("overrides") or {}))
    model = IntentModel(enc_cfg, intents, int(mcfg["hidden_dim"]), float(mcfg["dropout"]), int(mcfg["layer"]),
                        bool(mcfg["freeze_frontend"]))
    state = {k: v for k, v in src.state_dict().items() if not k.startswith("head.")}
    model.encoder.load_state_dict(state, strict=True)
    cfg["model"] = model.model_config()
    cfg["init"] = str(init)
    data_cfg = cfg["data"]
    frontend = model.encoder.cfg.frontend
    cmvn = resolve_cmvn(data_cfg, train_data, exp_dir, init_dir=init) if frontend == "fbank" else None
    if cmvn is not None:
        cfg["data"] = dict(data_cfg, cmvn=str(cmvn))
    extra = {"intent": "utt2intent"}
    train_ds = make_dataset(frontend, train_data, data_cfg, cmvn=cmvn, extra=extra, text_file=None)
    loader = make_loader(train_ds, frontend, data_cfg, seed=seed, train=True)
    vloader = None
    if valid_data is not None:
        vloader = make_loader(make_dataset(frontend, valid_data, data_cfg, cmvn=cmvn, extra=extra, text_file=None),
                              frontend, data_cfg, seed=seed, train=False)
    fcfg = cfg["finetune"]
    if fcfg.get("freeze_encoder"):
        cfg["train"] = dict(cfg["train"], freeze=list(cfg["train"].get("freeze") or []) + ["model.encoder."])
    elif int(fcfg.get("freeze_encoder_steps") or 0):
        cfg["train"] = dict(cfg["train"], freeze_steps={**(cfg["train"].get("freeze_steps") or {}),
                                                         "model.encoder.": int(fcfg["freeze_encoder_steps"])})
    save_config(cfg, exp_dir / "config.yaml")
    log.info("intent fine-tuning: %d intents, %d labelled utts, from %s", len(intents), len(train_ds), init)
    trainer = Trainer(IntentTask(model), lambda task, batch: task(batch), cfg["optim"], exp_dir, cfg,
                      state_dict_fn=lambda t: t.model.state_dict(), extra_save_fn=copy_files_into([cmvn]))
    trainer.fit(loader, vloader, valid_fn=_validate_intent if vloader is not None else None)
    return exp_dir / "model"


def intent_score(refs: Dict[str, str], hyps: Dict[str, str]) -> dict:
    """ESPnet-table stats of intent classification (unit ``intent``, one token per utterance)."""
    missing = [u for u in refs if u not in hyps]
    if missing:
        raise ConfigError(f"no prediction for utterance '{missing[0]}'")
    n = len(refs)
    corr = sum(hyps[u] == r for u, r in refs.items())
    return {"snt": n, "wrd": n, "corr": corr, "sub": n - corr, "dele": 0, "ins": 0, "serr": n - corr}


@torch.no_grad()
def evaluate_intent(model_dir, data_dir, out_dir, batch_seconds: float = 60.0) -> dict:
    """Predict the intents of ``data_dir`` (feats.scp + utt2intent) with an intent checkpoint and write
    ``out_dir/{hyp,ref,accuracy.json,score.json}``; returns ``{"accuracy", "n", "correct"}``."""
    from ..asr.scoring import ErrorStats

    model, cfg = load_checkpoint(model_dir)
    if not isinstance(model, IntentModel):
        raise ConfigError(f"{model_dir}: not an intent model (type {cfg['model']['type']})")
    frontend = model.encoder.cfg.frontend
    data_cfg = dict(DATA_DEFAULTS, **{k: v for k, v in (cfg.get("data") or {}).items() if k in DATA_DEFAULTS})
    data_cfg["batch_seconds"] = batch_seconds
    cmvn = None
    if frontend == "fbank":
        cmvn = Path(model_dir) / "cmvn.npz"
        cmvn = cmvn if cmvn.exists() else data_cfg.get("cmvn")
    ds = make_dataset(frontend, data_dir, data_cfg, cmvn=cmvn, extra={"intent": "utt2intent"}, text_file=None)
    loader = make_loader(ds, frontend, data_cfg, train=False)
    hyps, refs = {}, {}
    for batch in loader:
        pred = model(batch["x"], batch["x_lengths"]).argmax(-1).tolist()
        for u, p, r in zip(batch["utts"], pred, batch["intent"]):
            hyps[u], refs[u] = model.intents[p], r
    st = intent_score(refs, hyps)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, table in (("hyp", hyps), ("ref", refs)):
        with atomic_open(out / name) as f:
            f.writelines(f"{u} {table[u]}\n" for u in sorted(table))
    acc = 100.0 * st["corr"] / max(st["snt"], 1)
    res = {"accuracy": acc, "n": st["snt"], "correct": st["corr"],
           "unseen_intents": sorted(set(refs.values()) - set(model.intents)),
           # a collapsed encoder (one output for every utterance) predicts one intent for everything
           "distinct_predictions": len(set(hyps.values())), "distinct_references": len(set(refs.values()))}
    if len(refs) > 1 and res["distinct_predictions"] == 1 < res["distinct_references"]:
        log.warning("%s: one intent ('%s') predicted for all %d utterances: the encoder has likely collapsed",
                    out, next(iter(hyps.values())), len(hyps))
    atomic_write_text(out / "accuracy.json", json.dumps(res, indent=1) + "\n")
    es = ErrorStats(**st)
    score = {"name": str(out), "ref": str(Path(data_dir) / "utt2intent"), "hyp": str(out / "hyp"),
             "units": {"intent": es.to_dict()}, "per_lang": {}}
    atomic_write_text(out / "score.json", json.dumps(score, indent=1) + "\n")
    log.info("intent accuracy %.2f%% (%d/%d) on %s", acc, st["corr"], st["snt"], data_dir)
    return res