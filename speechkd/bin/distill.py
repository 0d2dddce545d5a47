"""Distil a speech SSL teacher into a smaller student (regression L1 + cos on teacher layers, optional
discriminative KL over the teacher's HuBERT codebook, optional Fbank front-end stage).

Usage:

    # 2-layer student at the teacher's width, layers initialised by layer-jumping, L1 + cos
    speechkd-distill --config conf/distill.yaml --teacher exp/teacher/model --train-data data/train \
        --valid-data data/dev --exp exp/student

    # deep & thin preset, first teacher layers, + discriminative loss (HuBERT-KD)
    speechkd-distill --config conf/distill.yaml --teacher exp/teacher/model --train-data data/train \
        --valid-data data/dev --exp exp/student_dt --student.preset deep_thin --student.init first \
        --loss.w_disc 1.0

    # Fbank front-end: stage A (front-end only, L1 to the teacher CNN+projection), then stage B
    speechkd-distill --config conf/distill.yaml --teacher exp/teacher/model --train-data data/train \
        --exp exp/student_fb_fe --student.frontend fbank --distill.stage frontend --data.cmvn dump/fbank/train/cmvn.npz
    speechkd-distill --config conf/distill.yaml --teacher exp/teacher/model --train-data data/train \
        --valid-data data/dev --exp exp/student_fb --student.frontend fbank \
        --student.init_from exp/student_fb_fe/model --student.freeze_frontend true

Writes ``<exp>/model/`` (student SSL checkpoint without heads; ``cmvn.npz`` for a Fbank student),
``model_best/``, ``checkpoints/step_N/`` (heads kept in ``train_state.pt``), ``train.log`` (per-layer
``l1/<k>``, ``cos/<k>``, ``kl``) and ``tensorboard/``. Re-running the same command resumes.
"""
from __future__ import annotations

import argparse
import sys

from ..utils.cli import parse_args, run_main
from ..utils.config import load_config


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="YAML config (sections student, distill, loss, spec_augment, data, optim, train)")
    p.add_argument("--teacher", required=True, help="teacher SSL checkpoint dir (config.yaml + model.pt)")
    p.add_argument("--train-data", required=True, help="training data dir (wav.scp and/or feats.scp)")
    p.add_argument("--valid-data", help="validation data dir")
    p.add_argument("--exp", required=True, help="experiment dir")
    return p


def _main(argv=None):
    args = parse_args(get_parser(), argv)
    from ..distill.train import DISTILL_DEFAULTS, distill

    cfg = load_config(args.config, args.overrides, defaults=DISTILL_DEFAULTS)
    print(distill(cfg, args.teacher, args.train_data, args.valid_data, args.exp))
    return 0


def main(argv=None):
    sys.exit(run_main(_main, argv))


if __name__ == "__main__":
    main()
