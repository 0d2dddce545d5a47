"""CTC fine-tuning of an SSL encoder (from a pretrained/distilled checkpoint, or from scratch).

Usage:

    speechkd-finetune --config conf/finetune.yaml --init exp/teacher/model --train-data data/train_sub \
        --valid-data data/dev --token-dir data/token_phone --exp exp/ft --data.text_file phones
    speechkd-finetune --config conf/finetune.yaml --train-data data/train_sub --token-dir data/token_char \
        --exp exp/ft_scratch --optim.lr 1e-3 --finetune.freeze_encoder_steps 0

    # Distill-L2S (speechkd.distill.l2s_train): CTC + lambda * MSE to a frozen HF text encoder's states
    speechkd-finetune --config conf/finetune.yaml --init exp/teacher/model --train-data data/train_sub_de \
        --valid-data data/dev_de --token-dir data/token_char --exp exp/ft_l2s \
        --l2s.weight 0.5 --l2s.text_model exp/text_lm --l2s.layer -1 --l2s.interpolation nearest

Writes ``exp/ft/model/`` (type ctc checkpoint + ``tokenizer/`` [+ ``cmvn.npz``]), ``model_best/`` (by
greedy token error rate on --valid-data), ``checkpoints/``, ``train.log``, ``tensorboard/``.
Re-running the same command resumes from the newest checkpoint.
"""
from __future__ import annotations

import argparse
import sys

from ..utils.cli import parse_args, run_main
from ..utils.config import load_config


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="YAML config (sections model, finetune, data, optim, train [, l2s])")
    p.add_argument("--init", help="SSL or CTC checkpoint dir to start from (default: from scratch)")
    p.add_argument("--train-data", required=True, help="training data dir")
    p.add_argument("--valid-data", help="validation data dir")
    p.add_argument("--token-dir", required=True, help="tokenizer dir (speechkd-make-tokens output)")
    p.add_argument("--exp", required=True, help="experiment dir")
    return p


def _main(argv=None):
    args = parse_args(get_parser(), argv)
    from ..distill.l2s_train import L2S_FINETUNE_DEFAULTS, finetune_l2s

    cfg = load_config(args.config, args.overrides, defaults=L2S_FINETUNE_DEFAULTS)
    out = finetune_l2s(cfg, args.train_data, args.valid_data, args.exp, token_dir=args.token_dir, init=args.init)
    print(out)
    return 0


def main(argv=None):
    sys.exit(run_main(_main, argv))


if __name__ == "__main__":
    main()
