"""Write a random-weight Hugging Face checkpoint of a paper's architecture (for dry runs of real recipes).

Usage::

    # a Hugging Face directory, read by the same importer as a real one
    speechkd-make-random-checkpoint --arch hubert_base --format hf --out exp/dryrun/hubert_base_hf
    speechkd-import-checkpoint --src exp/dryrun/hubert_base_hf --out exp/teacher/model --kind ssl
    # a speechkd checkpoint dir with HuBERT's pre-training head (what importing fairseq's .pt gives)
    speechkd-make-random-checkpoint --arch hubert_base --format speechkd --out exp/teacher/model

Architectures: hubert_base (HuBERT Base), wav2vec2_base (wav2vec 2.0 Base), xlsr_53 (XLSR-53 / XLS-R 300M).
Prints the directory (its shape and number of parameters go to the log).
"""
from __future__ import annotations

import argparse
import sys

from ..utils.cli import parse_args, run_main


def get_parser() -> argparse.ArgumentParser:
    from ..models.convert.random_checkpoint import ARCHS

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", required=True, choices=sorted(ARCHS))
    p.add_argument("--format", default="hf", choices=["hf", "speechkd"])
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--seed", type=int, default=0)
    return p


def _main(argv) -> int:
    from ..models.convert.random_checkpoint import write_random_checkpoint

    args = parse_args(get_parser(), argv, allow_overrides=False)
    print(write_random_checkpoint(args.arch, args.out, args.format, args.seed))
    return 0


def main(argv=None):
    sys.exit(run_main(_main, argv))


if __name__ == "__main__":
    main()
