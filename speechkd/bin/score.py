"""Score a decode directory: ESPnet-style table + sclite-style alignments (result.txt, score.json).

Usage::

    # word and character error rates, per language when data/test/utt2lang exists
    speechkd-score --data data/test --decode exp/ft/decode_test

    # phone error rate against the data dir's phones file
    speechkd-score --data data/test --ref-file phones --units phone --decode exp/phone_ctc/decode_test

    # explicit files, token (SentencePiece piece) error rate too
    speechkd-score --ref data/test/text --hyp exp/ft/decode_test/text --out exp/ft/decode_test \\
        --units word,char,token --tokenizer exp/ft/tokenizer
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from speechkd.asr.scoring import UNITS, score_files
from speechkd.utils.cli import parse_args, run_main
from speechkd.utils.errors import ConfigError


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help="data dir holding the reference (and utt2lang)")
    p.add_argument("--ref-file", default="text", help="reference file name inside --data (text or phones)")
    p.add_argument("--ref", help="reference file (instead of --data)")
    p.add_argument("--decode", help="decode dir holding the hypothesis 'text' (also the output dir)")
    p.add_argument("--hyp", help="hypothesis file (instead of --decode)")
    p.add_argument("--out", help="output dir (default: the hypothesis' dir)")
    p.add_argument("--units", default=None,
                   help=f"comma-separated units from {','.join(UNITS)} (default word,char; phone for phones)")
    p.add_argument("--utt2lang", help="per-language scores (default: <data>/utt2lang if present)")
    p.add_argument("--tokenizer", help="tokenizer dir for --units token")
    p.add_argument("--name", help="dataset name in the table (default: the decode dir's name)")
    p.add_argument("--only-hyp-utts", action="store_true", help="score only utterances with a hypothesis")
    return p


def _main(argv=None):
    args = parse_args(get_parser(), argv, allow_overrides=False)
    if (args.data is None) == (args.ref is None):
        raise ConfigError("give exactly one of --data and --ref")
    if (args.decode is None) == (args.hyp is None):
        raise ConfigError("give exactly one of --decode and --hyp")
    ref = Path(args.ref) if args.ref else Path(args.data) / args.ref_file
    hyp = Path(args.hyp) if args.hyp else Path(args.decode) / "text"
    utt2lang = args.utt2lang
    if utt2lang is None and args.data and (Path(args.data) / "utt2lang").exists():
        utt2lang = Path(args.data) / "utt2lang"
    units = args.units.split(",") if args.units else (["phone"] if ref.name == "phones" else ["word", "char"])
    tokenizer = None
    if "token" in units:
        if not args.tokenizer:
            raise ConfigError("--units token needs --tokenizer")
        from speechkd.asr.tokenizer import load_tokenizer

        tokenizer = load_tokenizer(args.tokenizer)
    res = score_files(ref, hyp, args.out or hyp.parent, units=units, utt2lang=utt2lang, tokenizer=tokenizer,
                      name=args.name, only_hyp_utts=args.only_hyp_utts)
    for unit, st in res["units"].items():
        print(f"{res['name']} {unit}: Err {st['Err']:.2f}% ({st['Snt']} utts, {st['Wrd']} units)")


def main(argv=None):
    sys.exit(run_main(_main, argv))


if __name__ == "__main__":
    main()
