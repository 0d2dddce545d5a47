"""CTC fine-tuning of an SSL encoder (from an SSL/CTC checkpoint or from scratch).

Library form of ``speechkd-finetune``; distillation recipes reuse it with extra loss terms::

    cfg = load_config("conf/finetune.yaml", defaults=FINETUNE_DEFAULTS)
    model_dir = finetune_ctc(cfg, "data/train_sub", "data/dev", "exp/ft", token_dir="data/token_phone",
                             init="exp/teacher/model")
    model, config = load_checkpoint(model_dir)          # CTCModel (type ctc); tokenizer in model_dir/tokenizer

    # an extra term, e.g. Distill-L2S: the projection is trained with the model and kept in train_state.pt
    proj = nn.Linear(192, 768)
    def extra_loss(task, batch, ctc_out):                # ctc_out = (log_probs, out_lengths, SSLOutput)
        mse = ...  # uses task.extra (== proj) and ctc_out[2].last_hidden_state
        return 0.5 * mse, {"mse": float(mse)}
    finetune_ctc(cfg, ..., extra_loss=extra_loss, extra_modules=proj)

Loss: ``F.ctc_loss`` (blank 0, mean over target tokens, ``zero_infinity``). Validation reports the loss
and the greedy token error rate ``ter`` (%). Encoder masking (SpecAugment-style) comes from the encoder
config (``model.encoder.mask_time_prob`` ...) and is on in training only. ``model.freeze_frontend``
keeps the front-end fixed; ``finetune.freeze_encoder_steps`` trains only the CTC head for the first N steps;
``finetune.reinit_top_layers`` gives the top N layers of an initialised encoder fresh random weights;
``finetune.init_weights: false`` takes only the architecture from ``init`` and starts from random weights
(the from-scratch row of a table, same architecture as the model it is compared with).
"""
from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Callable, Dict, Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..asr.ctc_search import ctc_greedy
from ..asr.scoring import score
from ..models.ctc import CTCModel
from ..models.ssl import MINI_SSL, SSLConfig
from ..utils.config import merge, save_config
from ..utils.errors import ConfigError
from .data import DATA_DEFAULTS, make_dataset, make_loader, resolve_cmvn
from .optim import OPTIM_DEFAULTS
from .rng import seed_everything
from .trainer import TRAIN_DEFAULTS, Trainer

log = logging.getLogger("speechkd")

FINETUNE_DEFAULTS: Dict = {
    "model": {"type": "ctc", "freeze_frontend": True, "final_dropout": 0.1,
              # encoder: used from scratch; with --init only these keys' overrides apply (masking, dropout)
              "encoder": SSLConfig.from_dict({**MINI_SSL, "mask_time_prob": 0.05}).to_dict()},
    "finetune": {"freeze_encoder_steps": 0, "reinit_top_layers": 0,
                 "init_weights": True,   # false: --init gives only the architecture (a from-scratch baseline)
                 "init_overrides": ["mask_time_prob", "mask_time_length", "mask_channel_prob",
                                    "mask_channel_length", "dropout", "attention_dropout",
                                    "activation_dropout", "proj_dropout", "layerdrop"]},
    "data": dict(DATA_DEFAULTS),
    "optim": dict(OPTIM_DEFAULTS, lr=5e-4, warmup_steps=100),
    "train": dict(TRAIN_DEFAULTS, max_steps=1000, best_metric="ter", best_mode="min"),
}


def token_errors(refs, hyps) -> tuple:
    """``(errors, reference tokens)`` of id sequences ``hyps`` against ``refs`` (the edit distance of
    :func:`speechkd.asr.scoring.score` over space-joined ids)."""
    st, _ = score({str(i): " ".join(map(str, r)) for i, r in enumerate(refs)},
                  {str(i): " ".join(map(str, h)) for i, h in enumerate(hyps)}, "word")
    return st.err, st.wrd


