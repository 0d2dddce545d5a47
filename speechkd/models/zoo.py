"""The mini teacher zoo: where the shared teachers live, and their model cards.

The zoo recipe ``egs/mini_espeak/ssl`` writes every teacher to ``<zoo>/<name>/`` (a checkpoint dir:
``config.yaml`` + ``model.pt`` (+ ``kmeans.pt``, ``cmvn.npz``), or a Hugging Face dir for text models)
with ``README.md`` (model card) and ``card.json``. ``<zoo>`` is ``$SPEECHKD_ZOO`` when set, else
``<repo>/egs/mini_espeak/ssl/exp/zoo``::

    from speechkd.models.zoo import zoo_path
    zoo_path("ssl_ml")            # PosixPath('.../egs/mini_espeak/ssl/exp/zoo/ssl_ml')

    curves = read_train_log("exp/iter1/train.log")       # {"train": [(step, {key: value})], "valid": [...]}
    write_card("exp/zoo/ssl_ml", name="ssl_ml", model_dir="exp/iter2/model", logs={"iteration 1": ...})
"""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from ..utils.fileio import atomic_dir, atomic_write_text

REPO = Path(__file__).resolve().parents[2]
DEFAULT_ZOO = REPO / "egs" / "mini_espeak" / "ssl" / "exp" / "zoo"
_LINE = re.compile(r"\[(train|valid)\] epoch \d+ step (\d+) (.*)$")
_STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)")


def zoo_root() -> Path:
    """The zoo directory: ``$SPEECHKD_ZOO`` or ``egs/mini_espeak/ssl/exp/zoo`` of this repository."""
    return Path(os.environ.get("SPEECHKD_ZOO") or DEFAULT_ZOO)


def zoo_path(name: str) -> Path:
    return zoo_root() / name


def read_train_log(path) -> Dict[str, List[Tuple[int, Dict[str, float]]]]:
    """``{"train": [(step, stats)], "valid": [...], "wall_seconds": s}`` from a trainer log (duplicate
    lines dropped; wall time from the first to the last time stamp of its progress lines)."""
    import datetime

    out: Dict[str, Dict[int, Dict[str, float]]] = {"train": {}, "valid": {}}
    stamps = []
    for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
        m = _LINE.search(line)
        if not m:
            continue
        t = _STAMP.match(line)
        if t:
            stamps.append(datetime.datetime.strptime(t.group(1), "%Y-%m-%d %H:%M:%S"))
        toks = m.group(3).split()
        stats = {}
        for k, v in zip(toks[::2], toks[1::2]):
            try:
                stats[k] = float(v.rstrip("s")) if k != "lr" else float(v)
            except ValueError:
                continue
        out[m.group(1)][int(m.group(2))] = stats
    res: Dict = {k: sorted(v.items()) for k, v in out.items()}
    res["wall_seconds"] = (max(stamps) - min(stamps)).total_seconds() if stamps else None
    return res


