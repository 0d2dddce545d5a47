"""Sparse training of a :class:`speechkd.models.transducer.TransducerModel` (the pathways method):
masked (fixed sparse) and pathways training as :class:`~speechkd.train.transducer.TransducerHooks` of
:func:`speechkd.train.transducer.train_transducer`, plus iterative magnitude pruning with retraining.

Modes of :func:`~speechkd.train.transducer.train_transducer` provided here:

- ``masked``: one fixed mask (``masks``) applied as a parametrization: pruned weights stay zero and
  get no gradient; the saved ``model/`` has the zeros baked in (plain parameter names);
- ``pathways``: ``{lang: masks}``; every batch holds one language ``l``
  (:class:`~speechkd.train.transducer.LanguageBatchSampler`), runs through ``mask_l`` and updates only the
  weights of ``mask_l`` (:meth:`Pathways.step` wraps the optimizer step). The saved ``model/`` holds the
  shared (unmasked) weights; ``masks.pt`` the masks; ``export/<lang>/`` one sparse checkpoint per language
  (zeros outside ``mask_l``); ``overlap.png`` / ``overlap.md`` the mask IoU matrix; ``params.json`` the
  non-zero parameters per language.

Example::

    cfg = load_config("conf/prune.yaml", [], defaults=PRUNE_DEFAULTS)
    train_transducer(cfg, "data/train", "data/dev", "exp/dense_multi", token_dir="data/token_char")
    prune_transducer(cfg, "data/train", "data/dev", "exp/mono_sparse/en", init="exp/dense_multi/model",
                     languages=["en"])                                          # -> masks.pt, model/
    masks = {l: load_pathway_masks(f"exp/mono_sparse/{l}/masks.pt")[l] for l in langs}
    train_transducer(cfg, "data/train", "data/dev", "exp/pathways", init="exp/dense_multi/model",
                     mode="pathways", pathway_masks=masks)                      # -> export/<lang>/
"""
from __future__ import annotations

import json
import logging
import shutil
import types
from pathlib import Path
from typing import Dict, Optional, Sequence

import torch

from ..data.datadir import read_kv
from ..models.checkpoint import write_checkpoint_dir
from ..train.rng import seed_everything
from ..train.transducer import (TRANSDUCER_DEFAULTS, TransducerHooks, build_transducer, count_params,
                                plain_state_dict, train_transducer)
from ..utils.config import merge
from ..utils.errors import ConfigError
from ..utils.fileio import atomic_write_text
from .magnitude import iterative_magnitude_pruning
from .masks import apply_masks, set_masks
from .pathways import Pathways, export_sparse, overlap_matrix, plot_overlap, save_pathway_masks

__all__ = ["PRUNE_DEFAULTS", "MaskedHooks", "PathwaysHooks", "sparse_hooks", "prune_transducer",
           "load_masks_files", "overlap_markdown"]

log = logging.getLogger("speechkd")

#: Defaults of a pruning config: :data:`~speechkd.train.transducer.TRANSDUCER_DEFAULTS` + ``prune``.
PRUNE_DEFAULTS: Dict = merge(TRANSDUCER_DEFAULTS, {
    "prune": {"target": 0.7,            # final sparsity of the prunable weights (Linear + LSTM matrices)
              "rounds": 3,              # prune -> retrain rounds (geometric schedule)
              "round_steps": 100,       # retraining steps after each pruning round
              "scope": "global",        # global | layer
              "schedule": "geometric",  # geometric | linear
              "exclude": []},           # name substrings never pruned (e.g. joiner.out)
})


def overlap_markdown(masks: Dict[str, Dict[str, torch.Tensor]]) -> str:
    """Markdown table of the pairwise mask IoU."""
    langs, m = overlap_matrix(masks)
    lines = ["| IoU | " + " | ".join(langs) + " |", "|---|" + "---|" * len(langs)]
    for i, a in enumerate(langs):
        lines.append(f"| {a} | " + " | ".join(f"{float(m[i, j]):.3f}" for j in range(len(langs))) + " |")
    return "\n".join(lines) + "\n"


