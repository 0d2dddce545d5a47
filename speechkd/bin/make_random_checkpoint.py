"""Write a random-weight Hugging Face checkpoint of a paper's architecture (for dry runs of real recipes).

Usage::

    # a Hugging Face directory, read by the same importer as a real one
    speechkd-make-random-checkpoint --arch hubert_base --format hf --out exp/dryrun/hubert_base_hf
    speechkd-import-checkpoint --src exp/dryrun/hubert_base_hf --out exp/teacher/model --kind ssl
    # a speechkd checkpoint dir with HuBERT's pre-training head (what importing fairseq's .pt gives)
    speechkd-make-random-checkpoint --arch hubert_base --format speechkd --out exp/teacher/model

    # a text teacher (InfoXLM base shape) with a small tokenizer trained on the corpus's transcripts
    speechkd-make-random-checkpoint --arch infoxlm_base --text data/train_de/text --out exp/dryrun/infoxlm

Architectures: hubert_base (HuBERT Base), wav2vec2_base (wav2vec 2.0 Base), xlsr_53 (XLSR-53 / XLS-R 300M);
text: infoxlm_base (InfoXLM / XLM-R base; needs --text, Kaldi text files, always Hugging Face format).
Prints the directory (its shape and number of parameters go to the log).
"""
from __future__ import annotations

import argparse
import sys

from ..utils.cli import parse_args, run_main


def get_parser() -> argparse.ArgumentParser:
    from ..models.convert.random_checkpoint import ARCHS, TEXT_ARCHS

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", required=True, choices=sorted(ARCHS) + sorted(TEXT_ARCHS))
    p.add_argument("--format", default="hf", choices=["hf", "speechkd"])
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--text", action="append", default=[],
                   help="Kaldi text file(s) the tokenizer of a text architecture is trained on (repeatable)")
    p.add_argument("--vocab-size", type=int, default=1000, help="tokenizer pieces of a text architecture")
    return p


def _main(argv) -> int:
    from ..models.convert.random_checkpoint import TEXT_ARCHS, write_random_checkpoint, write_random_text_model
    from ..utils.errors import ConfigError

    args = parse_args(get_parser(), argv, allow_overrides=False)
    if args.arch in TEXT_ARCHS:
        if not args.text:
            raise ConfigError(f"--arch {args.arch} is a text model: --text <Kaldi text file> is required (its tokenizer)")
        from ..models.text import read_text_file

        texts = [t for f in args.text for t in read_text_file(f)]
        print(write_random_text_model(args.arch, args.out, texts, args.seed, args.vocab_size))
    else:
        print(write_random_checkpoint(args.arch, args.out, args.format, args.seed))
    return 0


def main(argv=None):
    sys.exit(run_main(_main, argv))


if __name__ == "__main__":
    main()
