"""Training glue for the pathways method: dense, masked (fixed sparse) and pathways training of a
:class:`speechkd.models.transducer.TransducerModel` over :class:`speechkd.train.trainer.Trainer`, with
language-homogeneous batches, plus iterative magnitude pruning with retraining.

Modes of :func:`train_transducer`:

- ``dense``: ordinary training (one language = monolingual, several = multilingual);
- ``masked``: one fixed mask (``masks``) applied as a parametrization: pruned weights stay zero and
  get no gradient; the saved ``model/`` has the zeros baked in (plain parameter names);
- ``pathways``: ``{lang: masks}``; every batch holds one language ``l`` (:class:`LanguageBatchSampler`),
  runs through ``mask_l`` and updates only the weights of ``mask_l`` (:meth:`Pathways.step` wraps the
  optimizer step). The saved ``model/`` holds the shared (unmasked) weights; ``masks.pt`` the masks;
  ``export/<lang>/`` one sparse checkpoint per language (zeros outside ``mask_l``); ``overlap.png`` /
  ``overlap.md`` the mask IoU matrix; ``params.json`` the non-zero parameters per language.

Example::

    cfg = load_config("conf/train.yaml", [], defaults=TRANSDUCER_DEFAULTS)
    train_transducer(cfg, "data/train", "data/dev", "exp/dense_multi", token_dir="data/token_char",
                     languages=["en", "de", "es", "it"])                        # dense multilingual
    prune_transducer(cfg, "data/train", "data/dev", "exp/mono_sparse/en", init="exp/dense_multi/model",
                     languages=["en"])                                          # -> masks.pt, model/
    masks = {l: load_pathway_masks(f"exp/mono_sparse/{l}/masks.pt")[l] for l in langs}
    train_transducer(cfg, "data/train", "data/dev", "exp/pathways", init="exp/dense_multi/model",
                     mode="pathways", pathway_masks=masks)                      # -> export/<lang>/

Batches are bounded by ``data.batch_seconds`` of padded audio; ``data.homogeneous`` (default true) makes
every batch hold a single language (required for pathways).
"""
from __future__ import annotations

import copy
import json
import logging
import re
import shutil
import types
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence

import numpy as np
import torch
from torch import nn

from ..data.collate import collate
from ..data.datadir import read_kv
from ..data.dataset import FeatsDataset
from ..data.sampler import BucketBatchSampler, make_batches
from ..models.transducer import TransducerConfig, TransducerModel
from ..train.data import DATA_DEFAULTS, resolve_cmvn
from ..train.trainer import OPTIM_DEFAULTS, TRAIN_DEFAULTS, Trainer, seed_everything, write_checkpoint_dir
from ..utils.config import merge, save_config
from ..utils.errors import ConfigError, DataError
from ..utils.fileio import atomic_write_text
from .magnitude import iterative_magnitude_pruning
from .masks import apply_masks, prunable_names, set_masks
from .pathways import Pathways, export_sparse, overlap_matrix, plot_overlap, save_pathway_masks

__all__ = ["TRANSDUCER_DEFAULTS", "LanguageBatchSampler", "plain_state_dict", "language_utts",
           "make_transducer_loader", "build_transducer", "train_transducer", "prune_transducer",
           "load_masks_files", "count_params", "overlap_markdown"]

log = logging.getLogger("speechkd")

_MODEL_DEFAULTS = {k: v for k, v in TransducerConfig(vocab_size=0).__dict__.items() if k != "vocab_size"}

#: Defaults of the whole config (``model``, ``data``, ``optim``, ``train``, ``prune`` sections).
TRANSDUCER_DEFAULTS: Dict = {
    "model": {"type": "transducer", **_MODEL_DEFAULTS},
    "data": merge(DATA_DEFAULTS, {"languages": None, "homogeneous": True}),
    "optim": merge(OPTIM_DEFAULTS, {"lr": 1.0e-3, "warmup_steps": 100, "scheduler": "linear"}),
    "train": merge(TRAIN_DEFAULTS, {"max_steps": 500, "log_interval": 25, "keep_last": 1}),
    "prune": {"target": 0.7,            # final sparsity of the prunable weights (Linear + LSTM matrices)
              "rounds": 3,              # prune -> retrain rounds (geometric schedule)
              "round_steps": 100,       # retraining steps after each pruning round
              "scope": "global",        # global | layer
              "schedule": "geometric",  # geometric | linear
              "exclude": []},           # name substrings never pruned (e.g. joiner.out)
}

