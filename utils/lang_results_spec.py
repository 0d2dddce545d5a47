#!/usr/bin/env python3
"""Fill a per-language results template: one column per language (and their average) for
speechkd-make-results, optionally rows named by the models run and notes on the command and protocol.

    utils/lang_results_spec.py conf/results.yaml exp/results_spec.yaml --langs "de es ru" --ft_mode per_lang \
        [--rows "teacher=exp/teacher/model student=exp/student/model"] [--command "./run.sh ..."] [--ft_note]

--ft_mode per_lang: the column of language L reads L/decode_test (one model per language);
joint: all/decode_test restricted to utterances of L (one multilingual model). --rows NAME=... (or NAME)
sets the rows to exp/ft_NAME/seed*; --command adds a first note "Command: `...` in egs/CORPUS/RECIPE"; --ft_note appends a
note saying which fine-tuning protocol the mode is; --drop_unrun leaves out the template's rows whose exp glob
matches no run (e.g. a λ not in --lambdas), with a note naming them. The spec is written under a temporary name and renamed.
"""
from __future__ import annotations

import argparse
import glob
import os
import sys
from pathlib import Path

import yaml

FT_NOTES = {
    "joint": "Fine-tuning: one multilingual CTC model per seed on the labelled sets of all evaluation languages "
             "together, scored per language.",
    "per_lang": "Fine-tuning: one CTC model per language and seed, on that language only.",
}


def fill(spec: dict, langs, ft_mode: str, rows=None, command=None, ft_note=False, drop_unrun=False) -> dict:
    if ft_mode not in FT_NOTES:
        raise SystemExit(f"--ft_mode must be per_lang or joint, not '{ft_mode}'")
    if not langs:
        raise SystemExit("--langs is empty")
    spec = dict(spec)
    cols = [{"name": lang, "decode": "all/decode_test", "lang": lang} if ft_mode == "joint"
            else {"name": lang, "decode": f"{lang}/decode_test"} for lang in langs]
    spec["columns"] = list(spec.get("columns") or []) + cols + [{"name": "avg", "mean_of": list(langs)}]
    if rows is not None:
        names = [r.split("=", 1)[0] for r in rows]
        spec["rows"] = [{"name": n, "exp": f"exp/ft_{n}/seed*"} for n in names]
    notes = list(spec.get("notes") or [])
    if drop_unrun:
        unrun = [r["name"] for r in spec.get("rows") or [] if not glob.glob(r["exp"])]
        spec["rows"] = [r for r in spec.get("rows") or [] if r["name"] not in unrun]
        if unrun:
            notes.append("Not run: " + "; ".join(unrun) + ".")
    if command:
        here = Path.cwd().parts
        where = " in " + "/".join(here[-3:]) if len(here) >= 3 and here[-3] == "egs" else ""
        notes.insert(0, f"Command: `{command}`{where}.")
    if ft_note:
        notes.append(FT_NOTES[ft_mode])
    spec["notes"] = notes
    return spec


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("template")
    p.add_argument("out")
    p.add_argument("--langs", required=True, help="space-separated language codes")
    p.add_argument("--ft_mode", default="per_lang", help="per_lang | joint")
    p.add_argument("--rows", help="space-separated NAME[=...] list: rows exp/ft_NAME/seed*")
    p.add_argument("--command", help="the command that made the results (first note)")
    p.add_argument("--ft_note", action="store_true", help="append a note naming the fine-tuning protocol")
    p.add_argument("--drop_unrun", action="store_true", help="leave out rows whose exp glob matches nothing")
    args = p.parse_args(argv)
    with open(args.template, encoding="utf-8") as f:
        spec = yaml.safe_load(f)
    if not isinstance(spec, dict):
        raise SystemExit(f"{args.template}: not a results spec (a YAML mapping)")
    spec = fill(spec, args.langs.split(), args.ft_mode, args.rows.split() if args.rows is not None else None,
                args.command, args.ft_note, args.drop_unrun)
    tmp = f"{args.out}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        yaml.safe_dump(spec, f, sort_keys=False, allow_unicode=True)
    os.replace(tmp, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
