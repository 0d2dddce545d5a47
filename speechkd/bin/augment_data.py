"""Augment a data dir: speed perturbation, additive noise (white/pink/babble) and synthetic reverberation.

Usage:

    speechkd-augment-data --data data/train --out data/train_aug --wav-dir dump/aug \
        --speed 0.9,1.0,1.1 --noise-snr 5,20 --reverb-prob 0.3 --seed 1 --nj 2

    # (if the console script is not installed:  python -m speechkd.bin.augment_data ...)

Each speed factor gives a copy of every utterance (``sp0.9-`` prefixes on utterances and speakers, none
for 1.0); each copy is reverberated with probability ``--reverb-prob`` (RT60 uniform in ``--rt60``) and
gets noise with probability ``--noise-prob`` at an SNR uniform in ``--noise-snr`` (no noise without
``--noise-snr``). Wavs go to ``--wav-dir``; ``--out`` is a complete data dir with ``utt2dur``, ``utt2aug``
(what was applied) and speed-scaled ``phones.ctm``/``words.ctm``. Deterministic for a given ``--seed``
whatever ``--nj``.
"""
from __future__ import annotations

import argparse
import sys

from ..utils.cli import parse_args, run_main
from ..utils.errors import ConfigError


def _floats(text: str, n=None, what="value"):
    try:
        vals = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"{what}: expected comma-separated numbers, got '{text}'") from None
    if n is not None and len(vals) != n:
        raise ConfigError(f"{what}: expected {n} numbers, got '{text}'")
    return vals


def get_parser() -> argparse.ArgumentParser:
    from ..data.augment import NOISE_TYPES  # numpy, no torch

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="source data dir")
    p.add_argument("--out", required=True, help="output data dir")
    p.add_argument("--wav-dir", required=True, help="where the augmented wavs are written")
    p.add_argument("--speed", default="1.0", help="comma-separated speed factors, e.g. 0.9,1.0,1.1")
    p.add_argument("--noise-snr", default=None, help="SNR range in dB 'low,high' (enables noise)")
    p.add_argument("--noise-prob", type=float, default=0.5, help="probability a copy gets noise")
    p.add_argument("--noise-types", default=",".join(NOISE_TYPES), help="subset of white,pink,babble")
    p.add_argument("--reverb-prob", type=float, default=0.0, help="probability a copy is reverberated")
    p.add_argument("--rt60", default="0.2,0.8", help="RT60 range in seconds 'low,high'")
    p.add_argument("--sample-rate", type=int, default=16000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--nj", type=int, default=1, help="parallel worker processes")
    p.add_argument("--no-progress", action="store_true")
    return p


def _main(argv=None):
    args = parse_args(get_parser(), argv, allow_overrides=False)
    from ..data.augment import augment_datadir

    augment_datadir(
        args.data, args.out, args.wav_dir, speeds=_floats(args.speed, what="--speed"),
        noise_snr=None if args.noise_snr is None else _floats(args.noise_snr, 2, "--noise-snr"),
        noise_prob=args.noise_prob, noise_types=[t for t in args.noise_types.split(",") if t],
        reverb_prob=args.reverb_prob, rt60=_floats(args.rt60, 2, "--rt60"), sample_rate=args.sample_rate,
        seed=args.seed, nj=args.nj, progress=not args.no_progress)
    return 0


def main(argv=None):
    sys.exit(run_main(_main, argv))


if __name__ == "__main__":
    main()
