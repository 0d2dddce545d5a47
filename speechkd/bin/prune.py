"""Iterative magnitude pruning of a transducer (prune -> retrain rounds) to a target sparsity.

Usage::

    # language-agnostic: one mask learned on all languages' data, from the dense multilingual model
    speechkd-prune --config conf/prune.yaml --init exp/dense_multi/model --train-data data/train \\
        --valid-data data/dev --exp exp/agnostic/seed1 --train.seed 1

    # monolingual: prune the dense multilingual model with Italian data only, retrain on Italian
    speechkd-prune --config conf/prune.yaml --init exp/dense_multi/model --train-data data/train \\
        --valid-data data/dev --langs it --exp exp/mono_sparse/it --prune.target 0.7 --prune.rounds 3

Writes ``<exp>/round<i>/`` (each masked retraining run), ``<exp>/masks.pt`` (``{lang: masks}`` for the
languages trained on; the pathways stage reads them), ``<exp>/model/`` (zeros baked in, plain transducer
checkpoint + tokenizer/ + cmvn.npz) and ``<exp>/params.json`` (non-zero parameters, sparsity).
Options of the ``prune:`` section: target, rounds, round_steps, scope (global|layer), schedule, exclude.
"""
from __future__ import annotations

import argparse
import sys

from ..utils.cli import parse_args, run_main
from ..utils.config import load_config


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="YAML config (model/data/optim/train/prune sections)")
    p.add_argument("--init", required=True, help="dense transducer checkpoint to prune")
    p.add_argument("--train-data", required=True)
    p.add_argument("--valid-data")
    p.add_argument("--token-dir", help="tokenizer dir (default: <init>/tokenizer)")
    p.add_argument("--langs", help="comma-separated languages (default: data.languages or all)")
    p.add_argument("--exp", required=True)
    return p


def _main(argv=None):
    args = parse_args(get_parser(), argv)
    from ..prune.train import PRUNE_DEFAULTS, prune_transducer

    cfg = load_config(args.config, args.overrides, defaults=PRUNE_DEFAULTS)
    prune_transducer(cfg, args.train_data, args.valid_data, args.exp, init=args.init, token_dir=args.token_dir,
                     languages=args.langs.split(",") if args.langs else None)


def main(argv=None):
    sys.exit(run_main(_main, argv))


if __name__ == "__main__":
    main()