def load_masks_files(specs: Sequence[str]) -> Dict[str, Dict[str, torch.Tensor]]:
    """Merge ``masks.pt`` files (``{lang: masks}``); ``lang=path`` takes only that language of the file."""
    from .pathways import load_pathway_masks

    out: Dict[str, Dict[str, torch.Tensor]] = {}
    for spec in specs:
        lang, _, path = spec.rpartition("=") if "=" in spec else ("", "", spec)
        if not Path(path).exists():
            raise ConfigError(f"{path}: mask file not found")
        got = load_pathway_masks(path)
        if lang:
            if lang not in got:
                raise ConfigError(f"{path}: no mask for language '{lang}' (has {', '.join(got)})")
            got = {lang: got[lang]}
        for k, v in got.items():
            if k in out:
                raise ConfigError(f"{path}: language '{k}' given twice")
            out[k] = v
    return out


# ------------------------------------------------------------------------------------------- training
def _masked_optimizer(optimizer: torch.optim.Optimizer, pathways: Pathways) -> None:
    """Make ``optimizer.step()`` a :meth:`Pathways.step` of the active pathway (bound-method patch, so
    the LR scheduler's own step wrapper still works)."""
    plain_step = type(optimizer).step

    class _View:                        # what Pathways.step needs: .state and an unpatched .step()
        @property
        def state(self):
            return optimizer.state

        def step(self):
            return plain_step(optimizer)

    view = _View()

    def step(self, closure=None):
        if closure is not None:
            raise ValueError("pathways optimizer step takes no closure")
        pathways.step(view)

    optimizer.step = types.MethodType(step, optimizer)


def _batch_lang(batch) -> str:
    langs = set(batch.get("lang") or [])
    if len(langs) != 1:
        raise ConfigError(f"pathways training needs language-homogeneous batches, got languages {sorted(langs)} "
                          "(set data.homogeneous=true)")
    return langs.pop()


class MaskedHooks(TransducerHooks):
    """``masked`` training: ``masks`` (or the masks already applied to the model) stay fixed."""

    mode = "masked"

    def __init__(self, masks=None):
        self.masks = masks

    def setup(self, model, languages):
        if self.masks is not None:
            apply_masks(model, self.masks)


class PathwaysHooks(TransducerHooks):
    """``pathways`` training: each language-homogeneous batch runs through and updates its own mask."""

    mode = "pathways"

    def __init__(self, pathway_masks):
        if not pathway_masks:
            raise ConfigError("pathways mode needs per-language masks")
        self.pathway_masks = pathway_masks
        self.pw: Optional[Pathways] = None
        self.forced = False

    def languages(self, languages, cfg):
        languages = list(languages or self.pathway_masks)
        missing = [lang for lang in languages if lang not in self.pathway_masks]
        if missing:
            raise ConfigError(f"no pathway mask for language(s) {', '.join(missing)}")
        if not cfg["data"].get("homogeneous", True):
            raise ConfigError("pathways training needs data.homogeneous=true")
        return languages

    def setup(self, model, languages):
        self.pw = Pathways(model, {lang: self.pathway_masks[lang] for lang in languages})

    def before_step(self, batch):
        lang = _batch_lang(batch)
        if not self.forced:               # after a resume the mask buffers hold another language's mask
            set_masks(self.pw.model, self.pw.masks[lang])
            self.pw.active, self.forced = lang, True
        self.pw.use(lang)

    def attach(self, trainer):
        _masked_optimizer(trainer.optimizer, self.pw)

    def state_dict(self, model):
        return plain_state_dict(model, bake=False)

    def finish(self, model, exp_dir, cfg, extra_save):
        return _finish_pathways(self.pw, exp_dir, cfg, extra_save)


def sparse_hooks(mode: str, masks=None, pathway_masks=None) -> TransducerHooks:
    """The :class:`~speechkd.train.transducer.TransducerHooks` of ``mode`` (``masked`` | ``pathways``)."""
    if mode == "masked":
        return MaskedHooks(masks)
    if mode == "pathways":
        return PathwaysHooks(pathway_masks)
    raise ConfigError(f"no sparse training mode '{mode}' (masked | pathways)")


