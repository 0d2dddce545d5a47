"""Held-out masked-LM loss / perplexity / NLL per character of a Hugging Face text model, as one JSON line.

Usage::

    speechkd-eval-text-model --model exp/zoo/text_ml --text data/test/text            # Kaldi text
    speechkd-eval-text-model --model exp/zoo/text_ml --lines held_out.txt --seed 0 --rounds 5 --out eval.json

Same ``--seed`` and texts → the same masked positions for models with the same tokenizer; with different
vocabularies compare ``nll_per_char`` (see :mod:`speechkd.models.text_eval`).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..utils.cli import parse_args, run_main
from ..utils.errors import ConfigError
from ..utils.fileio import atomic_write_text


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="HF model directory (masked LM)")
    p.add_argument("--text", action="append", default=[], help="Kaldi text file (utt words...); repeatable")
    p.add_argument("--lines", action="append", default=[], help="plain text file, one text a line; repeatable")
    p.add_argument("--seed", type=int, default=0, help="masking seed")
    p.add_argument("--rounds", type=int, default=5, help="masking passes over the texts")
    p.add_argument("--mask-prob", type=float, default=0.15)
    p.add_argument("--out", help="also write the JSON here")
    return p


def _main(argv=None):
    args = parse_args(get_parser(), argv, allow_overrides=False)
    from ..models.text import read_text_file          # torch/transformers only after argument parsing
    from ..models.text_eval import evaluate_mlm

    if not args.text and not args.lines:
        raise ConfigError("give at least one --text or --lines file")
    texts = [t for path in args.text for t in read_text_file(path)]
    for path in args.lines:
        if not Path(path).is_file():
            raise ConfigError(f"--lines {path}: no such file")
        texts += [line.strip() for line in open(path, encoding="utf-8") if line.strip()]
    result = {"model": args.model, **evaluate_mlm(args.model, texts, args.mask_prob, args.seed, args.rounds)}
    line = json.dumps(result)
    if args.out:
        atomic_write_text(args.out, line + "\n")
    print(line)
    return 0


def main(argv=None):
    sys.exit(run_main(_main, argv))


if __name__ == "__main__":
    main()
