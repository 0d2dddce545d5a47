"""Train the mini text teacher: a tiny multilingual masked LM (XLM-R architecture, own sentencepiece
vocabulary) on transcripts, saved in Hugging Face format (loadable by ``TextEncoder`` / ``AutoModel``).

Usage::

    # all languages' training transcripts of the mini corpus → exp/text_lm (config.json, weights, tokenizer)
    speechkd-train-text-model --config conf/text_lm.yaml --text data/train/text --out exp/text_lm

    # overrides of any config key
    speechkd-train-text-model --config conf/text_lm.yaml --text data/train/text --text data/dev/text \\
        --out exp/text_lm --text_lm.steps 100 --text_lm.d_model 64

    # plain text, one sentence a line (e.g. the zoo's text pool, speechkd-make-text-pool)
    speechkd-train-text-model --config conf/text_lm.yaml --lines data/text_pool/text --out exp/zoo/text_ml

    # a control teacher: text_ml's architecture and tokenizer, random weights (no training)
    speechkd-train-text-model --random-like exp/zoo/text_ml --out exp/text_rand --seed 0

Config (``text_lm:`` section, arguments of :func:`speechkd.models.text.train_mini_mlm`): vocab_size,
n_layers, d_model, n_heads, ffn_dim, steps, batch_size, lr, max_length, mask_prob, seed, precision
(auto|fp32|bf16; auto = bf16 autocast on a CPU with bf16 units, loss in fp32). Writes ``<out>/``
atomically (temp dir + rename) and ``<out>/train_log.json`` (MLM loss per step, params, train seconds).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from ..utils.cli import parse_args, run_main
from ..utils.config import load_config, save_config
from ..utils.errors import ConfigError
from ..utils.fileio import atomic_write_text

log = logging.getLogger("speechkd")

DEFAULTS = {"text_lm": {"vocab_size": 500, "n_layers": 2, "d_model": 128, "n_heads": 2, "ffn_dim": 512,
                        "steps": 300, "batch_size": 32, "lr": 1.0e-3, "max_length": 64, "mask_prob": 0.15,
                        "seed": 0, "precision": "auto"}}


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="YAML config with a text_lm section")
    p.add_argument("--text", action="append", default=[], help="Kaldi text file (utt words...); repeatable")
    p.add_argument("--lines", action="append", default=[],
                   help="plain text file, one text a line; repeatable (with or instead of --text)")
    p.add_argument("--out", required=True, help="output HF model directory")
    p.add_argument("--random-like", metavar="DIR",
                   help="no training: DIR's architecture and tokenizer with random weights (a control teacher)")
    p.add_argument("--seed", type=int, default=0, help="with --random-like: the initialisation seed")
    p.add_argument("--no-progress", action="store_true")
    return p


def _main(argv=None):
    args = parse_args(get_parser(), argv)
    if args.random_like:
        from ..models.text import random_text_model_like

        if args.text or args.lines or args.config:
            raise ConfigError("--random-like trains nothing: give no --config, --text or --lines with it")
        out = random_text_model_like(args.random_like, args.out, seed=args.seed)
        print(f"{out}: {args.random_like}'s architecture and tokenizer, random weights (seed {args.seed})")
        return 0
    from ..models.text import read_text_file, train_mini_mlm

    cfg = load_config(args.config, args.overrides, defaults=DEFAULTS)
    if not args.text and not args.lines:
        raise ConfigError("give at least one --text or --lines file")
    texts = [t for path in args.text for t in read_text_file(path)]
    for path in args.lines:
        if not Path(path).is_file():
            raise ConfigError(f"--lines {path}: no such file")
        with open(path, encoding="utf-8") as f:
            texts += [line.strip() for line in f if line.strip()]
    log.info("training the mini text teacher on %d texts from %s", len(texts), ", ".join(args.text + args.lines))
    result = train_mini_mlm(texts, args.out, progress=not args.no_progress, **cfg["text_lm"])
    out = Path(args.out)
    save_config(cfg, out / "train_config.yaml")
    losses = result["losses"]
    atomic_write_text(out / "train_log.json", json.dumps(
        {"num_params": result["num_params"], "num_texts": len(texts), "train_seconds": result["train_seconds"],
         "precision": result["precision"], "losses": losses}) + "\n")
    tail = losses[-10:]
    print(f"{out}: {result['num_params']} params, MLM loss {losses[0]:.3f} -> {sum(tail) / len(tail):.3f}")
    return 0


def main(argv=None):
    sys.exit(run_main(_main, argv))


if __name__ == "__main__":
    main()
