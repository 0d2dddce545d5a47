"""Synthesise the ``mini_slu`` spoken-command corpus with espeak-ng (wav + Kaldi data dirs with
``utt2intent`` + phone/word CTMs).

Usage::

    speechkd-synth-slu --config egs/mini_espeak/pad/conf/slu_smoke.yaml --out data/slu_smoke --nj 2
    speechkd-synth-slu --config egs/mini_espeak/pad/conf/slu.yaml --out data/slu --nj 2 --seed 1 \\
        --corpus.sizes.train 2000 --corpus.heldout_templates 2

Writes ``<out>/wav/``, ``<out>/data/{train,dev,test}`` (wav.scp text utt2spk spk2utt utt2lang utt2dur
utt2intent phones phones.ctm words.ctm) and ``<out>/corpus.yaml``. Any config key can be overridden as
``--corpus.<key> value``. See :mod:`speechkd.corpus.mini_slu` for templates, intents and splits.
"""
from __future__ import annotations

import argparse
import sys

from ..utils.cli import parse_args, run_main
from ..utils.config import load_config


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=None, help="corpus YAML (default: the built-in SLU_DEFAULTS)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--nj", type=int, default=1, help="synthesis processes")
    p.add_argument("--seed", type=int, default=1)
    return p


def _main(argv=None) -> int:
    from ..corpus.mini_slu import SLU_DEFAULTS, build_slu_corpus

    args = parse_args(get_parser(), argv)
    cfg = load_config(args.config, args.overrides, defaults=SLU_DEFAULTS)
    info = build_slu_corpus(args.out, cfg, seed=args.seed, nj=args.nj)
    sizes = ", ".join(f"{s} {v['utts']} ({v['speakers']} spk)" for s, v in info["splits"].items())
    print(f"{info['total_utts']} utterances, {len(info['intents'])} intents: {sizes} -> {args.out}")
    return 0


def main(argv=None):
    sys.exit(run_main(_main, argv))


if __name__ == "__main__":
    main()
