"""Make the text-only pool of the zoo's text teacher: one file per language + a combined ``text`` file, one
ASR-normalised sentence a line, from text installed on the machine (remaining fortunes, man pages, gettext
catalogues), never a sentence a mini recipe transcribes (see :mod:`speechkd.corpus.text_pool`).

Usage::

    speechkd-make-text-pool --out data/text_pool                       # en de es it ru pl ga, all sources
    speechkd-make-text-pool --out data/text_pool --langs de ga --sources man gettext \\
        --exclude data/train/text --exclude data/test/text --fortune-seeds 1 2 3

    # the transcripts a mini corpus would have (no audio), one normalised sentence a line: <out>/train, <out>/test
    speechkd-make-text-pool --plan-corpus ../conf/corpus_default.yaml --plan-seed 1 --out data/transcripts

Writes ``<out>/<lang>``, ``<out>/text`` and ``<out>/stats.json`` (sentences and words per language and
source) atomically, and prints the per-language sizes. A missing Debian package is reported with the
``apt-get install`` command (``tools/setup.sh`` installs them).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys

from ..corpus.text_pool import SOURCES, build_text_pool, write_plan_transcripts
from ..utils.cli import parse_args, run_main

log = logging.getLogger("speechkd")

LANGS = ["en", "de", "es", "it", "ru", "pl", "ga"]


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--langs", nargs="+", default=LANGS, help="languages (default: %(default)s)")
    p.add_argument("--sources", nargs="+", default=list(SOURCES), choices=SOURCES)
    p.add_argument("--exclude", action="append", default=[],
                   help="plain or Kaldi text file whose lines must not be in the pool; repeatable")
    p.add_argument("--fortune-skip", type=int, default=1500,
                   help="leave out the first N shuffled fortunes per language and seed (default 1500)")
    p.add_argument("--fortune-seeds", type=int, nargs="+", default=[1], help="corpus seeds (default 1)")
    p.add_argument("--min-words", type=int, default=3)
    p.add_argument("--max-words", type=int, default=40)
    p.add_argument("--plan-corpus", help="instead of the pool: write the transcripts of this mini corpus config")
    p.add_argument("--plan-seed", type=int, default=1)
    p.add_argument("--plan-splits", nargs="+", default=["train", "test"])
    return p


def _main(argv=None):
    args = parse_args(get_parser(), argv, allow_overrides=False)
    if args.plan_corpus:
        print(json.dumps(write_plan_transcripts(args.plan_corpus, args.out, args.plan_seed, args.plan_splits)))
        return 0
    stats = build_text_pool(args.out, args.langs, args.sources, args.exclude, args.fortune_skip,
                            args.fortune_seeds, args.min_words, args.max_words)
    print(json.dumps({k: {"sentences": v["sentences"], "words": v["words"]}
                      for k, v in stats.items() if isinstance(v, dict)}))
    return 0


def main(argv=None):
    sys.exit(run_main(_main, argv))


if __name__ == "__main__":
    main()
