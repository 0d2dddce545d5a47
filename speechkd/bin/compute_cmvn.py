"""Compute global CMVN statistics (mean, std, count) over a feats.scp.

Usage:

    speechkd-compute-cmvn --feats data/train/feats.scp --out dump/fbank/train/cmvn.npz
"""
from __future__ import annotations

import argparse
import sys

from ..utils.cli import parse_args, run_main


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--feats", required=True, help="feats.scp to accumulate over")
    p.add_argument("--out", required=True, help="output cmvn.npz (mean, std, count)")
    p.add_argument("--std-floor", type=float, default=1e-5)
    p.add_argument("--no-progress", action="store_true")
    return p


def _main(argv=None):
    args = parse_args(get_parser(), argv, allow_overrides=False)
    from ..features.cmvn import compute_cmvn_from_scp

    cmvn = compute_cmvn_from_scp(args.feats, std_floor=args.std_floor, progress=not args.no_progress)
    cmvn.save(args.out)
    return 0


def main(argv=None):
    sys.exit(run_main(_main, argv))


if __name__ == "__main__":
    main()