MODES = ("dense", "masked", "pathways")


# ------------------------------------------------------------------------------------------- sampler
class LanguageBatchSampler:
    """Length-bucketed batches that each hold **one language**; batch order shuffled over languages.

    Same interface as :class:`speechkd.data.sampler.BucketBatchSampler` (``set_epoch``, ``set_position``,
    ``state_dict``); the order is a pure function of ``(seed, epoch)``, so trainer resume is exact.

    >>> s = LanguageBatchSampler([5, 3, 4, 10], ["en", "de", "en", "de"], max_frames=10, shuffle=False)
    >>> list(s)
    [[1], [3], [2, 0]]
    """

    def __init__(self, lengths: Sequence[int], langs: Sequence[str], max_frames: int,
                 max_batch_size: Optional[int] = None, shuffle: bool = True, seed: int = 0):
        if len(lengths) != len(langs):
            raise ValueError("lengths and langs differ in length")
        if not lengths:
            raise ConfigError("LanguageBatchSampler: no utterances")
        self.lengths = [int(n) for n in lengths]
        self.groups: Dict[str, List[int]] = {}
        for i, lang in enumerate(langs):
            self.groups.setdefault(lang, []).append(i)
        self.max_frames, self.max_batch_size = int(max_frames), max_batch_size
        self.shuffle, self.seed = shuffle, int(seed)
        self.epoch = self.position = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch, self.position = int(epoch), 0

    def set_position(self, position: int) -> None:
        self.position = int(position)

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position, "seed": self.seed}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.position = int(state["epoch"]), int(state["position"])

    def global_batches(self, epoch: Optional[int] = None) -> List[List[int]]:
        epoch = self.epoch if epoch is None else epoch
        batches: List[List[int]] = []
        for li, lang in enumerate(sorted(self.groups)):
            idx = self.groups[lang]
            lens = [self.lengths[i] for i in idx]
            order = None
            if self.shuffle:
                tie = np.random.default_rng([self.seed, epoch, li]).permutation(len(idx))
                order = sorted(range(len(idx)), key=lambda j: (lens[j], tie[j]))
            batches += [[idx[j] for j in b] for b in make_batches(lens, self.max_frames, self.max_batch_size, order)]
        if self.shuffle:
            perm = np.random.default_rng([self.seed, epoch]).permutation(len(batches))
            batches = [batches[j] for j in perm]
        return batches

    def __iter__(self) -> Iterator[List[int]]:
        start, self.position = self.position, 0
        for b in self.global_batches()[start:]:
            yield list(b)

    def __len__(self) -> int:
        return len(self.global_batches(0))


# ------------------------------------------------------------------------------------------- helpers
_ORIG = re.compile(r"^(.*)\.parametrizations\.([^.]+)\.original$")
_PBUF = re.compile(r"\.parametrizations\.[^.]+\.\d+\.")


def plain_state_dict(model: nn.Module, bake: bool = True) -> Dict[str, torch.Tensor]:
    """State dict with plain parameter names while masks are applied as parametrizations.

    ``bake=True``: masked weights are ``W * M`` (zeros outside the current mask); ``False``: the stored W.
    Loadable into an unmasked model of the same config.
    """
    sd = model.state_dict()
    masks = {}
    for k, v in sd.items():
        if _PBUF.search(k) and k.endswith(".mask"):
            masks[k.split(".parametrizations.")[0] + "." + k.split(".parametrizations.")[1].split(".")[0]] = v
    out = {}
    for k, v in sd.items():
        if _PBUF.search(k):
            continue
        m = _ORIG.match(k)
        if m:
            name = f"{m.group(1)}.{m.group(2)}"
            out[name] = v * masks[name].to(v.dtype) if bake and name in masks else v.clone()
        else:
            out[k] = v
    return out


