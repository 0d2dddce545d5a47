#!/usr/bin/env python3
"""Phone error rate of the check's decodes per espeak-ng voice variant (the cause experiment for a teacher
that wins on one set of unseen voices and loses on another): mean ± spread over seeds per init and voice.

    local/per_voice.py exp/check decode_dev decode_test decode_voices --versus iter2:scratch_nomask \
        --plot per_voice.png > exp/check/per_voice.md

A speaker id is <lang>_<variant>p<pitch>r<rate> (e.g. de_f5p65r145); the variant (f5) is the voice.
Writes one markdown table per decode set to stdout (a row per voice, a column per init, how many voices
each init is best on, and for --versus A:B on how many voices A's mean is lower than B's); --plot draws
A's per-voice PER against B's (below the diagonal: A better). Reads only score.json's ref/hyp files
(nothing is re-decoded).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from speechkd.asr.results import summarize
from speechkd.asr.scoring import score_files
from speechkd.corpus.mini_espeak import parse_speaker_id


def per_voice(score_json: Path) -> dict:
    sc = json.loads(score_json.read_text())
    hyp = Path(sc["hyp"])
    utts = [line.split(maxsplit=1)[0] for line in Path(sc["ref"]).read_text().splitlines() if line.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        u2v = Path(tmp) / "utt2voice"
        u2v.write_text("".join(f"{u} {parse_speaker_id(u)[1]}\n" for u in utts))
        res = score_files(sc["ref"], hyp, out_dir=tmp, units=("phone",), utt2lang=u2v)
    return {v: st["phone"]["Err"] for v, st in res["per_lang"].items()}


def collect(check: Path, inits, decode_set: str) -> dict:
    """voice -> init -> [PER per seed] of one decode set."""
    table: dict = {}
    for init in inits:
        for sj in sorted(check.glob(f"ft_{init}/seed*/{decode_set}/score.json")):
            for v, e in per_voice(sj).items():
                table.setdefault(v, {}).setdefault(init, []).append(e)
    return table


def markdown(decode_set: str, table: dict, inits, versus=None) -> str:
    lines = [f"{decode_set} (PER, mean ± spread over seeds; lowest mean in bold):", "",
             "| voice | " + " | ".join(inits) + " |", "|---|" + "---|" * len(inits)]
    wins = dict.fromkeys(inits, 0)
    for v in sorted(table, key=str.lower):
        cells = {i: summarize(table[v][i]) for i in inits if i in table[v]}
        best = min(cells, key=lambda i: cells[i][0])
        wins[best] += 1
        row = []
        for i in inits:
            if i not in cells:
                row.append("–")
                continue
            m, sd, _ = cells[i]
            row.append((f"**{m:.1f}**" if i == best else f"{m:.1f}") + f" ± {sd:.1f}")
        lines.append(f"| {v} | " + " | ".join(row) + " |")
    lines += ["", f"Lowest PER on {len(table)} voices: " + ", ".join(f"{i} {wins[i]}" for i in inits) + "."]
    if versus:
        a, b = versus
        both = [v for v in table if a in table[v] and b in table[v]]
        gaps = [summarize(table[v][b])[0] - summarize(table[v][a])[0] for v in both]
        if both:
            lines.append(f"{a} vs {b}: lower mean PER on {sum(g > 0 for g in gaps)} of {len(both)} voices "
                         f"(mean gap {sum(gaps) / len(gaps):+.1f}, positive = {a} better).")
    return "\n".join(lines) + "\n"


def plot(tables: dict, versus, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    a, b = versus
    fig, ax = plt.subplots(figsize=(5.5, 5.5))
    top = 0.0
    for (name, table), marker in zip(tables.items(), "osD^v"):
        pts = [(summarize(t[b])[0], summarize(t[a])[0], v) for v, t in table.items() if a in t and b in t]
        if not pts:
            continue
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], marker=marker, label=name, alpha=0.75)
        for x, y, v in pts:
            ax.annotate(v, (x, y), fontsize=6, xytext=(2, 2), textcoords="offset points")
        top = max(top, *(max(p[0], p[1]) for p in pts))
    top = top * 1.05 + 1
    ax.plot([0, top], [0, top], "k--", lw=0.8)
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_xlabel(f"PER (%) {b}")
    ax.set_ylabel(f"PER (%) {a}")
    ax.set_title(f"PER per unseen voice (mean over seeds); below the line: {a} better", fontsize=8)
    ax.legend(fontsize=7)
    fig.tight_layout()
    tmp = out.with_name(out.stem + ".tmp" + out.suffix)
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("check", type=Path, help="the check dir (ft_<init>/seed<N>/<decode set>/score.json)")
    p.add_argument("sets", nargs="+", help="decode sets (decode_dev decode_test ...)")
    p.add_argument("--versus", help="A:B, two inits to count per-voice wins between (and to plot)")
    p.add_argument("--plot", type=Path, help="PNG of A's per-voice PER against B's (needs --versus)")
    args = p.parse_args(argv)
    versus = tuple(args.versus.split(":")) if args.versus else None
    if (versus and len(versus) != 2) or (args.plot and not versus):
        p.error("--versus takes A:B, and --plot needs it")
    inits = sorted(d.name[3:] for d in args.check.glob("ft_*") if d.is_dir())
    tables = {s: collect(args.check, inits, s) for s in args.sets}
    print("\n".join(markdown(s, t, inits, versus) for s, t in tables.items() if t))
    if args.plot:
        plot({s: t for s, t in tables.items() if t}, versus, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
