"""Put a trained teacher into the zoo with its model card (README.md, card.json, masked-accuracy curve).

Usage (egs/mini_espeak/ssl stage 8, then again in stage 12 with the fine-tuning check):

    speechkd-zoo-card --name ssl_ml --model exp/iter2/model --out exp/zoo/ssl_ml \
        --train-log "iteration 1=exp/iter1/train.log" --train-log "iteration 2=exp/iter2/train.log" \
        --targets "iteration 1=exp/targets/iter1/stats.json" --targets "iteration 2=exp/targets/iter2/stats.json" \
        --corpus data/pool_corpus/corpus.yaml --summary "multilingual HuBERT, stands in for XLSR-53"
    speechkd-zoo-card ... --check "teacher=exp/check/ft_teacher/seed*/decode_test/score.json" \
        --check "scratch=exp/check/ft_scratch/seed*/decode_test/score.json" --no-copy

Copies the checkpoint files into ``--out`` (atomically; ``--no-copy`` only rewrites the card).
"""
from __future__ import annotations

import argparse
import sys

from ..utils.cli import parse_args, run_main


def _pairs(items, what):
    from ..utils.errors import ConfigError

    out = {}
    for it in items or []:
        k, sep, v = it.partition("=")
        if not sep:
            raise ConfigError(f"--{what} takes NAME=PATH, got '{it}'")
        out[k] = v
    return out


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--name", required=True)
    p.add_argument("--model", required=True, help="checkpoint dir to publish")
    p.add_argument("--out", required=True, help="zoo entry dir")
    p.add_argument("--summary", default="", help="one-paragraph description")
    p.add_argument("--train-log", action="append", metavar="ITER=LOG", help="trainer log per iteration")
    p.add_argument("--targets", action="append", metavar="ITER=STATS", help="stats.json of the targets")
    p.add_argument("--corpus", help="corpus.yaml of the pretraining data")
    p.add_argument("--check", action="append", metavar="INIT=GLOB", help="score.json files of the check")
    p.add_argument("--unit", default="phone", help="unit of the check's score.json")
    p.add_argument("--no-copy", action="store_true", help="only rewrite the card")
    return p


def _main(argv=None):
    import glob
    import json
    from pathlib import Path

    from ..asr.results import summarize
    from ..models.zoo import copy_checkpoint, read_train_log, write_card
    from ..utils.config import load_yaml
    from ..utils.errors import ConfigError

    args = parse_args(get_parser(), argv, allow_overrides=False)
    out = Path(args.out)
    # read every input first: a missing log or stats file must not leave a zoo entry without its card
    log_files, target_files = _pairs(args.train_log, "train-log"), _pairs(args.targets, "targets")
    for kind, pairs in (("train-log", log_files), ("targets", target_files)):
        for name, f in pairs.items():
            if not Path(f).is_file():
                raise ConfigError(f"--{kind} {name}={f}: no such file")
    logs = {k: read_train_log(v) for k, v in log_files.items()}
    targets = {k: json.loads(Path(v).read_text()) for k, v in target_files.items()}
    if not args.no_copy:
        copy_checkpoint(args.model, out)
    config = load_yaml(out / "config.yaml")
    try:
        import torch

        state = torch.load(out / "model.pt", map_location="cpu", weights_only=True)
        config["params"] = int(sum(v.numel() for k, v in state.items() if not k.startswith("head.")))
    except FileNotFoundError:
        pass
    data = {}
    if args.corpus:
        c = load_yaml(args.corpus)
        tr = (c.get("splits") or {}).get("train", {})
        data = {"corpus": c.get("name"), "languages": " ".join(c.get("languages") or []),
                "train hours": tr.get("hours"), "train utterances": tr.get("utts"),
                "train speakers": tr.get("speakers"), "seed": c.get("seed")}
    check = {}
    for init, pattern in _pairs(args.check, "check").items():
        vals = []
        for f in sorted(glob.glob(pattern)):
            vals.append(float(json.loads(Path(f).read_text())["units"][args.unit]["Err"]))
        if vals:
            m, s, n = summarize(vals)
            check[f"{init} {args.unit} error (%)"] = f"{m:.1f} ± {s:.1f} (n={n})"
    write_card(out, args.name, args.summary, config, logs, targets, data, check)
    print(out)
    return 0


def main(argv=None):
    sys.exit(run_main(_main, argv))


if __name__ == "__main__":
    main()