def _finish_pathways(pw: Pathways, exp_dir: Path, cfg: dict, extra_save) -> dict:
    """masks.pt, overlap.{png,md,json}, export/<lang>/ sparse checkpoints; returns params info."""
    save_pathway_masks(exp_dir / "masks.pt", pw.masks)
    plot_overlap(pw.masks, exp_dir / "overlap.png", title="pathway mask overlap (IoU)")
    atomic_write_text(exp_dir / "overlap.md", overlap_markdown(pw.masks))
    langs, iou = pw.overlap()
    info: dict = {"languages": langs, "iou": iou.tolist()}
    ecfg = {k: v for k, v in cfg.items() if k not in ("mode",)}
    ecfg["mode"] = "pathway_export"
    for lang in langs:
        sparse, si = export_sparse(pw, lang)
        write_checkpoint_dir(exp_dir / "export" / lang, dict(ecfg, pathway=lang), sparse.state_dict(), None,
                             extra_save)
        info[f"params_{lang}"] = si["params_nonzero"]
        info[f"sparsity_{lang}"] = si["sparsity"]
    log.info("pathways exported to %s: %s", exp_dir / "export",
             ", ".join(f"{lang} {info[f'params_{lang}']} params" for lang in langs))
    return info


def prune_transducer(cfg: dict, train_data, valid_data=None, exp_dir="exp/pruned", init=None,
                     token_dir=None, languages: Optional[Sequence[str]] = None) -> Path:
    """Iterative magnitude pruning of ``init`` to ``prune.target`` with ``prune.round_steps`` of masked
    retraining on ``languages`` after each round (language-agnostic: all languages; monolingual: one).

    Writes ``exp_dir/round<i>/`` (each retraining run), ``exp_dir/masks.pt`` (``{lang: masks}`` for
    every language trained on, the same mask), ``exp_dir/model/`` (zeros baked in) and ``params.json``.
    """
    from ..asr.tokenizer import load_tokenizer

    if init is None:
        raise ConfigError("pruning needs --init (the dense model to prune)")
    cfg = merge(PRUNE_DEFAULTS, cfg)
    pcfg = cfg["prune"]
    exp_dir = Path(exp_dir)
    exp_dir.mkdir(parents=True, exist_ok=True)
    languages = list(languages or cfg["data"].get("languages") or []) or None
    tok = load_tokenizer(token_dir or Path(init) / "tokenizer")
    seed_everything(int(cfg["train"].get("seed", 0)))
    model = build_transducer(cfg, tok.vocab_size, init)
    round_cfg = merge(cfg, {"train": {"max_steps": int(pcfg["round_steps"])}})
    rounds = int(pcfg["rounds"])

    def train_fn(m, i):
        train_transducer(round_cfg, train_data, valid_data, exp_dir / f"round{i + 1}", token_dir=token_dir,
                         init=init, mode="masked", languages=languages, model=m)

    masks = iterative_magnitude_pruning(model, float(pcfg["target"]), rounds, train_fn, scope=pcfg["scope"],
                                        schedule=pcfg["schedule"], exclude=list(pcfg["exclude"] or []))
    if languages is None:
        languages = sorted(set(read_kv(Path(train_data) / "utt2lang").values()))
    save_pathway_masks(exp_dir / "masks.pt", {lang: masks for lang in languages})
    last = exp_dir / f"round{rounds}"
    final_cfg = dict(round_cfg, mode="pruned", prune=pcfg, model=model.model_config(), init=str(init))

    def extra_save(d: Path):
        shutil.copytree(last / "tokenizer", d / "tokenizer")
        shutil.copyfile(last / "cmvn.npz", d / "cmvn.npz")

    write_checkpoint_dir(exp_dir / "model", final_cfg, plain_state_dict(model, bake=True), None, extra_save)
    info = count_params(model)
    atomic_write_text(exp_dir / "params.json", json.dumps(info, indent=1) + "\n")
    log.info("pruned to sparsity %.3f: %d of %d parameters non-zero -> %s", info["sparsity"],
             info["params_nonzero"], info["params_total"], exp_dir / "model")
    return exp_dir / "model"
