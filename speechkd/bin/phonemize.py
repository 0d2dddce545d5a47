"""Phonemize a data dir's ``text`` with phonemizer's espeak backend (per ``utt2lang``) into ``phones``.

Usage::

    speechkd-phonemize data/mini/data/train
    speechkd-phonemize data/cv/train --lang de --out-name phones_g2p --compare phones

IPA phones separated by spaces, stress marks dropped, in the mini_espeak corpus' symbol inventory.
``--compare NAME`` prints the agreement with another phones file of the same dir (e.g. the corpus'
synthesis phones when writing to another name).
"""
from __future__ import annotations

import argparse
import sys

from ..utils.cli import parse_args, run_main


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data_dir", help="Kaldi data dir with text (+ utt2lang)")
    p.add_argument("--lang", default=None, help="language for all utts when there is no utt2lang")
    p.add_argument("--out-name", default="phones", help="output file name inside the data dir")
    p.add_argument("--compare", default=None, help="phones file (in the data dir) to report agreement with")
    return p


def _main(argv=None) -> int:
    from ..corpus.phonemize import phone_agreement, phonemize_datadir
    from ..data.datadir import DataDir

    args = parse_args(get_parser(), argv, allow_overrides=False)
    d = DataDir(args.data_dir)
    ref = d.read(args.compare) if args.compare else None
    hyp = phonemize_datadir(args.data_dir, out_name=args.out_name, default_lang=args.lang)
    print(f"{len(hyp)} utterances -> {d.file(args.out_name)}")
    if ref is not None:
        a = phone_agreement(ref, hyp)
        print(f"agreement with {args.compare}: {a['identical']:.1%} identical utts, PER {a['per']:.2%} "
              f"over {a['utts']} utts")
    return 0


def main(argv=None):
    sys.exit(run_main(_main, argv))


if __name__ == "__main__":
    main()
