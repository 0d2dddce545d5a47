"""PAD: prior-informed adaptive distillation of a frozen text model into a speech SSL model (and the
metric-based baselines, which are configs of the same code).

Usage::

    # PAD: utterance + word + sub-word + phone alignment, priors, uncertainty-weighted combination
    speechkd-pad-distill --config conf/pad.yaml --train-data data/train --valid-data data/dev \\
        --init exp/teacher/model --text-model exp/text_lm --exp exp/distill/pad/seed1 --train.seed 1

    # baseline: utterance-level cosine distillation (any key of the config can be overridden)
    speechkd-pad-distill --config conf/pad.yaml --train-data data/train --init exp/teacher/model \\
        --text-model exp/text_lm --exp exp/distill/cosine/seed1 --pad.granularities utterance \\
        --pad.metric cosine --pad.combine fixed

The training data dir needs ``feats.scp``, ``utt2num_frames``, ``text`` and (for the local
granularities) ``words.ctm``/``phones.ctm``. Writes ``<exp>/model/`` (a plain SSL checkpoint: neither
model's structure changes), ``checkpoints/``, ``train.log``, ``tensorboard/``, ``valid.json``.
See :mod:`speechkd.distill.pad_train` (units, priors) and :mod:`speechkd.distill.pad` (losses).
"""
from __future__ import annotations

import argparse
import sys

from ..utils.cli import parse_args, run_main
from ..utils.config import load_config


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="YAML config (sections pad, prior, units, model, data, optim, train)")
    p.add_argument("--train-data", required=True, help="paired data dir (feats.scp, text, words.ctm, phones.ctm)")
    p.add_argument("--valid-data", help="validation data dir (same files)")
    p.add_argument("--init", required=True, help="speech SSL checkpoint dir (e.g. exp/teacher/model)")
    p.add_argument("--text-model", required=True, help="Hugging Face text encoder dir (frozen)")
    p.add_argument("--exp", required=True, help="experiment dir")
    return p


def _main(argv=None):
    args = parse_args(get_parser(), argv)
    from ..distill.pad_train import PAD_DEFAULTS, distill_pad

    cfg = load_config(args.config, args.overrides, defaults=PAD_DEFAULTS)
    print(distill_pad(cfg, args.train_data, args.init, args.text_model, args.exp, args.valid_data))
    return 0


def main(argv=None):
    sys.exit(run_main(_main, argv))


if __name__ == "__main__":
    main()
