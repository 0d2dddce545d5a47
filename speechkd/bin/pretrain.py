"""HuBERT iteration-1 pretraining: MFCC -> k-means -> masked prediction of the cluster labels.

Usage:

    speechkd-pretrain --config conf/pretrain.yaml --train-data data/train --valid-data data/dev \
        --exp exp/teacher --optim.lr 5e-4 --kmeans.n_clusters 100 --model.frontend fbank

Writes ``exp/teacher/model/`` (type ssl checkpoint with the HubertHead, ``kmeans.pt`` codebook and, for a
fbank front-end, ``cmvn.npz``), ``model_best/``, ``checkpoints/step_N/``, ``train.log``, ``tensorboard/``.
Re-running the same command resumes from the newest checkpoint.
"""
from __future__ import annotations

import argparse
import sys

from ..utils.cli import parse_args, run_main
from ..utils.config import load_config


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="YAML config (sections model, kmeans, loss, data, optim, train)")
    p.add_argument("--train-data", required=True, help="training data dir (wav.scp; feats.scp for fbank)")
    p.add_argument("--valid-data", help="validation data dir")
    p.add_argument("--exp", required=True, help="experiment dir")
    return p


def _main(argv=None):
    args = parse_args(get_parser(), argv)
    from ..train.hubert import PRETRAIN_DEFAULTS, pretrain_hubert   # torch only after the arguments parse

    cfg = load_config(args.config, args.overrides, defaults=PRETRAIN_DEFAULTS)
    out = pretrain_hubert(cfg, args.train_data, args.valid_data, args.exp)
    print(out)
    return 0


def main(argv=None):
    sys.exit(run_main(_main, argv))


if __name__ == "__main__":
    main()