def language_utts(data_dir, languages: Optional[Sequence[str]]) -> Optional[List[str]]:
    """Utterances of ``languages`` (from ``utt2lang``), or None for all."""
    if not languages:
        return None
    path = Path(data_dir) / "utt2lang"
    if not path.exists():
        raise DataError(path, None, "not found: needed to select languages")
    u2l = read_kv(path)
    utts = [u for u, lang in u2l.items() if lang in set(languages)]
    missing = set(languages) - set(u2l.values())
    if missing:
        raise DataError(path, None, f"no utterances of language(s) {', '.join(sorted(missing))}")
    return utts


def make_transducer_loader(data_dir, data_cfg: dict, tokenizer, cmvn, languages=None, seed: int = 0,
                           train: bool = True):
    """DataLoader of Fbank + tokens (+ ``lang``) batches; language-homogeneous if ``data_cfg['homogeneous']``."""
    utts = language_utts(data_dir, languages)
    ds = FeatsDataset(data_dir, cmvn=cmvn, tokenizer=tokenizer, text_file=data_cfg.get("text_file", "text"),
                      extra={"lang": "utt2lang"}, utts=utts, feats_file=data_cfg.get("feats_file", "feats.scp"))
    short = [u for u, n in zip(ds.utts, ds.lengths) if n < 7]
    if short:
        raise DataError(ds.scp_path, None, f"utterance '{short[0]}' has fewer than 7 frames (transducer minimum)")
    max_frames = int(float(data_cfg.get("batch_seconds", 40.0)) * 100)
    if data_cfg.get("homogeneous", True):
        langs = [ds.extra["lang"][u] for u in ds.utts]
        sampler = LanguageBatchSampler(ds.lengths, langs, max_frames, data_cfg.get("max_batch_size"),
                                       shuffle=train, seed=seed)
    else:
        sampler = BucketBatchSampler(ds.lengths, max_frames, max_batch_size=data_cfg.get("max_batch_size"),
                                     shuffle=train, seed=seed, world_size=None if train else 1,
                                     rank=None if train else 0)
    return torch.utils.data.DataLoader(ds, batch_sampler=sampler, collate_fn=collate,
                                       num_workers=int(data_cfg.get("num_workers", 0)))


def build_transducer(cfg: dict, vocab_size: int, init=None) -> TransducerModel:
    """A transducer from ``init`` (a transducer checkpoint dir, weights kept) or from ``cfg['model']``."""
    if init is not None:
        from ..models.checkpoint import load_checkpoint

        model, icfg = load_checkpoint(init)
        if icfg["model"].get("type") != "transducer":
            raise ConfigError(f"{init}: not a transducer checkpoint (type {icfg['model'].get('type')!r})")
        if model.cfg.vocab_size != vocab_size:
            raise ConfigError(f"{init}: vocab {model.cfg.vocab_size}, tokenizer has {vocab_size}")
        return model.train()
    mcfg = {k: v for k, v in cfg["model"].items() if k != "type"}
    return TransducerModel.from_config({**mcfg, "vocab_size": vocab_size})


def count_params(model: nn.Module, names: Optional[Sequence[str]] = None) -> dict:
    """``{"params_total", "params_nonzero", "sparsity"}``; sparsity = zeros among the prunable weights."""
    names = list(names if names is not None else prunable_names(model))
    sd = plain_state_dict(model, bake=True)
    params = {k: sd[k] for k, _ in _plain_param_names(model)}
    total = sum(v.numel() for v in params.values())
    nonzero = sum(int((v != 0).sum()) for v in params.values())
    pz = sum(int((params[n] == 0).sum()) for n in names)
    pt = sum(params[n].numel() for n in names)
    return {"params_total": total, "params_nonzero": nonzero, "sparsity": pz / max(1, pt)}


def _plain_param_names(model: nn.Module):
    for k, p in model.named_parameters():
        m = _ORIG.match(k)
        yield (f"{m.group(1)}.{m.group(2)}" if m else k), p


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


