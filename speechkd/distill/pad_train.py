"""PAD training glue: distil a frozen text model into a speech SSL model (:mod:`speechkd.distill.pad`
losses). The intent classifier fine-tuned on the result lives in :mod:`speechkd.models.intent` and
:mod:`speechkd.train.intent`.

Distillation (``distill_pad``). For every paired utterance (audio + transcript, no intent label) the
units of each granularity (utterance, word, subword, phone), their text targets and prior weights are
precomputed once (:mod:`speechkd.distill.pad_units`). The text targets of each granularity are then
standardised with the training set's mean and per-dimension std (``pad.target_norm``: ``standardize`` |
``center`` | ``none``): a text model's pooled states can be nearly collinear, and then a single constant
speech output is close to the cosine/MSE optimum
(every cosine/MSE row of the first mini table collapsed onto one intent). Per step::

    out = speech_model(x, lengths)                                   # SSLOutput
    h = out.hidden_states[speech_layer]                              # (B, T', D)
    speech[g] = units_from_spans(h, out.lengths, spans[g])           # list of (U_b, D)
    loss, logs = PADLoss(speech, text_targets, prior_weights)        # + projection heads, σ_g

The structure of neither model changes: the saved ``exp/model`` is a plain SSL checkpoint (the
projection heads and σ_g are kept in ``train_state.pt`` only). Baselines are configs of the same code
(``pad.metric`` mse|cosine|infonce, ``pad.granularities: [utterance]``, ``prior: uniform``,
``pad.combine: fixed``).

Library use::

    cfg = load_config("conf/pad.yaml", defaults=PAD_DEFAULTS)
    distill_pad(cfg, "data/train", "exp/teacher/model", "exp/text_lm", "exp/pad/pad_seed1", valid_data="data/dev")
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Dict

import torch
from torch import Tensor, nn

from ..models.checkpoint import load_checkpoint
from ..models.ssl import SSLModel
from ..train.data import (DATA_DEFAULTS, copy_files_into, make_dataset, make_loader, resolve_cmvn,
                          units_per_second)
from ..train.optim import OPTIM_DEFAULTS
from ..train.rng import seed_everything
from ..train.trainer import TRAIN_DEFAULTS, Trainer
from ..utils.config import merge, save_config
from ..utils.errors import ConfigError
from ..utils.fileio import atomic_write_text
from .pad import PADLoss, mean_pool, units_from_spans
from .pad_units import build_unit_table, normalise_unit_tables

log = logging.getLogger("speechkd")

#: Defaults of a PAD distillation config.
PAD_DEFAULTS: Dict = {
    "pad": {
        "granularities": ["utterance", "word", "subword", "phone"],
        "metric": "cosine",              # mse | cosine | infonce
        "combine": "uncertainty",        # uncertainty (adaptive) | fixed
        "fixed_weights": None,           # with combine=fixed: one weight per granularity (default 1 each)
        "temperature": 0.1,              # InfoNCE τ
        "target_norm": "standardize",    # none | center | standardize: text targets around their train mean
        "speech_layer": -1,              # hidden-state index of the speech model (HF convention)
        "text_layer": -1,                # hidden-state index of the text model
    },
    "prior": {"utterance": "uniform", "word": "frequency", "subword": "frequency", "phone": "duration",
              "alpha": 0.5, "smoothing": 1.0},
    "units": {"text_file": "text", "words_ctm": "words.ctm", "phones_ctm": "phones.ctm",
              "ctm_fallback": "error"},   # error | chars (word spans from letter counts when no words.ctm)
    "model": {"freeze_frontend": True, "mask": False},
    "data": dict(DATA_DEFAULTS),
    "optim": dict(OPTIM_DEFAULTS, lr=2e-4, warmup_steps=20),
    "train": dict(TRAIN_DEFAULTS, max_steps=200),
}


# ====================================================================================== distillation
class PADTask(nn.Module):
    """Speech model + :class:`PADLoss`; ``forward(batch) -> (loss, logs)`` using the unit table."""

    def __init__(self, model: SSLModel, loss_fn: PADLoss, table: Dict[str, dict], speech_layer: int = -1,
                 mask: bool = False):
        super().__init__()
        self.model, self.loss_fn = model, loss_fn
        self.table, self.speech_layer, self.mask = table, speech_layer, mask

    def forward(self, batch):
        out = self.model(batch["x"], batch["x_lengths"], mask=self.mask and self.training)
        h = out.hidden_states[self.speech_layer]
        recs = [self.table[u] for u in batch["utts"]]
        speech, text, weights = {}, {}, {}
        for g in self.loss_fn.granularities:
            if g == "utterance":
                speech[g] = list(mean_pool(h, out.padding_mask)[:, None])
            else:
                speech[g] = units_from_spans(h, out.lengths, [r["spans"][g] for r in recs])
            text[g] = [r["text"][g].to(h.device) for r in recs]
            weights[g] = [r["weights"][g] for r in recs]
        loss, logs = self.loss_fn(speech, text, weights)
        if self.loss_fn.combine == "uncertainty":
            for g, w in zip(self.loss_fn.granularities, self.loss_fn.granularity_weights().tolist()):
                logs[f"w/{g}"] = w
        return loss, logs


def _task_step(task, batch):
    return task(batch)


@torch.no_grad()
def _validate_task(task, loader) -> Dict[str, float]:
    task.eval()
    tot: Dict[str, float] = {}
    n = 0
    for batch in loader:
        batch = {k: (v.to(next(task.parameters()).device) if isinstance(v, Tensor) else v) for k, v in batch.items()}
        _, logs = task(batch)
        for k, v in logs.items():
            tot[k] = tot.get(k, 0.0) + float(v)
        n += 1
    task.train()
    out = {k: v / max(n, 1) for k, v in tot.items()}
    out["loss"] = out.get("pad", 0.0)
    return out


def distill_pad(cfg: dict, train_data, init, text_model, exp_dir, valid_data=None) -> Path:
    """PAD (or a metric baseline) from the text model ``text_model`` into the SSL checkpoint ``init``
    on the paired data ``train_data`` (feats.scp + text + CTMs); returns ``exp_dir/model`` (SSL type)."""
    cfg = merge(PAD_DEFAULTS, cfg)
    pcfg = cfg["pad"]
    exp_dir = Path(exp_dir)
    exp_dir.mkdir(parents=True, exist_ok=True)
    seed_everything(int(cfg["train"].get("seed", 0)))
    model, src_cfg = load_checkpoint(init)
    if not isinstance(model, SSLModel):
        raise ConfigError(f"{init}: PAD distils into an SSL checkpoint (type ssl), got '{src_cfg['model']['type']}'")
    frontend = model.cfg.frontend
    if cfg["model"]["freeze_frontend"]:
        for p in model.feature_extractor.parameters():
            p.requires_grad_(False)
    model.train()
    data_cfg = cfg["data"]
    ups = units_per_second(frontend, data_cfg)
    frame_rate = ups * float(model.output_lengths(torch.tensor([10 * ups]))[0]) / (10.0 * ups)
    cmvn = resolve_cmvn(data_cfg, train_data, exp_dir, init_dir=init) if frontend == "fbank" else None
    train_ds = make_dataset(frontend, train_data, data_cfg, cmvn=cmvn, text_file=None)
    valid_ds = make_dataset(frontend, valid_data, data_cfg, cmvn=cmvn, text_file=None) if valid_data else None
    grans = pcfg["granularities"]
    grans = [g for g in grans.replace("+", ",").split(",") if g] if isinstance(grans, str) else list(grans)
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(text_model), local_files_only=True)
    tmodel = AutoModel.from_pretrained(str(text_model), local_files_only=True).eval()
    table = build_unit_table(train_data, (tok, tmodel), grans, frame_rate, model.output_lengths, cfg["units"],
                             cfg["prior"], int(pcfg["text_layer"]), dict(zip(train_ds.utts, train_ds.lengths)))
    vtable = {}
    if valid_ds is not None:
        vtable = build_unit_table(valid_data, (tok, tmodel), grans, frame_rate, model.output_lengths,
                                  cfg["units"], cfg["prior"], int(pcfg["text_layer"]),
                                  dict(zip(valid_ds.utts, valid_ds.lengths)))
    norm = normalise_unit_tables(table, [vtable], grans, str(pcfg["target_norm"]))
    if pcfg["target_norm"] != "none":
        log.info("text targets %s with the training mean/std: mean pairwise cosine %s", pcfg["target_norm"],
                 ", ".join(f"{g} {v['cos_before']} -> {v['cos_after']}" for g, v in norm.items()))
    loss_fn = PADLoss(model.cfg.d_model, tmodel.config.hidden_size, grans, pcfg["metric"], pcfg["combine"],
                      pcfg.get("fixed_weights"), float(pcfg["temperature"]))
    task = PADTask(model, loss_fn, {**vtable, **table}, int(pcfg["speech_layer"]), bool(cfg["model"]["mask"]))
    log.info("PAD: %s granularities, metric %s, combine %s, priors %s, %d paired utts, speech dim %d -> "
             "text dim %d at %.0f frames/s", "+".join(grans), pcfg["metric"], pcfg["combine"],
             {g: cfg["prior"].get(g, "uniform") for g in grans}, len(table), model.cfg.d_model,
             tmodel.config.hidden_size, frame_rate)
    if cmvn is not None:
        cfg["data"] = dict(data_cfg, cmvn=str(cmvn))
    cfg["model"] = dict(model.model_config())
    cfg["init"], cfg["text_model"] = str(init), str(text_model)
    seed = int(cfg["train"].get("seed", 0))
    loader = make_loader(_subset(train_ds, table), frontend, data_cfg, seed=seed, train=True)
    vloader = None
    if vtable:
        vloader = make_loader(_subset(valid_ds, vtable), frontend, data_cfg, seed=seed, train=False)
    save_config(cfg, exp_dir / "config.yaml")
    trainer = Trainer(task, _task_step, cfg["optim"], exp_dir, cfg, state_dict_fn=lambda t: t.model.state_dict(),
                      extra_save_fn=copy_files_into([cmvn]))
    metrics = trainer.fit(loader, vloader, valid_fn=_validate_task if vloader is not None else None)
    if metrics:
        atomic_write_text(exp_dir / "valid.json", json.dumps(metrics, indent=1) + "\n")
    return exp_dir / "model"


def _subset(ds, keep):
    """Restrict a dataset (in place) to the utterances in ``keep`` (those with units)."""
    idx = [i for i, u in enumerate(ds.utts) if u in keep]
    if len(idx) < len(ds.utts):
        ds.utts = [ds.utts[i] for i in idx]
        ds.lengths = [ds.lengths[i] for i in idx]
    return ds
