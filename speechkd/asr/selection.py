"""Hyper-parameter selection on dev, reported on test: the row "λ chosen on dev" of a results table.

Each candidate (e.g. ``exp/lam0.25``, ``exp/lam0.5``) holds seed dirs (``seed1``, ``seed2``, ...) with the
same decode of the dev set under each (``<seed>/<lang>/decode_dev/score.json`` for every language, or
``<seed>/decode_dev/score.json`` without languages). For every seed present in all candidates the one
with the lowest dev error (mean over the languages) is chosen, and ``<out>/<seed>`` becomes a relative
symlink to that candidate's seed dir, so a results row over ``<out>/seed*`` reads the chosen runs' *test*
decodes. ``<out>/selection.json`` says, per seed, which candidate won and every candidate's dev error.

    >>> choice = select_on_dev({"0.25": "exp/lam0.25", "0.5": "exp/lam0.5"}, "exp/lam_dev",
    ...                        langs=["de", "ru"], unit="char")
    >>> choice["seed1"]["chosen"]
    '0.5'
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Dict, Mapping, Optional, Sequence

from ..utils.errors import ConfigError
from ..utils.fileio import atomic_write_text

__all__ = ["dev_error", "select_on_dev"]


def dev_error(seed_dir: Path, decode: str, langs: Optional[Sequence[str]], unit: str) -> float:
    """Mean ``Err`` (%) of ``unit`` over the languages' ``<lang>/<decode>/score.json`` of one seed dir."""
    files = [seed_dir / lang / decode / "score.json" for lang in langs] if langs else [seed_dir / decode / "score.json"]
    errs = []
    for f in files:
        if not f.exists():
            raise ConfigError(f"{f}: not found (decode the dev set of every candidate before selecting)")
        units = json.loads(f.read_text()).get("units", {})
        if unit not in units:
            raise ConfigError(f"{f}: no '{unit}' scores (has: {', '.join(sorted(units)) or 'none'})")
        errs.append(float(units[unit]["Err"]))
    return sum(errs) / len(errs)


def select_on_dev(candidates: Mapping[str, str], out: str, decode: str = "decode_dev",
                  langs: Optional[Sequence[str]] = None, unit: str = "char") -> Dict[str, dict]:
    """Choose, per seed, the candidate with the lowest dev error and link ``out/<seed>`` to it (see module doc).

    Ties go to the candidate named first. Seeds missing from some candidate are skipped (and listed in
    ``selection.json`` under ``skipped``). Returns ``{seed: {"chosen": name, "dev": {name: err}}}``.
    """
    if not candidates:
        raise ConfigError("select_on_dev: no candidates")
    roots = {name: Path(p) for name, p in candidates.items()}
    seeds_of = {name: {d.name for d in root.glob("seed*") if d.is_dir()} for name, root in roots.items()}
    common = sorted(set.intersection(*seeds_of.values()))
    if not common:
        raise ConfigError(f"select_on_dev: no seed dir common to {', '.join(str(r) for r in roots.values())}")
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    result: Dict[str, dict] = {}
    for seed in common:
        dev = {name: dev_error(root / seed, decode, langs, unit) for name, root in roots.items()}
        chosen = min(dev, key=dev.get)          # the first of equal errors: candidates keep their order
        link = out_dir / seed
        tmp = out_dir / f".{seed}.tmp"
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        tmp.symlink_to(os.path.relpath(roots[chosen] / seed, out_dir))
        tmp.replace(link)          # atomic: a re-run swaps the link, never leaves none
        result[seed] = {"chosen": chosen, "dev": {n: round(e, 3) for n, e in dev.items()}}
    skipped = sorted(set.union(*seeds_of.values()) - set(common))
    summary = {"decode": decode, "unit": unit, "langs": list(langs or []), "seeds": result, "skipped": skipped}
    atomic_write_text(out_dir / "selection.json", json.dumps(summary, indent=1) + "\n")
    return result
