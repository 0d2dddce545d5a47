"""Generate a recipe's RESULTS.md from score.json files and a table spec (rows × columns).

Usage::

    # in egs/mini_espeak/distilxlsr after the score stage
    speechkd-make-results --spec conf/results.yaml --out RESULTS.md

    # paths in the spec relative to another directory; fail if a score.json is missing
    speechkd-make-results --spec egs/mini_espeak/distilxlsr/conf/results.yaml \\
        --root egs/mini_espeak/distilxlsr --out egs/mini_espeak/distilxlsr/RESULTS.md --strict

See :mod:`speechkd.asr.results` for the spec format (title, unit, metric, columns, rows with seed globs).
"""
from __future__ import annotations

import argparse
import logging
import sys

from speechkd.asr.results import make_results
from speechkd.utils.cli import parse_args, run_main

log = logging.getLogger("speechkd")


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--spec", required=True, help="table spec (YAML or JSON)")
    p.add_argument("--out", default="RESULTS.md")
    p.add_argument("--root", default=".", help="directory the spec's paths are relative to")
    p.add_argument("--strict", action="store_true", help="error on a missing score.json")
    return p


def _main(argv=None):
    args = parse_args(get_parser(), argv, allow_overrides=False)
    text = make_results(args.spec, args.out, root=args.root, strict=args.strict)
    log.info("wrote %s (%d lines)", args.out, text.count("\n"))


def main(argv=None):
    sys.exit(run_main(_main, argv))


if __name__ == "__main__":
    main()
