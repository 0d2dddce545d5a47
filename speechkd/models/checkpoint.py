"""Model registry and checkpoint directories (``config.yaml`` + ``model.pt`` [+ ``train_state.pt``]).

A model class registers itself under a ``type`` name and builds from its config section::

    @register_model("ctc")
    class CTCModel(nn.Module):
        @classmethod
        def from_config(cls, model_cfg: dict): ...
        def model_config(self) -> dict: ...      # optional: lets save_checkpoint fill config["model"]

    save_checkpoint("exp/teacher", model, {"model": {"type": "ssl", ...}, "optim": {...}})
    model, config = load_checkpoint("exp/teacher")             # no recipe needed

Files are written atomically (temp name + rename); ``config.yaml`` is written last, so a directory
with a ``config.yaml`` always holds a complete ``model.pt``.
"""
from __future__ import annotations

import importlib
import logging
import shutil
from pathlib import Path
from typing import Callable, Dict, Optional

import torch
from torch import nn

from ..utils.config import load_yaml, save_config
from ..utils.errors import ConfigError
from ..utils.fileio import atomic_dir

log = logging.getLogger("speechkd")

MODEL_REGISTRY: Dict[str, type] = {}

# The modules that register model types (``test/test_models.py`` checks that each imports and that every
# registered type comes from one of them); imported when a type is unknown.
_PROVIDERS = ["speechkd.models.ssl", "speechkd.models.ctc", "speechkd.models.transducer", "speechkd.models.intent"]


def register_model(name: str) -> Callable[[type], type]:
    """Class decorator: register ``cls`` (which has ``from_config(model_cfg: dict)``) as ``type: name``."""
    def deco(cls):
        if not hasattr(cls, "from_config"):
            raise TypeError(f"{cls.__name__} needs a from_config(model_cfg) classmethod to be registered")
        MODEL_REGISTRY[name] = cls
        cls.model_type = name
        return cls
    return deco


def _import_providers() -> None:
    for mod in _PROVIDERS:
        importlib.import_module(mod)


def get_model_class(name: str) -> type:
    if name not in MODEL_REGISTRY:
        _import_providers()
    if name not in MODEL_REGISTRY:
        raise ConfigError(f"unknown model type '{name}'; known: {', '.join(sorted(MODEL_REGISTRY))}")
    return MODEL_REGISTRY[name]


def build_model(model_cfg: dict) -> nn.Module:
    """Build a registered model from its config section (a dict with a ``type`` key)."""
    if not isinstance(model_cfg, dict) or "type" not in model_cfg:
        raise ConfigError(f"model config needs a 'type' key, got {model_cfg!r:.200}")
    return get_model_class(model_cfg["type"]).from_config(dict(model_cfg))


def model_config_of(model: nn.Module) -> dict:
    if not hasattr(model, "model_config"):
        raise ConfigError(f"{type(model).__name__} has no model_config(); pass config['model'] explicitly")
    return model.model_config()


def save_checkpoint(ckpt_dir, model: nn.Module, config: Optional[dict] = None,
                    train_state: Optional[dict] = None) -> Path:
    """Write ``ckpt_dir/{model.pt, train_state.pt, config.yaml}`` atomically and return ``ckpt_dir``.

    ``config`` is the full run config; its ``model`` section (with ``type``) is filled from
    ``model.model_config()`` when missing. A DDP/compiled wrapper is unwrapped first. Other files already
    in ``ckpt_dir`` (a codebook, CMVN stats, a tokenizer) are kept. Same writer as the trainer's
    (:func:`write_checkpoint_dir`): the directory appears whole or not at all.
    """
    ckpt_dir = Path(ckpt_dir)
    model = getattr(model, "module", model)
    model = getattr(model, "_orig_mod", model)
    config = dict(config or {})
    if "model" not in config:
        config["model"] = model_config_of(model)
    if "type" not in config["model"]:
        raise ConfigError(f"{ckpt_dir}: config['model'] needs a 'type' key")

    def keep_extras(tmp: Path) -> None:
        if ckpt_dir.is_dir():
            for f in ckpt_dir.iterdir():
                if f.is_file() and f.name not in ("model.pt", "train_state.pt", "config.yaml"):
                    shutil.copy2(f, tmp / f.name)

    return write_checkpoint_dir(ckpt_dir, config, model.state_dict(), train_state, keep_extras)


def write_checkpoint_dir(path, config: Dict, model_state: Dict, train_state: Optional[Dict] = None,
                         extra_fn: Optional[Callable[[Path], None]] = None) -> Path:
    """Write ``config.yaml``, ``model.pt`` (+ ``train_state.pt``) into a temp dir, then rename to ``path``.

    A killed writer leaves only a hidden ``.name.*`` temp dir, never a half-written ``path``.
    ``extra_fn(tmp_dir)`` may add files (e.g. a k-means codebook).
    """
    path = Path(path)
    with atomic_dir(path) as tmp:
        save_config(config, tmp / "config.yaml")
        torch.save(model_state, tmp / "model.pt")
        if train_state is not None:
            torch.save(train_state, tmp / "train_state.pt")
        if extra_fn is not None:
            extra_fn(tmp)
    return path