class CTCTask(nn.Module):
    """CTCModel + CTC loss (+ optional extra term); ``forward(batch) -> (loss, stats)``.

    ``extra_loss(task, batch, ctc_out) -> (loss_term, stats)`` is added to the CTC loss; ``extra_modules``
    (trainable modules it needs) live at ``task.extra``.
    """

    def __init__(self, model: CTCModel, extra_loss: Optional[Callable] = None,
                 extra_modules: Optional[nn.Module] = None):
        super().__init__()
        self.model = model
        self.extra = extra_modules
        self.extra_loss = extra_loss

    def forward(self, batch):
        log_probs, out_lengths, ssl_out = self.model(batch["x"], batch["x_lengths"])
        tokens = batch["tokens"].clamp_min(0)
        ctc = F.ctc_loss(log_probs.float().transpose(0, 1), tokens, out_lengths, batch["token_lengths"],
                         blank=0, reduction="mean", zero_infinity=True)
        stats = {"ctc": float(ctc.detach())}
        loss = ctc
        if self.extra_loss is not None:
            term, extra_stats = self.extra_loss(self, batch, (log_probs, out_lengths, ssl_out))
            loss = loss + term
            stats.update(extra_stats or {})
        return loss, stats


def ctc_step(model, batch):
    return model(batch)


@torch.no_grad()
def ctc_validate(task, loader) -> Dict[str, float]:
    """Mean CTC loss and greedy token error rate (%) over a loader (model in eval mode)."""
    model = task.model
    loss_sum, n_batches, errs, n_ref = 0.0, 0, 0, 0
    for batch in loader:
        dev = next(model.parameters()).device
        x, xl = batch["x"].to(dev), batch["x_lengths"].to(dev)
        log_probs, out_lengths, _ = model(x, xl, mask=False)
        tokens, tl = batch["tokens"].to(dev), batch["token_lengths"].to(dev)
        loss_sum += float(F.ctc_loss(log_probs.float().transpose(0, 1), tokens.clamp_min(0), out_lengths, tl,
                                     blank=0, reduction="mean", zero_infinity=True))
        n_batches += 1
        refs = [ref[:n] for ref, n in zip(tokens.cpu().tolist(), tl.tolist())]
        e, n = token_errors(refs, ctc_greedy(log_probs, out_lengths))
        errs, n_ref = errs + e, n_ref + n
    return {"loss": loss_sum / max(1, n_batches), "ter": 100.0 * errs / max(1, n_ref)}


def reinit_top_layers(ssl_model, n: int) -> None:
    """Give the top ``n`` transformer layers of an initialised encoder fresh random weights (the layers a
    short pretraining specialises most to its pretext task; Pasad et al. 2021 re-initialise them before
    fine-tuning wav2vec 2.0)."""
    layers = ssl_model.encoder.layers
    if not 0 < n <= len(layers):
        raise ConfigError(f"finetune.reinit_top_layers={n} but the encoder has {len(layers)} layers")
    fresh = type(ssl_model)(ssl_model.cfg).encoder.layers     # the model's own init, same seed stream
    for i in range(len(layers) - n, len(layers)):
        layers[i].load_state_dict(fresh[i].state_dict())
    log.info("re-initialised the top %d of %d encoder layers", n, len(layers))


