"""YAML configs with command-line overrides (every key overridable).

Keys are dotted paths into nested dicts::

    cfg = load_config("conf/finetune.yaml", overrides=["optim.lr=3e-4", "model.n_layers=2"])

On the command line the same overrides are written ``--optim.lr 3e-4`` or ``--optim.lr=3e-4``
(see :func:`speechkd.utils.cli.parse_args`). Values are parsed as YAML scalars/lists, so ``true``,
``1e-3``, ``[2,4,6]`` and ``null`` mean what they look like. Overriding a key that the config does not
have is an error (a typo would otherwise be silently ignored) unless ``allow_new=True``.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Iterable

from .errors import ConfigError
from .fileio import atomic_open


def load_yaml(path) -> dict:
    import yaml  # imported where used: CLIs' --help stays fast

    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: config file not found")
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{line}: invalid YAML: {getattr(e, 'problem', e)}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(data).__name__}")
    return data


def parse_value(text: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def set_dotted(cfg: dict, key: str, value: Any, allow_new: bool = False) -> None:
    parts = key.split(".")
    node = cfg
    for i, p in enumerate(parts[:-1]):
        if p not in node or not isinstance(node[p], dict):
            if not allow_new and p not in node:
                raise ConfigError(f"unknown config key '{key}' (no section '{'.'.join(parts[:i + 1])}')")
            node[p] = {}
        node = node[p]
    if not allow_new and parts[-1] not in node:
        close = ", ".join(sorted(node)) if isinstance(node, dict) else ""
        raise ConfigError(f"unknown config key '{key}'; known here: {close}")
    node[parts[-1]] = value


def get_dotted(cfg: dict, key: str, default: Any = None) -> Any:
    node = cfg
    for p in key.split("."):
        if not isinstance(node, dict) or p not in node:
            return default
        node = node[p]
    return node


def apply_overrides(cfg: dict, overrides: Iterable[str], allow_new: bool = False) -> dict:
    """Return a copy of ``cfg`` with ``key=value`` overrides applied."""
    cfg = copy.deepcopy(cfg)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override '{item}' is not of the form key=value")
        key, text = item.split("=", 1)
        set_dotted(cfg, key.strip(), parse_value(text), allow_new=allow_new)
    return cfg


def merge(base: dict, update: dict) -> dict:
    """Recursive dict merge (``update`` wins), returning a new dict."""
    out = copy.deepcopy(base)
    for k, v in update.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def load_config(path=None, overrides: Iterable[str] = (), defaults: dict | None = None,
                allow_new: bool = False) -> dict:
    """Defaults ← YAML file ← overrides. Keys absent from defaults+file cannot be overridden."""
    cfg = copy.deepcopy(defaults or {})
    if path is not None:
        cfg = merge(cfg, load_yaml(path))
    return apply_overrides(cfg, overrides, allow_new=allow_new)


def save_config(cfg: dict, path) -> None:
    import yaml

    with atomic_open(path, "w") as f:
        yaml.safe_dump(cfg, f, sort_keys=False, allow_unicode=True)
