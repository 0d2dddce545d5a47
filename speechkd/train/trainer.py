"""One trainer for every recipe: AdamW + warmup schedule, gradient accumulation, clipping, AMP, DDP,
TensorBoard, tqdm, validation/best model, atomic checkpoints and exact resume.

The recipe supplies the model and a ``step_fn(model, batch) -> (loss, stats)`` (``stats`` a dict of
floats to log); the trainer does the rest::

    def step_fn(model, batch):
        y = model(batch["x"])
        loss = ((y - batch["y"]) ** 2).mean()
        return loss, {"mse": loss.item()}

    cfg = {"model": {"type": "toy"}, "train": {"max_steps": 100, "save_interval": 50}}
    trainer = Trainer(model, step_fn, {"lr": 1e-3, "warmup_steps": 10}, "exp/toy", cfg)
    trainer.fit(train_loader, valid_loader)      # -> exp/toy/{train.log,tensorboard,checkpoints,model}

Outputs (only rank 0 writes):
    ``exp_dir/checkpoints/step_N/{config.yaml,model.pt,train_state.pt}`` every ``save_interval`` steps
    (directory written under a temporary name and renamed, the last ``keep_last`` kept; with
    ``keep_final_state: false`` none is left once the run has finished);
    ``exp_dir/model/`` the final model, ``exp_dir/model_best/`` the best by ``best_metric`` on validation;
    ``exp_dir/train.log`` one line per ``log_interval``; ``exp_dir/tensorboard/`` scalars.

Resume: re-running with the same ``exp_dir`` restarts from the newest complete checkpoint (model,
optimizer, scheduler, AMP scaler, step, epoch, position in the epoch, python/numpy/torch RNG states). With a
sampler whose order is a pure function of ``(seed, epoch)`` (:class:`speechkd.data.sampler.BucketBatchSampler`,
which the trainer positions with ``set_epoch``/``set_position``) the resumed run reaches the same weights as
an uninterrupted one.

Under DDP (``torchrun``: env ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``) the model is wrapped in
``DistributedDataParallel`` and ``step_fn`` receives the wrapper: call ``model(...)`` for the forward pass
(so gradients are synchronised) and :func:`unwrap_model` for attributes.

The loop's parts live beside it, each usable alone: :mod:`.optim` (AdamW and the lr schedule), :mod:`.rng`
(seeding, RNG states for exact resume), :mod:`.distributed` (device, rank, process group); this module is
the loop itself (one cohesive class: step, accumulate, validate, checkpoint, resume).
"""
from __future__ import annotations

import contextlib
import logging
import math
import re
import shutil
import time
import warnings
from pathlib import Path
from typing import Callable, Dict, Optional

import torch
import torch.nn as nn

from ..models.checkpoint import link_checkpoint_dir, load_state_file, load_train_state, write_checkpoint_dir
from ..utils.config import merge
from ..utils.errors import ConfigError, SpeechkdError
from .distributed import init_process, mean_over_ranks, move_to, unwrap_model  # noqa: F401 (re-export)
from .optim import OPTIM_DEFAULTS, build_optimizer, lr_lambda_factory  # noqa: F401 (re-export)
from .precision import autocast, resolve_precision
from .rng import get_rng_state, seed_everything, set_rng_state  # noqa: F401 (re-export)

log = logging.getLogger("speechkd")

#: Defaults of the ``train:`` config section (recipes merge their YAML over these).
TRAIN_DEFAULTS: Dict = {
    "seed": 0,
    "max_steps": None,          # optimizer steps; or
    "max_epochs": None,         # epochs (whichever ends first when both are set)
    "accum_grad": 1,
    "grad_clip": 5.0,           # max grad norm; null/0 = off
    "precision": "auto",        # auto (bf16 where the CPU/GPU has bf16 units, else fp16 on GPU / fp32) | fp32 | bf16 | fp16
    "amp": None,                # deprecated alias of precision (none = fp32); overrides it when set
    "device": "auto",           # auto | cpu | cuda
    "log_interval": 10,
    "valid_interval": 0,        # steps; 0 = only at the end
    "save_interval": 0,         # steps; 0 = only at the end
    "keep_last": 2,
    "keep_final_state": True,   # false: a finished run deletes its checkpoints/ (optimizer state) once model/ is
                                # written (dry runs of paper-size models: ~3x the weights each, never resumed)
    "best_metric": "loss",
    "best_mode": "min",
    "skip_nan": False,
    "freeze": [],               # parameter-name prefixes never trained
    "freeze_steps": {},         # {prefix: N}: prefix frozen for the first N steps
    "tensorboard": True,
    "progress": True,
    "find_unused_parameters": False,
}