def link_checkpoint_dir(src, path) -> Path:
    """``path`` as a second name of checkpoint dir ``src``'s files (hard links; copies where the file system
    has none), written atomically like :func:`write_checkpoint_dir`. Checkpoint files are never changed in
    place (a new checkpoint is a new directory), so the two names cannot drift apart."""
    import os
    import shutil

    path, src = Path(path), Path(src)
    with atomic_dir(path) as tmp:
        for f in sorted(src.rglob("*")):        # sub-directories too (a tokenizer/ saved with the model)
            dst = tmp / f.relative_to(src)
            if f.is_dir():
                dst.mkdir(parents=True, exist_ok=True)
            elif f.is_file():
                dst.parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.link(f, dst)
                except OSError:
                    shutil.copyfile(f, dst)
    return path


def check_materialised(model: nn.Module, where) -> None:
    """Every parameter and buffer of a model built on the meta device got a real tensor (importers build
    the model on ``torch.device("meta")`` and assign the checkpoint's tensors: no init, no second copy)."""
    for name, t in [*model.named_parameters(), *model.named_buffers()]:
        if t.is_meta:
            raise ConfigError(f"{where}: '{name}' was not filled from the checkpoint (still on the meta device)")


def load_state_dict_checked(model: nn.Module, state: dict, where, assign: bool = False) -> None:
    """``load_state_dict(strict=True)`` with a one-line ConfigError naming ``where`` and the first bad key.

    ``assign=True`` makes the tensors of ``state`` the model's parameters instead of copying them in (for a
    model built on the meta device: no second copy of the weights); a tensor whose dtype differs from the
    parameter's is converted first, so the model's dtypes are those of ``assign=False``.
    """
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing:
        raise ConfigError(f"{where}: state dict does not match the model config: missing key '{missing[0]}'"
                          f" ({len(missing)} missing, {len(unexpected)} unexpected)")
    if unexpected:
        raise ConfigError(f"{where}: state dict does not match the model config: unexpected key "
                          f"'{unexpected[0]}' ({len(unexpected)} unexpected)")
    for k, v in state.items():
        if tuple(own[k].shape) != tuple(v.shape):
            raise ConfigError(f"{where}: state dict does not match the model config: key '{k}' has shape "
                              f"{tuple(v.shape)} in the checkpoint, {tuple(own[k].shape)} in the model")
    if not assign:
        model.load_state_dict(state, strict=True)
        return
    state = {k: v if v.dtype == own[k].dtype else v.to(own[k].dtype) for k, v in state.items()}
    model.load_state_dict(state, strict=True, assign=True)


def load_checkpoint(ckpt_dir, map_location="cpu"):
    """Load ``(model, config)`` from a checkpoint directory (model in eval mode)."""
    ckpt_dir = Path(ckpt_dir)
    cfg_path, model_path = ckpt_dir / "config.yaml", ckpt_dir / "model.pt"
    if not cfg_path.exists():
        raise ConfigError(f"{ckpt_dir}: not a checkpoint directory (no config.yaml)")
    if not model_path.exists():
        raise ConfigError(f"{ckpt_dir}: checkpoint has no model.pt")
    config = load_yaml(cfg_path)
    if "model" not in config:
        raise ConfigError(f"{cfg_path}: no 'model' section")
    model = build_model(config["model"])
    state = load_state_file(model_path, map_location=map_location)
    load_state_dict_checked(model, state, ckpt_dir)
    model.eval()
    return model, config


def load_state_file(path, map_location="cpu", trust: bool = False):
    """A ``model.pt`` / ``train_state.pt`` written here, loaded with ``weights_only=True`` (no code runs).

    Legacy train states holding numpy RNG arrays still load (numpy arrays are allowed); anything else
    outside tensors and plain containers is a one-line ConfigError unless ``trust`` (full unpickling).
    """
    from ..utils.safe_load import numpy_safe_globals, safe_torch_load
    return safe_torch_load(path, trust=trust, allowed=numpy_safe_globals(), map_location=map_location)


def load_train_state(ckpt_dir, map_location="cpu", trust: bool = False) -> Optional[dict]:
    """``train_state.pt`` of a checkpoint directory (weights-only load), or None when absent."""
    path = Path(ckpt_dir) / "train_state.pt"
    if not path.exists():
        return None
    return load_state_file(path, map_location=map_location, trust=trust)
