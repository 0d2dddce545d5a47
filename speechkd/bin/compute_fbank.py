"""Extract Kaldi-compatible fbank (or MFCC) features of a data dir into ark/scp, one job at a time.

Usage (one parallel job's share, then merge; the runner gives each job its split list):

    speechkd-compute-fbank --data data/train --out dump/fbank/train --job 3 \
        --utt-list dump/fbank/train/split4/3 --fbank.num_mel_bins 80
    speechkd-compute-fbank --data data/train --out dump/mfcc/train --kind mfcc --compress true
    speechkd-compute-fbank --merge --data data/train --out dump/fbank/train

Job N writes ``<out>/feats.N.ark`` + ``feats.N.scp`` + ``feats.N.utt2num_frames`` (without ``--job``:
``feats.*``); ``--merge`` writes ``<data>/feats.scp`` (sorted) and ``<data>/utt2num_frames``.
Feature options come from ``--config conf/fbank.yaml`` (sections ``fbank:`` / ``mfcc:``) and
``--fbank.<key> value`` / ``--mfcc.<key> value`` overrides.
"""
from __future__ import annotations

import argparse
import sys

from ..utils.cli import parse_args, run_main
from ..utils.config import load_config


def str2bool(s: str) -> bool:
    if s.lower() in ("true", "1", "yes"):
        return True
    if s.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got '{s}'")


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="data dir (wav.scp, optional segments)")
    p.add_argument("--out", required=True, help="output dir for ark/scp files")
    p.add_argument("--kind", default="fbank", choices=["fbank", "mfcc"])
    p.add_argument("--job", type=int, default=None, help="job number: output files are feats.<job>.*")
    p.add_argument("--utt-list", default=None, help="only these utterances (one id per line)")
    p.add_argument("--compress", type=str2bool, default=False, help="Kaldi compressed matrices")
    p.add_argument("--merge", action="store_true", help="merge job scps into <data>/feats.scp")
    p.add_argument("--config", default=None, help="YAML with fbank:/mfcc: option sections")
    p.add_argument("--num-threads", type=int, default=1,
                   help="torch threads per job (1: parallel jobs do not oversubscribe the cores)")
    p.add_argument("--no-progress", action="store_true")
    return p


def _main(argv=None):
    args = parse_args(get_parser(), argv)
    import torch

    from ..features.extract import DEFAULT_OPTS, extract_features, merge_feature_scps, read_utt_list

    if args.merge:
        merge_feature_scps(args.data, args.out)
        return 0
    cfg = load_config(args.config, args.overrides, defaults=DEFAULT_OPTS)
    if args.num_threads > 0:
        torch.set_num_threads(args.num_threads)
    utts = read_utt_list(args.utt_list) if args.utt_list else None
    name = "feats" if args.job is None else f"feats.{args.job}"
    extract_features(args.data, args.out, args.kind, cfg[args.kind], utts=utts, compress=args.compress,
                     name=name, progress=not args.no_progress)
    return 0


def main(argv=None):
    sys.exit(run_main(_main, argv))


if __name__ == "__main__":
    main()
