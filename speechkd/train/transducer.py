"""Training of a streaming RNN-T :class:`speechkd.models.transducer.TransducerModel` over
:class:`speechkd.train.trainer.Trainer`: Fbank + token loaders (optionally language-homogeneous
batches), model building, and :func:`train_transducer`.

Example::

    cfg = load_config("conf/train.yaml", [], defaults=TRANSDUCER_DEFAULTS)
    train_transducer(cfg, "data/train", "data/dev", "exp/dense_multi", token_dir="data/token_char",
                     languages=["en", "de", "es", "it"])                        # dense multilingual

Batches are bounded by ``data.batch_seconds`` of padded audio; ``data.homogeneous`` (default true) makes
every batch hold a single language. The run writes ``exp_dir/model/`` (+ ``tokenizer/``, ``cmvn.npz``)
and ``params.json`` (:func:`count_params`).

Sparse training plugs in through :class:`TransducerHooks`: ``mode="masked"`` (one fixed mask) and
``mode="pathways"`` (one mask per language) are the hooks of :mod:`speechkd.prune.train`, which also
holds iterative magnitude pruning (``prune_transducer``).
"""
from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence

import numpy as np
import torch
from torch import nn

from ..data.collate import collate
from ..data.datadir import read_kv
from ..data.dataset import FeatsDataset
from ..data.sampler import BucketBatchSampler, ResumableSamplerState, make_batches
from ..models.transducer import TransducerConfig, TransducerModel
from ..utils.config import merge, save_config
from ..utils.errors import ConfigError, DataError
from ..utils.fileio import atomic_write_text
from .data import DATA_DEFAULTS, resolve_cmvn
from .optim import OPTIM_DEFAULTS
from .rng import seed_everything
from .trainer import TRAIN_DEFAULTS, Trainer

__all__ = ["TRANSDUCER_DEFAULTS", "MODES", "LanguageBatchSampler", "plain_state_dict", "language_utts",
           "make_transducer_loader", "build_transducer", "count_params", "TransducerHooks", "train_transducer"]

log = logging.getLogger("speechkd")

_MODEL_DEFAULTS = {k: v for k, v in TransducerConfig(vocab_size=0).__dict__.items() if k != "vocab_size"}

#: Defaults of the whole config (``model``, ``data``, ``optim``, ``train`` sections).
TRANSDUCER_DEFAULTS: Dict = {
    "model": {"type": "transducer", **_MODEL_DEFAULTS},
    "data": merge(DATA_DEFAULTS, {"languages": None, "homogeneous": True}),
    "optim": merge(OPTIM_DEFAULTS, {"lr": 1.0e-3, "warmup_steps": 100, "scheduler": "linear"}),
    "train": merge(TRAIN_DEFAULTS, {"max_steps": 500, "log_interval": 25, "keep_last": 1}),
    # joint_frame_chunk > 0: the joiner runs that many encoder frames at a time under checkpointing, so the
    # (B, T', U+1, V) logits never exist whole (bench/rnnt_joiner_memory.py; same loss and gradients)
    "loss": {"joint_frame_chunk": 0},
}

#: ``mode`` values of :func:`train_transducer` (masked and pathways: :mod:`speechkd.prune.train`).
MODES = ("dense", "masked", "pathways")


# ------------------------------------------------------------------------------------------- sampler
class LanguageBatchSampler(ResumableSamplerState):
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
    """``{"params_total", "params_nonzero", "sparsity"}``; sparsity = zeros among ``names`` (default: the
    prunable weights, :func:`speechkd.prune.masks.prunable_names`). Masks applied as parametrizations count."""
    if names is None:
        from ..prune.masks import prunable_names

        names = prunable_names(model)
    names = list(names)
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