def plot_curves(logs: Mapping[str, Mapping], key: str, out_png, title: str = "") -> Path:
    """PNG of ``key`` against step, one line per (log name, train/valid)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for name, curves in logs.items():
        for part, style in (("train", ":"), ("valid", "-o")):
            pts = [(s, st[key]) for s, st in curves.get(part, []) if key in st]
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], style, ms=3, label=f"{name} ({part})")
    ax.set_xlabel("update")
    ax.set_ylabel(key)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title or key)
    fig.tight_layout()
    tmp = Path(out_png).with_name(Path(out_png).name + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, out_png)
    return Path(out_png)


def copy_checkpoint(model_dir, out_dir, extra: Sequence = ()) -> Path:
    """Copy a checkpoint dir (its files, not sub-dirs) + ``extra`` files into ``out_dir``, atomically:
    written under a temporary name beside it, then renamed over any older copy."""
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        for f in list(Path(model_dir).iterdir()) + [Path(e) for e in extra]:
            if f.is_file():
                shutil.copyfile(f, tmp / f.name)
    return out_dir


def _last(curves, part: str, key: str) -> Optional[float]:
    pts = [st[key] for _, st in curves.get(part, []) if key in st]
    return pts[-1] if pts else None


def write_card(out_dir, name: str, summary: str, config: Mapping, logs: Mapping[str, Mapping],
               targets: Mapping[str, Mapping], data: Mapping, check: Optional[Mapping] = None,
               key: str = "acc_m") -> Dict:
    """``out_dir/{card.json,README.md,curve_<key>.png}`` for a zoo teacher; returns the card dict."""
    out_dir = Path(out_dir)
    m = dict(config.get("model") or {})
    iters = {}
    for it, curves in logs.items():
        valid = [(s, st[key]) for s, st in curves.get("valid", []) if key in st]
        train_steps = [s for s, _ in curves.get("train", [])]
        iters[it] = {"updates": max(train_steps) if train_steps else None,
                     f"valid_{key}_curve": valid, f"valid_{key}_last": valid[-1][1] if valid else None,
                     f"train_{key}_last": _last(curves, "train", key),
                     "wall_minutes": round(curves["wall_seconds"] / 60, 1) if curves.get("wall_seconds") else None}
    card = {"name": name, "summary": summary,
            "model": {k: m.get(k) for k in ("type", "arch", "frontend", "d_model", "n_layers", "n_heads",
                                            "ffn_dim", "layer_norm_first", "num_labels", "mask_time_prob",
                                            "mask_time_length")},
            "params": config.get("params"), "data": dict(data), "iterations": iters,
            "targets": dict(targets), "check": dict(check or {})}
    png = plot_curves(logs, key, out_dir / f"curve_{key}.png", f"{name}: masked-prediction accuracy") \
        if any(logs.values()) else None
    with open(out_dir / "card.json.tmp", "w", encoding="utf-8") as f:
        json.dump(card, f, indent=1)
    os.replace(out_dir / "card.json.tmp", out_dir / "card.json")

    lines = [f"# {name}", "", summary, "", "## Model", ""]
    lines += [f"- {k}: {v}" for k, v in card["model"].items() if v is not None]
    if card["params"]:
        lines.append(f"- parameters: {card['params']:,}")
    lines += ["", "## Data", ""] + [f"- {k}: {v}" for k, v in card["data"].items()]
    lines += ["", "## Training (masked prediction)", "",
              f"| iteration | updates | wall min | valid {key} (last) | train {key} (last) | valid {key} curve |",
              "|---|---|---|---|---|---|"]
    for it, st in iters.items():
        curve = ", ".join(f"{s}: {v:.3f}" for s, v in st[f"valid_{key}_curve"])
        vl, tl = st[f"valid_{key}_last"], st[f"train_{key}_last"]
        lines.append(f"| {it} | {st['updates']} | {st['wall_minutes']} | {'' if vl is None else f'{vl:.3f}'} | "
                     f"{'' if tl is None else f'{tl:.3f}'} | {curve} |")
    if png is not None:
        lines += ["", f"![{key} per update]({png.name})"]
    if targets:
        lines += ["", "## Targets (k-means; quality against espeak-ng's exact phone times)", "",
                  "| targets | clusters | PNMI | phone purity | cluster purity |", "|---|---|---|---|---|"]
        for tname, st in targets.items():
            tr = (st.get("sets") or {}).get("train", {})
            lines.append(f"| {tname} | {st.get('n_clusters')} | {tr.get('pnmi', '')} | "
                         f"{tr.get('phone_purity', '')} | {tr.get('cluster_purity', '')} |")
    if check:
        lines += ["", "## Fine-tuning check", ""] + [f"- {k}: {v}" for k, v in check.items()]
    atomic_write_text(out_dir / "README.md", "\n".join(lines) + "\n")
    return card