def train_transducer(cfg: dict, train_data, valid_data=None, exp_dir="exp/transducer", token_dir=None,
                     init=None, mode: str = "dense", masks=None, pathway_masks=None,
                     languages: Optional[Sequence[str]] = None, model: Optional[nn.Module] = None) -> Path:
    """Train (see module doc); returns ``exp_dir/model``. ``model`` (optional) is trained in place
    (e.g. a masked model inside :func:`prune_transducer`); ``init`` still supplies tokenizer and CMVN."""
    from ..asr.tokenizer import load_tokenizer

    if mode not in MODES:
        raise ConfigError(f"mode must be one of {', '.join(MODES)}, got '{mode}'")
    cfg = merge(TRANSDUCER_DEFAULTS, cfg)
    exp_dir = Path(exp_dir)
    exp_dir.mkdir(parents=True, exist_ok=True)
    if pathway_masks is not None and mode != "pathways":
        raise ConfigError("pathway_masks need mode='pathways'")
    if mode == "pathways":
        if not pathway_masks:
            raise ConfigError("pathways mode needs per-language masks")
        languages = list(languages or pathway_masks)
        missing = [lang for lang in languages if lang not in pathway_masks]
        if missing:
            raise ConfigError(f"no pathway mask for language(s) {', '.join(missing)}")
        if not cfg["data"].get("homogeneous", True):
            raise ConfigError("pathways training needs data.homogeneous=true")
    languages = list(languages or cfg["data"].get("languages") or []) or None
    tok_src = token_dir or (Path(init) / "tokenizer" if init is not None else None)
    if tok_src is None:
        raise ConfigError("train_transducer needs a tokenizer dir (--token-dir) or --init")
    tok = load_tokenizer(tok_src)
    tok_dir = exp_dir / "tokenizer"
    if Path(tok_src).resolve() != tok_dir.resolve():
        tok.save(tok_dir)
    seed = int(cfg["train"].get("seed", 0))
    seed_everything(seed)
    if model is None:
        model = build_transducer(cfg, tok.vocab_size, init)
    cfg["model"] = model.model_config() if not hasattr(model, "module") else model.module.model_config()
    cfg["data"] = dict(cfg["data"], languages=languages)
    cmvn = resolve_cmvn(cfg["data"], train_data, exp_dir, init_dir=init)
    cfg["data"]["cmvn"] = str(cmvn)
    if init is not None:
        cfg["init"] = str(init)
    cfg["mode"] = mode
    train_loader = make_transducer_loader(train_data, cfg["data"], tok, cmvn, languages, seed, train=True)
    valid_loader = None
    if valid_data is not None:
        valid_loader = make_transducer_loader(valid_data, cfg["data"], tok, cmvn, languages, seed, train=False)
    save_config(cfg, exp_dir / "config.yaml")

    pw: Optional[Pathways] = None
    if mode == "masked" and masks is not None:
        apply_masks(model, masks)
    if mode == "pathways":
        pw = Pathways(model, {lang: pathway_masks[lang] for lang in languages})

    state = {"forced": False}

    def step_fn(m, batch):
        if pw is not None:
            lang = _batch_lang(batch)
            if not state["forced"]:           # after a resume the mask buffers hold another language's mask
                set_masks(pw.model, pw.masks[lang])
                pw.active, state["forced"] = lang, True
            pw.use(lang)
        loss = m(batch["x"], batch["x_lengths"], batch["tokens"], batch["token_lengths"])
        return loss, {}

    def extra_save(d: Path):
        shutil.copytree(tok_dir, d / "tokenizer")
        shutil.copyfile(cmvn, d / "cmvn.npz")

    trainer = Trainer(model, step_fn, cfg["optim"], exp_dir, cfg,
                      state_dict_fn=lambda m: plain_state_dict(m, bake=(mode != "pathways")),
                      extra_save_fn=extra_save)
    if pw is not None:
        _masked_optimizer(trainer.optimizer, pw)
    trainer.fit(train_loader, valid_loader)
    info = count_params(model) if mode != "pathways" else {}
    if pw is not None:
        info = _finish_pathways(pw, exp_dir, cfg, extra_save)
    atomic_write_text(exp_dir / "params.json", json.dumps(info, indent=1) + "\n")
    return exp_dir / "model"


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
    cfg = merge(TRANSDUCER_DEFAULTS, cfg)
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
