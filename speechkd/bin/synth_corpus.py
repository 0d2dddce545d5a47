"""Synthesise the multilingual ``mini_espeak`` corpus with espeak-ng (wav + Kaldi data dirs + CTMs).

Usage::

    speechkd-synth-corpus --config egs/mini_espeak/conf/corpus_smoke.yaml --out data/mini_smoke --nj 2
    speechkd-synth-corpus --config egs/mini_espeak/conf/corpus_default.yaml --out data/mini --nj 2 \\
        --seed 1 --corpus.languages '[en, de, ru]' --corpus.sizes.en.train 500

Writes ``<out>/wav/``, ``<out>/data/{train,dev,test}`` (wav.scp text utt2spk spk2utt utt2lang utt2dur
phones phones.ctm words.ctm) and ``<out>/corpus.yaml``. Any config key can be overridden as
``--corpus.<key> value``. ``--per-lang`` also writes ``data/<split>_<lang>`` subsets. ``--splits test``
makes only the test split (the same utterances a full build makes: e.g. a corpus's test sentences spoken by
other voices, with a config that differs only in ``variants.test``).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..utils.cli import parse_args, run_main
from ..utils.config import load_config


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="corpus YAML (egs/mini_espeak/conf/corpus_*.yaml)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--nj", type=int, default=1, help="synthesis processes")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--per-lang", action="store_true", help="also write data/<split>_<lang> subsets")
    p.add_argument("--splits", default="train,dev,test",
                   help="comma-separated splits to synthesise (default: all; e.g. test)")
    return p


def _main(argv=None) -> int:
    from ..corpus.mini_espeak import DEFAULTS, build_corpus
    from ..data.datadir import DataDir, subset_datadir

    args = parse_args(get_parser(), argv)
    cfg = load_config(args.config, args.overrides, defaults=DEFAULTS)
    splits = [x for x in args.splits.replace(" ", ",").split(",") if x]
    info = build_corpus(args.out, cfg, seed=args.seed, nj=args.nj, splits=splits)
    if args.per_lang:
        for split in info["splits"]:   # the splits made
            src = Path(args.out) / "data" / split
            utt2lang = DataDir(src).read("utt2lang")
            for lang in info["languages"]:
                subset_datadir(src, Path(args.out) / "data" / f"{split}_{lang}",
                               [u for u, l in utt2lang.items() if l == lang])
    print(f"{info['total_utts']} utterances, {info['total_hours']:.3f} h, "
          f"{info['synthesis_utts_per_s']} utts/s -> {args.out}")
    return 0


def main(argv=None):
    sys.exit(run_main(_main, argv))


if __name__ == "__main__":
    main()