# ------------------------------------------------------------------------------------------- training
class TransducerHooks:
    """Extension points of :func:`train_transducer`; this base class is plain (dense) training.

    :mod:`speechkd.prune.train` subclasses it for ``masked`` and ``pathways`` training.
    """

    mode = "dense"

    def languages(self, languages: Optional[Sequence[str]], cfg: dict) -> Optional[Sequence[str]]:
        """The languages to train on (before ``data.languages`` is consulted); may check the config."""
        return languages

    def setup(self, model: nn.Module, languages: Optional[Sequence[str]]) -> None:
        """Called once the model is built and the config saved, before the trainer is made."""

    def before_step(self, batch) -> None:
        """Called with every batch before the forward pass."""

    def attach(self, trainer: Trainer) -> None:
        """Called with the trainer before :meth:`Trainer.fit`."""

    def state_dict(self, model: nn.Module) -> Dict[str, torch.Tensor]:
        """What a saved ``model.pt`` holds (plain parameter names)."""
        return plain_state_dict(model, bake=True)

    def finish(self, model: nn.Module, exp_dir: Path, cfg: dict, extra_save) -> dict:
        """After training: write extra outputs; returns the ``params.json`` content."""
        return count_params(model)


def _mode_hooks(mode: str, masks, pathway_masks) -> TransducerHooks:
    if mode not in MODES:
        raise ConfigError(f"mode must be one of {', '.join(MODES)}, got '{mode}'")
    if pathway_masks is not None and mode != "pathways":
        raise ConfigError("pathway_masks need mode='pathways'")
    if mode == "dense":
        return TransducerHooks()
    from ..prune.train import sparse_hooks

    return sparse_hooks(mode, masks, pathway_masks)


def train_transducer(cfg: dict, train_data, valid_data=None, exp_dir="exp/transducer", token_dir=None,
                     init=None, mode: str = "dense", masks=None, pathway_masks=None,
                     languages: Optional[Sequence[str]] = None, model: Optional[nn.Module] = None,
                     hooks: Optional[TransducerHooks] = None) -> Path:
    """Train a transducer; returns ``exp_dir/model``. ``model`` (optional) is trained in place (e.g. a
    masked model inside pruning); ``init`` (a transducer checkpoint) supplies weights, tokenizer and CMVN.

    ``mode``: ``dense`` (one language = monolingual, several = multilingual), ``masked`` (``masks``: one
    fixed mask) or ``pathways`` (``pathway_masks``: ``{lang: masks}``), see :mod:`speechkd.prune.train`;
    ``hooks`` replaces the hooks of ``mode``.
    """
    from ..asr.tokenizer import load_tokenizer

    if hooks is None:
        hooks = _mode_hooks(mode, masks, pathway_masks)
    cfg = merge(TRANSDUCER_DEFAULTS, cfg)
    exp_dir = Path(exp_dir)
    exp_dir.mkdir(parents=True, exist_ok=True)
    languages = hooks.languages(languages, cfg)
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
    cfg["mode"] = hooks.mode
    train_loader = make_transducer_loader(train_data, cfg["data"], tok, cmvn, languages, seed, train=True)
    valid_loader = None
    if valid_data is not None:
        valid_loader = make_transducer_loader(valid_data, cfg["data"], tok, cmvn, languages, seed, train=False)
    save_config(cfg, exp_dir / "config.yaml")
    hooks.setup(model, languages)

    chunk = int(cfg["loss"].get("joint_frame_chunk") or 0)

    def step_fn(m, batch):
        hooks.before_step(batch)
        loss = m(batch["x"], batch["x_lengths"], batch["tokens"], batch["token_lengths"], joint_frame_chunk=chunk)
        return loss, {}

    def extra_save(d: Path):
        shutil.copytree(tok_dir, d / "tokenizer")
        shutil.copyfile(cmvn, d / "cmvn.npz")

    trainer = Trainer(model, step_fn, cfg["optim"], exp_dir, cfg, state_dict_fn=hooks.state_dict,
                      extra_save_fn=extra_save)
    hooks.attach(trainer)
    trainer.fit(train_loader, valid_loader)
    info = hooks.finish(model, exp_dir, cfg, extra_save)
    atomic_write_text(exp_dir / "params.json", json.dumps(info, indent=1) + "\n")
    return exp_dir / "model"