_STEP_RE = re.compile(r"^step_(\d+)$")
_CKPT_FILES = ("config.yaml", "model.pt", "train_state.pt")


def list_checkpoints(exp_dir) -> list:
    """Complete checkpoint dirs ``exp_dir/checkpoints/step_N`` sorted by N (oldest first)."""
    root = Path(exp_dir) / "checkpoints"
    if not root.is_dir():
        return []
    out = []
    for p in root.iterdir():
        m = _STEP_RE.match(p.name)
        if m and p.is_dir() and all((p / f).exists() for f in _CKPT_FILES):
            out.append((int(m.group(1)), p))
    return [p for _, p in sorted(out)]


class Trainer:
    """Generic training loop (see module doc).

    Args:
        model: the module to train (moved to the device; wrapped in DDP under torchrun).
        step_fn: ``step_fn(model, batch) -> (loss, stats)``; ``loss`` a scalar tensor.
        optimizer_cfg: AdamW + schedule options (:data:`OPTIM_DEFAULTS`).
        exp_dir: experiment directory.
        cfg: full config, saved as each checkpoint's ``config.yaml``; its ``train:`` section
            holds the options of :data:`TRAIN_DEFAULTS`.
        state_dict_fn: ``fn(model) -> state dict`` for ``model.pt`` (default ``model.state_dict()``);
            when given, the full state dict is also kept in ``train_state.pt`` for resume.
        extra_save_fn: ``fn(dir)`` adds files to every checkpoint/model dir.
    """

    def __init__(self, model: nn.Module, step_fn: Callable, optimizer_cfg: Optional[Dict], exp_dir,
                 cfg: Optional[Dict] = None, state_dict_fn: Optional[Callable] = None,
                 extra_save_fn: Optional[Callable[[Path], None]] = None):
        self.cfg = dict(cfg or {})
        self.tcfg = merge(TRAIN_DEFAULTS, self.cfg.get("train") or {})
        unknown = set(self.tcfg) - set(TRAIN_DEFAULTS)
        if unknown:
            raise ConfigError(f"unknown train option(s): {', '.join(sorted(unknown))}")
        self.ocfg = merge(OPTIM_DEFAULTS, optimizer_cfg or {})
        unknown = set(self.ocfg) - set(OPTIM_DEFAULTS)
        if unknown:
            raise ConfigError(f"unknown optim option(s): {', '.join(sorted(unknown))}")
        if not self.tcfg["max_steps"] and not self.tcfg["max_epochs"]:
            raise ConfigError("train.max_steps or train.max_epochs must be set")
        self.exp_dir = Path(exp_dir)
        self.step_fn = step_fn
        self.state_dict_fn = state_dict_fn
        self.extra_save_fn = extra_save_fn

        # --- distributed / device
        self.device, self.rank, self.world_size = init_process(self.tcfg["device"])
        self.is_main = self.rank == 0

        seed_everything(int(self.tcfg["seed"]))
        self.model = model.to(self.device)
        self._apply_freeze()
        self.optimizer = build_optimizer(self.model, self.ocfg)
        self.ddp_model = self.model
        if self.world_size > 1:
            self.ddp_model = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=bool(self.tcfg["find_unused_parameters"]))

        # --- precision (autocast); losses cast to fp32 themselves
        prec = self.tcfg["precision"] if self.tcfg["amp"] in (None, "auto") else self.tcfg["amp"]
        try:
            self.precision, self.amp_dtype = resolve_precision(prec, self.device, quiet=not self.is_main)
        except ValueError as e:
            raise ConfigError(f"train.precision: {e}") from None
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=(self.precision == "fp16"))

        self.step = 0           # optimizer steps done
        self.epoch = 0          # current epoch (0-based)
        self.position = 0       # micro-batches consumed in the current epoch
        self.best: Optional[float] = None
        self.nan_skipped = 0
        self.scheduler = None
        self._writer = None
        self._last_log_time = time.time()

    # ------------------------------------------------------------------ setup helpers
    def _apply_freeze(self) -> None:
        prefixes = list(self.tcfg["freeze"] or [])
        names = [n for n, _ in self.model.named_parameters()]
        for pre in prefixes + list((self.tcfg["freeze_steps"] or {}).keys()):
            if not any(n.startswith(pre) for n in names):
                raise ConfigError(f"freeze prefix '{pre}' matches no parameter "
                                  f"(e.g. {', '.join(names[:4])})")
        for n, p in self.model.named_parameters():
            if any(n.startswith(pre) for pre in prefixes):
                p.requires_grad_(False)
        self._timed_freeze = [(pre, int(n)) for pre, n in (self.tcfg["freeze_steps"] or {}).items()]

    def _frozen_now(self):
        return [pre for pre, n in self._timed_freeze if self.step < n]

    @property
    def writer(self):
        if self._writer is None and self.is_main and self.tcfg["tensorboard"]:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(self.exp_dir / "tensorboard"), purge_step=self.step or None)
        return self._writer

    # ------------------------------------------------------------------ checkpoints
    def _model_state(self) -> Dict:
        return self.state_dict_fn(self.model) if self.state_dict_fn else self.model.state_dict()

    def _train_state(self, sampler) -> Dict:
        st = {"step": self.step, "epoch": self.epoch, "position": self.position, "best": self.best,
              "nan_skipped": self.nan_skipped, "optimizer": self.optimizer.state_dict(),
              "scheduler": self.scheduler.state_dict() if self.scheduler else None,
              "scaler": self.scaler.state_dict(), "rng": get_rng_state(), "world_size": self.world_size,
              "sampler": sampler.state_dict() if sampler is not None and hasattr(sampler, "state_dict") else None}
        if self.state_dict_fn:
            st["full_model"] = self.model.state_dict()
        return st

    def save_checkpoint(self, sampler=None) -> Optional[Path]:
        if not self.is_main:
            return None
        path = write_checkpoint_dir(self.exp_dir / "checkpoints" / f"step_{self.step}", self.cfg,
                                    self._model_state(), self._train_state(sampler), self.extra_save_fn)
        keep = max(1, int(self.tcfg["keep_last"] or 1))
        for old in list_checkpoints(self.exp_dir)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
        return path

    def save_model(self, name: str = "model") -> Optional[Path]:
        if not self.is_main:
            return None
        best = self.exp_dir / "model_best"
        if name != "model_best" and getattr(self, "_best_step", None) == self.step and best.is_dir():
            return link_checkpoint_dir(best, self.exp_dir / name)   # the same weights: no second copy on disk
        return write_checkpoint_dir(self.exp_dir / name, self.cfg, self._model_state(), None, self.extra_save_fn)

    def resume(self) -> bool:
        """Load the newest complete checkpoint of ``exp_dir`` if any; True if one was loaded."""
        ckpts = list_checkpoints(self.exp_dir)
        if not ckpts:
            return False
        path = ckpts[-1]
        st = load_train_state(path)
        model_state = st.get("full_model") or load_state_file(path / "model.pt")
        try:
            self.model.load_state_dict(model_state)
        except RuntimeError as e:
            raise ConfigError(f"{path}: cannot resume, model does not match the checkpoint: "
                              f"{str(e).splitlines()[0]}") from None
        if st.get("world_size", 1) != self.world_size:
            log.warning("resuming a %d-process run with %d processes: batch order will differ",
                        st.get("world_size", 1), self.world_size)
        self.optimizer.load_state_dict(st["optimizer"])
        if self.scheduler is not None and st.get("scheduler"):
            self.scheduler.load_state_dict(st["scheduler"])
            # the schedule may have changed (e.g. a larger max_steps): lr from the new schedule
            for g, base, fn in zip(self.optimizer.param_groups, self.scheduler.base_lrs,
                                   self.scheduler.lr_lambdas):
                g["lr"] = base * fn(self.scheduler.last_epoch)
        self.scaler.load_state_dict(st["scaler"])
        self.step, self.epoch, self.position = st["step"], st["epoch"], st["position"]
        self.best, self.nan_skipped = st.get("best"), st.get("nan_skipped", 0)
        set_rng_state(st["rng"])
        log.info("resumed from %s (step %d, epoch %d, batch %d)", path, self.step, self.epoch, self.position)
        return True

    # ------------------------------------------------------------------ logging
    def _log(self, stats: Dict[str, float], prefix: str = "train") -> None:
        if not self.is_main:
            return
        lr = self.optimizer.param_groups[0]["lr"]
        now = time.time()
        parts = [f"epoch {self.epoch + 1}", f"step {self.step}"]
        parts += [f"{k} {v:.4g}" for k, v in stats.items()]
        if prefix == "train":
            parts.append(f"lr {lr:.3g}")
            parts.append(f"{now - self._last_log_time:.1f}s")
        self._last_log_time = now
        line = f"[{prefix}] " + " ".join(parts)
        log.info(line)
        self.exp_dir.mkdir(parents=True, exist_ok=True)
        with open(self.exp_dir / "train.log", "a", encoding="utf-8") as f:
            f.write(time.strftime("%Y-%m-%d %H:%M:%S ") + line + "\n")
        if self.writer is not None:
            for k, v in stats.items():
                self.writer.add_scalar(f"{prefix}/{k}", v, self.step)
            if prefix == "train":
                self.writer.add_scalar("train/lr", lr, self.step)

    # ------------------------------------------------------------------ validation
    @torch.no_grad()
    def validate(self, valid_loader, valid_fn=None) -> Dict[str, float]:
        """Run ``valid_fn(model, loader) -> metrics`` (default: mean loss/stats of ``step_fn``)."""
        rng = get_rng_state()  # validation must not change the training random stream
        model = self.model
        was_training = model.training
        model.eval()
        try:
            with self._autocast():
                if valid_fn is not None:
                    metrics = dict(valid_fn(model, valid_loader))
                else:
                    sums: Dict[str, float] = {}
                    n = 0
                    for batch in valid_loader:
                        loss, stats = self.step_fn(model, move_to(batch, self.device))
                        sums["loss"] = sums.get("loss", 0.0) + float(loss)
                        for k, v in stats.items():
                            sums[k] = sums.get(k, 0.0) + float(v)
                        n += 1
                    metrics = {k: v / max(1, n) for k, v in sums.items()}
        finally:
            model.train(was_training)
            set_rng_state(rng)
        return metrics

    def _autocast(self):
        return autocast(self.device, self.amp_dtype)

    def _maybe_validate(self, valid_loader, valid_fn) -> Optional[Dict[str, float]]:
        if valid_loader is None and valid_fn is None:
            return None
        metrics = self.validate(valid_loader, valid_fn)
        self._log(metrics, prefix="valid")
        key, mode = self.tcfg["best_metric"], self.tcfg["best_mode"]
        if key not in metrics:
            raise ConfigError(f"train.best_metric '{key}' not among validation metrics {sorted(metrics)}")
        val = float(metrics[key])
        better = self.best is None or (val < self.best if mode == "min" else val > self.best)
        if better:
            self.best = val
            self.save_model("model_best")
            self._best_step = self.step
        return metrics

    # ------------------------------------------------------------------ training
    def _check_loss(self, loss: torch.Tensor, batch) -> bool:
        if torch.isfinite(loss).all():
            return True
        utts = batch.get("utts") if isinstance(batch, dict) else None
        where = f"step {self.step + 1} (epoch {self.epoch + 1}, batch {self.position + 1})"
        names = " ".join(utts[:20]) + (" ..." if len(utts) > 20 else "") if utts else "(no utt ids)"
        if self.tcfg["skip_nan"]:
            self.nan_skipped += 1
            log.warning("non-finite loss %s at %s, batch skipped (%d so far); utts: %s",
                        float(loss.detach()), where, self.nan_skipped, names)
            return False
        raise SpeechkdError(f"non-finite loss ({float(loss.detach())}) at {where}; utts: {names} "
                            "(set train.skip_nan=true to skip such batches)")

    def _optimizer_step(self) -> float:
        for pre in self._frozen_now():
            for n, p in self.model.named_parameters():
                if n.startswith(pre):
                    p.grad = None
        self.scaler.unscale_(self.optimizer)
        params = [p for p in self.model.parameters() if p.grad is not None]
        clip = self.tcfg["grad_clip"]
        if clip:
            gnorm = float(torch.nn.utils.clip_grad_norm_(params, float(clip)))
        else:
            gnorm = float(torch.norm(torch.stack([p.grad.detach().norm() for p in params]))) if params else 0.0
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        with warnings.catch_warnings():  # fp16: a step skipped by the scaler still advances the schedule
            warnings.filterwarnings("ignore", message=".*lr_scheduler.step.*optimizer.step.*")
            self.scheduler.step()
        return gnorm

    def _total_steps(self, n_batches: int) -> int:
        accum = int(self.tcfg["accum_grad"])
        by_epochs = math.ceil(self.tcfg["max_epochs"] * n_batches / accum) if self.tcfg["max_epochs"] else None
        by_steps = int(self.tcfg["max_steps"]) if self.tcfg["max_steps"] else None
        return min(x for x in (by_epochs, by_steps) if x is not None)

    def fit(self, train_loader, valid_loader=None, valid_fn: Optional[Callable] = None) -> Dict:
        """Train until ``max_steps``/``max_epochs``; returns the last validation metrics (or {})."""
        sampler = getattr(train_loader, "batch_sampler", None)
        if not hasattr(sampler, "set_epoch"):
            sampler = getattr(train_loader, "sampler", None)
            if not hasattr(sampler, "set_epoch"):
                sampler = None
        n_batches = len(train_loader)
        if n_batches == 0:
            raise ConfigError("training data loader is empty")
        total = self._total_steps(n_batches)
        self.total_steps = total
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_lambda_factory(
            int(self.ocfg["warmup_steps"]), total, self.ocfg["scheduler"], float(self.ocfg["min_lr_ratio"])))
        self.resume()
        accum = int(self.tcfg["accum_grad"])
        log_iv, valid_iv, save_iv = (int(self.tcfg[k] or 0) for k in ("log_interval", "valid_interval",
                                                                         "save_interval"))
        max_epochs = self.tcfg["max_epochs"]
        metrics: Dict = {}
        if self.step >= total:
            log.info("training already finished (step %d of %d)", self.step, total)
            if self.is_main and not (self.exp_dir / "model" / "model.pt").exists():
                self.save_model("model")
            return metrics
        if self.is_main:
            self.exp_dir.mkdir(parents=True, exist_ok=True)
            log.info("training %s: %d steps, %d batches/epoch, %d trainable params, device %s, precision %s, "
                     "%d process%s", type(self.model).__name__, total, n_batches,
                     sum(p.numel() for p in self.model.parameters() if p.requires_grad), self.device,
                     self.precision, self.world_size, "" if self.world_size == 1 else "es (DDP)")
        from ..utils.progress import progress as progress_bar

        bar = progress_bar(total=total, initial=self.step, progress=self.is_main and bool(self.tcfg["progress"]),
                   dynamic_ncols=True, desc="train")
        self.model.train()
        acc_stats: Dict[str, float] = {}
        acc_n = 0
        micro = 0
        done = False
        while not done:
            if max_epochs and self.epoch >= max_epochs:
                break
            if sampler is not None:
                sampler.set_epoch(self.epoch)
                sampler.set_position(self.position)
            rng = get_rng_state()       # creating a DataLoader iterator draws from the global RNG:
            it = iter(train_loader)     # keep it out of the training stream so resume is exact
            set_rng_state(rng)
            if sampler is None:
                for _ in range(self.position):
                    next(it, None)
            for batch in it:
                batch = move_to(batch, self.device)
                micro += 1
                sync = micro % accum == 0
                ctx = self.ddp_model.no_sync() if (self.world_size > 1 and not sync) else contextlib.nullcontext()
                with ctx:
                    with self._autocast():
                        loss, stats = self.step_fn(self.ddp_model, batch)
                    if self._check_loss(loss, batch):
                        self.scaler.scale(loss / accum).backward()
                        acc_stats["loss"] = acc_stats.get("loss", 0.0) + float(loss.detach())
                        for k, v in (stats or {}).items():
                            acc_stats[k] = acc_stats.get(k, 0.0) + float(v)
                        acc_n += 1
                self.position += 1
                if not sync:
                    continue
                gnorm = self._optimizer_step()
                self.step += 1
                bar.update(1)
                if acc_n:
                    bar.set_postfix(loss=f"{acc_stats['loss'] / acc_n:.4g}", refresh=False)
                if log_iv and self.step % log_iv == 0 and acc_n:
                    out = mean_over_ranks({k: v / acc_n for k, v in acc_stats.items()}, self.world_size, self.device)
                    out["grad_norm"] = gnorm
                    if self.nan_skipped:
                        out["nan_skipped"] = self.nan_skipped
                    self._log(out)
                    acc_stats, acc_n = {}, 0
                last = self.step >= total
                if (valid_iv and self.step % valid_iv == 0) or last:
                    metrics = self._maybe_validate(valid_loader, valid_fn) or metrics
                if (save_iv and self.step % save_iv == 0) or last:
                    self.save_checkpoint(sampler)
                if last:
                    done = True
                    break
            if not done:
                self.epoch += 1
                self.position = 0
        bar.close()
        if self.step < total:  # ended by max_epochs with a partial accumulation window: still checkpoint
            if valid_loader is not None or valid_fn is not None:
                self._maybe_validate(valid_loader, valid_fn)
            self.save_checkpoint(sampler)
        self.save_model("model")
        if self.is_main and not self.tcfg.get("keep_final_state", True):
            shutil.rmtree(self.exp_dir / "checkpoints", ignore_errors=True)   # finished: nothing to resume
        if self._writer is not None:
            self._writer.flush()
        if self.world_size > 1:
            torch.distributed.barrier()
        return metrics
