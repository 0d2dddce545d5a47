#!/usr/bin/env python3
"""L_disc's KL during distillation, as a RESULTS.md section (run.sh stage 9).

Usage::

    python3 local/disc_curve.py --out_png disc_kl.png --out_md exp/disc_section.md exp/sw_disc/seed* exp/dt_disc/seed*

Reads each run's ``distill.log`` (the trainer's ``kl`` column: KL(teacher || student) over the teacher's
codebook), draws ``kl`` against the update (one line per run) and writes a markdown section with
the plot and the KL at the first logged update, at 10 % of the updates and at the end. With no run that
logged ``kl`` the section says so (the table has no L_disc row).
"""
import argparse
from pathlib import Path

from speechkd.models.zoo import plot_curves, read_train_log
from speechkd.utils.fileio import atomic_write_text


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out_png", required=True)
    p.add_argument("--out_md", required=True)
    p.add_argument("runs", nargs="*")
    a = p.parse_args()
    logs, rows = {}, []
    for run in a.runs:
        log = Path(run) / "distill.log"
        if not log.exists():
            continue
        curve = read_train_log(log)
        pts = [(s, st["kl"]) for s, st in curve["train"] if "kl" in st]
        if not pts:
            continue
        logs[run.removeprefix("exp/")] = {"train": curve["train"]}
        tenth = min(pts, key=lambda q: abs(q[0] - pts[-1][0] / 10))
        rows.append(f"| {run} | {pts[0][1]:.4g} (update {pts[0][0]}) | {tenth[1]:.4g} (update {tenth[0]}) | "
                    f"{pts[-1][1]:.4g} (update {pts[-1][0]}) |")
    if not rows:
        atomic_write_text(a.out_md, "No run logged L_disc's KL (no *_disc student in this table).\n")
        return
    plot_curves(logs, "kl", a.out_png, title="L_disc: KL(teacher || student) over the codebook")
    md = ["KL(teacher || student) of the L_disc students over the teacher's codebook, as each run's log has "
          "it (the term's weight is 1; a KL that falls to ~0 early carries no signal after that).", "",
          "| run | first | 10 % of the updates | last |", "|---|---|---|---|", *rows, "",
          f"![L_disc KL]({Path(a.out_png).name})", ""]
    atomic_write_text(a.out_md, "\n".join(md))


if __name__ == "__main__":
    main()
