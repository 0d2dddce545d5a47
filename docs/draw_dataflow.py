#!/usr/bin/env python3
"""Draw the data flow of one recipe from its run.sh: one box per stage (its number and log line), the
entry points it calls (``speechkd-*``, ``steps/*.sh``, ``local/*``, also through the shell functions it
calls) and the paths it writes, joined by arrows in stage order.

    python docs/draw_dataflow.py egs/mini_espeak/hubert_kd/run.sh docs/dataflow_hubert_kd.png

The picture is made from the script, so it follows the recipe when the recipe changes (re-run this).
"""
from __future__ import annotations

import argparse
import re
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List

STAGE_IF = re.compile(r'^if \[ "\$stage" -le (\d+) \] && \[ "\$stop_stage" -ge (\d+) \]; then\s*$')
FUNC_DEF = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\(\)\s*\{")
LOG_LINE = re.compile(r'log "stage ([0-9]+)[^:]*: ([^"]*)"')
ENTRY = re.compile(r"(speechkd-[a-z][a-z0-9-]*|steps/[A-Za-z0-9_]+\.sh|local/[A-Za-z0-9_]+\.(?:py|sh))")
DEFAULT_VAR = re.compile(r"\$\{[A-Za-z_]+:-([^}]*)\}")   # ${x:-default} reads as its default
WRITES = re.compile(r"--(?:out|exp)\s+\"?([^\s\"]+)\"?")


@dataclass
class Stage:
    first: int          # the block runs when the range [stage, stop_stage] meets [first, last]
    last: int
    title: str = ""
    entries: List[str] = field(default_factory=list)
    writes: List[str] = field(default_factory=list)


def _functions(lines: List[str]) -> Dict[str, List[str]]:
    """Top-level shell functions ``name() {`` ... ``}`` -> their body lines (one-line ones too)."""
    funcs, name, body = {}, None, []
    for line in lines:
        if name is None:
            m = FUNC_DEF.match(line)
            if m:
                if line.rstrip().endswith("}"):
                    funcs[m.group(1)] = [line]
                else:
                    name, body = m.group(1), [line]
        elif line.startswith("}"):
            funcs[name], name = body, None
        else:
            body.append(line)
    return funcs


def _uniq(xs):
    return list(dict.fromkeys(xs))


def parse_stages(run_sh) -> List[Stage]:
    """The top-level stage blocks of a run.sh, in file order, with what each calls and writes."""
    lines = Path(run_sh).read_text(encoding="utf-8").splitlines()
    funcs = _functions(lines)
    stages, cur, body = [], None, []

    def expand(text_lines, seen):
        out = list(text_lines)
        for line in text_lines:
            for fn, fbody in funcs.items():
                if fn not in seen and re.search(rf"(^|[\s;(]){fn}(\s|$)", line):
                    out += expand(fbody, seen | {fn})
        return out

    for line in lines:
        if cur is None:
            m = STAGE_IF.match(line)
            if m:
                cur, body = Stage(first=int(m.group(2)), last=int(m.group(1))), []
        elif line.startswith("fi"):
            text = expand(body, set())
            own = [m.group(2) for ln in body for m in LOG_LINE.finditer(ln)]
            called = [m.group(2) for ln in text[len(body):] for m in LOG_LINE.finditer(ln)
                      if "skipped" not in m.group(2)]
            cur.title = DEFAULT_VAR.sub(r"\1", own[0] if own else "; ".join(_uniq(called)))
            cur.entries = _uniq(e for ln in text if not ln.lstrip().startswith("#") for e in ENTRY.findall(ln))
            cur.writes = _uniq(w for ln in text for w in WRITES.findall(ln))
            stages.append(cur)
            cur = None
        else:
            body.append(line)
    if not stages:
        raise SystemExit(f"{run_sh}: no 'if [ \"$stage\" -le N ] && [ \"$stop_stage\" -ge M ]; then' blocks found")
    return stages


def _plain(text: str) -> str:
    """Shell variables stay as written: no matplotlib mathtext between two '$'."""
    return text.replace("$", r"\$")


def draw(stages: List[Stage], out, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    box_h, gap, width = 1.0, 0.45, 10.0
    height = len(stages) * (box_h + gap) + 0.6
    fig, ax = plt.subplots(figsize=(9.5, 0.62 * height + 0.5))
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.axis("off")
    ax.set_title(_plain(title), fontsize=11, loc="left")
    for i, st in enumerate(stages):
        y = height - 0.3 - (i + 1) * (box_h + gap) + gap
        ax.add_patch(FancyBboxPatch((0.2, y), width - 0.4, box_h, boxstyle="round,pad=0.04",
                                    fc="#eef3fb", ec="#3c6db0", lw=1.2))
        num = str(st.first) if st.first == st.last else f"{st.first}-{st.last}"
        head = textwrap.shorten(st.title or "(no log line)", 88, placeholder=" ...")
        ax.text(0.4, y + box_h - 0.28, _plain(f"stage {num}: {head}"), fontsize=8.5, weight="bold", va="center")
        calls = ", ".join(st.entries) or "shell only"
        ax.text(0.4, y + box_h - 0.58, _plain(textwrap.shorten("runs " + calls, 120, placeholder=" ...")),
                fontsize=7.5, va="center", family="monospace")
        if st.writes:
            ax.text(0.4, y + 0.16, _plain(textwrap.shorten("writes " + ", ".join(st.writes), 120, placeholder=" ...")),
                    fontsize=7.5, va="center", family="monospace", color="#555555")
        if i:
            ax.annotate("", xy=(width / 2, y + box_h + 0.04), xytext=(width / 2, y + box_h + gap - 0.04),
                        arrowprops=dict(arrowstyle="->", color="#3c6db0", lw=1.2))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.stem + ".tmp" + out.suffix)
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)
    tmp.replace(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run_sh", help="a recipe's run.sh")
    p.add_argument("out", help="picture to write (.png or .svg)")
    p.add_argument("--title", help="picture title (default: the recipe folder)")
    args = p.parse_args(argv)
    stages = parse_stages(args.run_sh)
    recipe = Path(args.run_sh).resolve().parent
    title = args.title or f"{recipe.parent.name}/{recipe.name}: data flow of run.sh (each stage reads what earlier stages wrote)"
    draw(stages, args.out, title)
    print(f"{args.out}: {len(stages)} stages")
    return 0


if __name__ == "__main__":
    sys.exit(main())