def build_ctc_model(cfg: dict, vocab_size: int, init=None) -> CTCModel:
    """CTCModel from ``init`` (an SSL or CTC checkpoint dir) or from ``cfg['model']['encoder']``."""
    mcfg = cfg["model"]
    enc = dict(mcfg["encoder"])
    state = None
    if init is not None:
        from ..models.checkpoint import load_checkpoint

        src, src_cfg = load_checkpoint(init)
        kind = src_cfg["model"]["type"]
        if kind == "ssl":
            base = src.cfg.to_dict()
            state = {f"encoder.{k}": v for k, v in src.state_dict().items() if not k.startswith("head.")}
        elif kind == "ctc":
            base = src.encoder.cfg.to_dict()
            if src.vocab_size != vocab_size:
                raise ConfigError(f"{init}: CTC checkpoint has vocab {src.vocab_size}, tokenizer has {vocab_size}")
            state = src.state_dict()
        else:
            raise ConfigError(f"{init}: cannot fine-tune from a model of type '{kind}' (ssl, ctc)")
        for k in cfg["finetune"]["init_overrides"]:
            if k in enc:
                base[k] = enc[k]
        base["num_labels"] = 0
        enc = base
    enc["num_labels"] = 0
    model = CTCModel(SSLConfig.from_dict(enc), vocab_size, bool(mcfg.get("freeze_frontend", False)),
                     float(mcfg.get("final_dropout", 0.0)))
    if state is not None and not cfg["finetune"].get("init_weights", True):
        log.info("architecture of %s, random weights (finetune.init_weights: false)", init)
        state = None
    if state is not None:
        missing, unexpected = model.load_state_dict(state, strict=False)
        bad = [k for k in missing if not k.startswith("head.")] + list(unexpected)
        if bad:
            raise ConfigError(f"{init}: checkpoint does not match the CTC encoder: key '{bad[0]}'")
        log.info("initialised encoder from %s", init)
        n_reinit = int(cfg["finetune"].get("reinit_top_layers") or 0)
        if n_reinit:
            reinit_top_layers(model.encoder, n_reinit)
    return model


def finetune_ctc(cfg: dict, train_data, valid_data=None, exp_dir="exp/ft", token_dir=None, init=None,
                 extra_loss: Optional[Callable] = None, extra_modules: Optional[nn.Module] = None) -> Path:
    """Fine-tune with CTC (see module doc); returns ``exp_dir/model``."""
    from ..asr.tokenizer import load_tokenizer

    cfg = merge(FINETUNE_DEFAULTS, cfg)
    if token_dir is None:
        raise ConfigError("finetune_ctc needs a tokenizer dir (--token-dir)")
    exp_dir = Path(exp_dir)
    exp_dir.mkdir(parents=True, exist_ok=True)
    tok = load_tokenizer(token_dir)
    tok.save(exp_dir / "tokenizer")
    seed_everything(int(cfg["train"].get("seed", 0)))  # model init is part of the seeded run
    model = build_ctc_model(cfg, tok.vocab_size, init)
    cfg["model"] = model.model_config()
    cfg["tokenizer"] = str(exp_dir / "tokenizer")
    if init is not None:
        cfg["init"] = str(init)
    frontend = model.encoder.cfg.frontend
    data_cfg = cfg["data"]
    cmvn = resolve_cmvn(data_cfg, train_data, exp_dir, init_dir=init) if frontend == "fbank" else None
    if cmvn is not None:
        cfg["data"] = dict(data_cfg, cmvn=str(cmvn))
    seed = int(cfg["train"].get("seed", 0))
    train_ds = make_dataset(frontend, train_data, data_cfg, cmvn=cmvn, tokenizer=tok)
    train_loader = make_loader(train_ds, frontend, data_cfg, seed=seed, train=True)
    valid_loader = None
    if valid_data is not None:
        valid_ds = make_dataset(frontend, valid_data, data_cfg, cmvn=cmvn, tokenizer=tok)
        valid_loader = make_loader(valid_ds, frontend, data_cfg, seed=seed, train=False)
    n_freeze = int(cfg["finetune"]["freeze_encoder_steps"] or 0)
    if n_freeze:
        cfg["train"] = dict(cfg["train"], freeze_steps={**(cfg["train"].get("freeze_steps") or {}),
                                                         "model.encoder.": n_freeze})
    save_config(cfg, exp_dir / "config.yaml")

    task = CTCTask(model, extra_loss, extra_modules)
    tok_dir = exp_dir / "tokenizer"

    def extra_save(d: Path):
        shutil.copytree(tok_dir, d / "tokenizer")
        if cmvn is not None:
            shutil.copyfile(cmvn, d / "cmvn.npz")

    trainer = Trainer(task, ctc_step, cfg["optim"], exp_dir, cfg,
                      state_dict_fn=lambda t: t.model.state_dict(), extra_save_fn=extra_save)
    trainer.fit(train_loader, valid_loader, valid_fn=ctc_validate if valid_loader is not None else None)
    return exp_dir / "model"
