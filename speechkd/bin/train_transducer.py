"""Train a streaming transducer (RNN-T): dense, with one fixed mask, or as language pathways.

Usage::

    # dense multilingual model on all languages of data/train (language-homogeneous batches)
    speechkd-train-transducer --config conf/train.yaml --train-data data/train --valid-data data/dev \\
        --token-dir data/token_char --exp exp/dense_multi --data.cmvn dump/fbank/train/cmvn.npz

    # dense monolingual model (one language of the same data dirs)
    speechkd-train-transducer --config conf/train.yaml --train-data data/train --valid-data data/dev \\
        --token-dir data/token_char --langs it --exp exp/dense_mono/it --data.cmvn dump/fbank/train/cmvn.npz

    # pathways: per-language masks from monolingual pruning, joint training from the dense model;
    # a batch of language l runs through mask_l and updates only pathway l
    speechkd-train-transducer --config conf/pathways.yaml --mode pathways --init exp/dense_multi/model \\
        --masks exp/mono_sparse/en/masks.pt --masks exp/mono_sparse/de/masks.pt \\
        --train-data data/train --valid-data data/dev --exp exp/pathways/seed1 --train.seed 1

    # fixed mask (e.g. continue training a pruned model): --mode masked --masks exp/agnostic/seed1/masks.pt=en

Writes ``<exp>/model/`` (transducer checkpoint + tokenizer/ + cmvn.npz), ``train.log``, ``tensorboard/``,
``checkpoints/``, ``params.json``; pathways add ``masks.pt``, ``overlap.{png,md}`` and ``export/<lang>/``
(one sparse checkpoint per language). Every config key can be overridden (``--optim.lr 2e-3``).
Re-running the same command resumes from the newest checkpoint. See :mod:`speechkd.train.transducer`
(masked and pathways training: :mod:`speechkd.prune.train`).
"""
from __future__ import annotations

import argparse
import sys

from ..utils.cli import parse_args, run_main
from ..utils.config import load_config
from ..utils.errors import ConfigError


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="YAML config (model/data/optim/train sections)")
    p.add_argument("--mode", default="dense", choices=["dense", "masked", "pathways"])
    p.add_argument("--train-data", required=True)
    p.add_argument("--valid-data")
    p.add_argument("--token-dir", help="tokenizer dir (default: <init>/tokenizer)")
    p.add_argument("--init", help="transducer checkpoint to start from")
    p.add_argument("--masks", action="append", default=[],
                   help="masks.pt ({lang: masks}) or LANG=masks.pt; repeatable (masked: exactly one mask)")
    p.add_argument("--langs", help="comma-separated languages to train on (default: data.languages or all)")
    p.add_argument("--exp", required=True, help="experiment dir")
    return p


def _main(argv=None):
    args = parse_args(get_parser(), argv)
    import torch

    from ..train.transducer import TRANSDUCER_DEFAULTS, train_transducer

    cfg = load_config(args.config, args.overrides, defaults=TRANSDUCER_DEFAULTS)
    langs = args.langs.split(",") if args.langs else None
    masks = pathway_masks = None
    if args.masks:
        from ..prune.train import load_masks_files

        got = load_masks_files(args.masks)
        if args.mode == "pathways":
            pathway_masks = got
        elif args.mode == "masked":
            masks = next(iter(got.values()))
            if not all(all(torch.equal(v[n], masks[n]) for n in masks) for v in got.values()):
                raise ConfigError("--mode masked takes one mask; the files hold different masks per language")
        else:
            raise ConfigError("--masks needs --mode masked or pathways")
    elif args.mode != "dense":
        raise ConfigError(f"--mode {args.mode} needs --masks")
    train_transducer(cfg, args.train_data, args.valid_data, args.exp, token_dir=args.token_dir, init=args.init,
                     mode=args.mode, masks=masks, pathway_masks=pathway_masks, languages=langs)


def main(argv=None):
    sys.exit(run_main(_main, argv))


if __name__ == "__main__":
    main()
