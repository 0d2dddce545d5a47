"""Intent classification on a speech SSL model: fine-tune an intent head (+ encoder) on a small labelled
set, evaluate accuracy on test sets, or pick the labelled subset.

Usage::

    # labelled subset: 3 utterances per intent of data/train (drawn with seed 1) -> data/train_sub3_seed1
    speechkd-train-intent subset --data data/train --out data/train_sub3_seed1 --per-intent 3 --seed 1

    # fine-tune from a (distilled) SSL checkpoint, then score the unseen-speaker test set
    speechkd-train-intent train --config conf/intent.yaml --train-data data/train_sub3_seed1 \\
        --valid-data data/dev --init exp/distill/pad/seed1/model --exp exp/intent/pad/seed1 --train.seed 1 \\
        --eval-data data/test                     # also scores data/test -> exp/intent/pad/seed1/decode_test
    speechkd-train-intent eval --model exp/intent/pad/seed1/model --data data/test \\
        --out exp/intent/pad/seed1/decode_test

Data dirs need ``feats.scp`` and ``utt2intent``. ``eval`` writes ``hyp``, ``ref``, ``accuracy.json`` and
``score.json`` (unit ``intent``: ``Corr`` = accuracy) and prints the accuracy (%).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..utils.cli import parse_args, run_main
from ..utils.config import load_config


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="fine-tune an intent classifier")
    t.add_argument("--config", help="YAML config (sections model, finetune, data, optim, train)")
    t.add_argument("--train-data", required=True)
    t.add_argument("--valid-data")
    t.add_argument("--init", required=True, help="SSL (or intent) checkpoint dir")
    t.add_argument("--exp", required=True)
    t.add_argument("--intents", help="file with the intent label list (one per line; default: from the data)")
    t.add_argument("--eval-data", nargs="*", default=[],
                   help="data dirs to score after training (-> <exp>/decode_<dir name>, as 'eval' does)")
    e = sub.add_parser("eval", help="predict and score a data dir")
    e.add_argument("--model", required=True, help="intent checkpoint dir (<exp>/model)")
    e.add_argument("--data", required=True)
    e.add_argument("--out", required=True)
    s = sub.add_parser("subset", help="N labelled utterances per intent")
    s.add_argument("--data", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--per-intent", type=int, required=True)
    s.add_argument("--seed", type=int, default=1)
    return p


def _main(argv=None):
    args = parse_args(get_parser(), argv)
    from ..train import intent

    if args.cmd == "train":
        cfg = load_config(args.config, args.overrides, defaults=intent.INTENT_DEFAULTS)
        intents = None
        if args.intents:
            with open(args.intents, encoding="utf-8") as f:
                intents = [line.strip() for line in f if line.strip()]
        model_dir = intent.finetune_intent(cfg, args.train_data, args.init, args.exp, args.valid_data, intents)
        for d in args.eval_data:
            res = intent.evaluate_intent(model_dir, d, Path(args.exp) / f"decode_{Path(d).name}")
            print(f"{d}: {res['accuracy']:.2f}")
    elif args.cmd == "eval":
        res = intent.evaluate_intent(args.model, args.data, args.out)
        print(f"{res['accuracy']:.2f}")
    else:
        from ..data.datadir import subset_datadir

        utts = intent.select_labelled(args.data, args.per_intent, args.seed)
        subset_datadir(args.data, args.out, utts)
        print(f"{len(utts)} utterances -> {args.out}")
    return 0


def main(argv=None):
    sys.exit(run_main(_main, argv))


if __name__ == "__main__":
    main()
