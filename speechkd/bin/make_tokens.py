"""Build a tokenizer (units.txt + tokenizer.yaml [+ sp.model]) from transcripts.

Usage::

    # IPA phones of the training set (space-separated units)
    speechkd-make-tokens --kind phone --text data/train/phones --out data/token_phone

    # characters of several languages' transcripts, space as "<space>"
    speechkd-make-tokens --kind char --text data/train_de/text --text data/train_pl/text --out data/token_char

    # SentencePiece unigram with ~100 units (hard_vocab_limit=False on tiny data)
    speechkd-make-tokens --kind unigram --vocab-size 100 --text data/train/text --out data/token_unigram100

``--text`` files are Kaldi ``utt transcript`` files; their transcripts are the training text.
"""
from __future__ import annotations

import argparse
import logging
import sys

from speechkd.asr.tokenizer import build_tokenizer
from speechkd.data.datadir import read_kv
from speechkd.utils.cli import parse_args, run_main

log = logging.getLogger("speechkd")


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kind", required=True, choices=["char", "phone", "sentencepiece", "unigram", "bpe"])
    p.add_argument("--text", required=True, action="append", help="Kaldi text/phones file (repeatable)")
    p.add_argument("--out", required=True, help="output tokenizer directory")
    p.add_argument("--vocab-size", type=int, default=100, help="sentencepiece vocabulary size (incl. blank)")
    p.add_argument("--space-symbol", default="<space>", help="char tokenizer: unit for the space ('▁' or '<space>')")
    p.add_argument("--min-count", type=int, default=1, help="char/phone: drop units seen fewer times")
    p.add_argument("--character-coverage", type=float, default=1.0)
    return p


def _main(argv=None):
    args = parse_args(get_parser(), argv, allow_overrides=False)
    texts = [t for path in args.text for t in read_kv(path).values()]
    opts = {}
    if args.kind == "char":
        opts.update(space_symbol=args.space_symbol, min_count=args.min_count)
    elif args.kind == "phone":
        opts.update(min_count=args.min_count)
    else:
        opts.update(vocab_size=args.vocab_size, character_coverage=args.character_coverage)
    tok = build_tokenizer(args.kind, texts, args.out, **opts)
    log.info("%s tokenizer with %d units (blank=0, unk=1) from %d transcripts -> %s",
             tok.kind, tok.vocab_size, len(texts), args.out)


def main(argv=None):
    sys.exit(run_main(_main, argv))


if __name__ == "__main__":
    main()
