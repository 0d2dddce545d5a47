"""Export a speechkd checkpoint (SSL encoder with waveform CNN, or its CTC model) to a Hugging Face
directory loadable with transformers' Wav2Vec2Model / HubertModel / *ForCTC.from_pretrained.

Usage:
    speechkd-export --ckpt exp/teacher --out exp/teacher_hf
    speechkd-export --ckpt exp/finetune/best --out exp/finetune_hf
"""
from __future__ import annotations

import argparse
import logging
import sys

from speechkd.utils.cli import parse_args, run_main

log = logging.getLogger("speechkd")


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ckpt", required=True, help="speechkd checkpoint directory (config.yaml + model.pt)")
    p.add_argument("--out", required=True, help="output Hugging Face directory")
    return p


def _main(argv=None):
    args = parse_args(get_parser(), argv, allow_overrides=False)
    from speechkd.models.convert.export_huggingface import export_huggingface
    out = export_huggingface(args.ckpt, args.out)
    log.info("exported %s -> %s", args.ckpt, out)


def main(argv=None):
    sys.exit(run_main(_main, argv))


if __name__ == "__main__":
    main()
