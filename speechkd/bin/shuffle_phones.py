"""Phone shuffling for DistilXLSR: cut audio at CTM phone boundaries, shuffle, cross-fade, write a data dir.

Usage::

    # shuffle within each utterance, 5 ms raised-cosine cross-fades
    speechkd-shuffle-phones --data data/train_en --ctm exp/align/phones.ctm \\
        --out data/train_en_shuf --wav-dir dump/shuf --seed 1

    # pool and shuffle the phones of all utterances of a speaker
    speechkd-shuffle-phones --data data/train_en --ctm exp/align/phones.ctm \\
        --out data/train_en_shuf_spk --wav-dir dump/shuf_spk --seed 1 --across-utts

The output data dir's ``text`` and ``phones`` hold the shuffled phone sequence; ``phones.ctm`` the new
phone times. The same seed gives the same audio, whatever the order of processing.
"""
from __future__ import annotations

import argparse
import logging
import sys

from speechkd.align.shuffle import shuffle_datadir
from speechkd.utils.cli import parse_args, run_main

log = logging.getLogger("speechkd")


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="source data dir")
    p.add_argument("--ctm", required=True, help="phone CTM of the source data (e.g. from speechkd-align)")
    p.add_argument("--out", required=True, help="output data dir")
    p.add_argument("--wav-dir", required=True, help="where the shuffled wavs go")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--across-utts", action="store_true", help="shuffle pieces across a speaker's utterances")
    p.add_argument("--crossfade-ms", type=float, default=5.0, help="raised-cosine cross-fade (0: none)")
    p.add_argument("--sample-rate", type=int, default=16000)
    return p


def _main(argv=None):
    args = parse_args(get_parser(), argv, allow_overrides=False)
    res = shuffle_datadir(args.data, args.ctm, args.out, args.wav_dir, seed=args.seed,
                          across_utts=args.across_utts, crossfade_ms=args.crossfade_ms,
                          sample_rate=args.sample_rate)
    log.info("wrote %d shuffled utterances to %s (%d dropped without alignment)", res["utts"], args.out,
             res["dropped"])


def main(argv=None):
    sys.exit(run_main(_main, argv))


if __name__ == "__main__":
    main()
