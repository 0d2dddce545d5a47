#!/usr/bin/env python3
"""Text of the mini text teacher: the SLU training transcripts (never dev/test: the held-out paraphrases
stay unseen) plus N English sentences from the installed fortunes files (general language).

    local/make_lm_text.py --slu-text data/train/text --n-extra 3000 --out data/lm_text
"""
import argparse
import random

from speechkd.corpus.text_sources import load_sentences, normalize_text
from speechkd.data.datadir import read_kv
from speechkd.utils.fileio import atomic_open

p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
p.add_argument("--slu-text", required=True)
p.add_argument("--n-extra", type=int, default=3000)
p.add_argument("--seed", type=int, default=1)
p.add_argument("--out", required=True)
args = p.parse_args()
lines = [f"{u} {t}" for u, t in read_kv(args.slu_text).items()]
extra = load_sentences("en", 3, 14)
random.Random(args.seed).shuffle(extra)
lines += [f"fortune_{i:06d} {normalize_text(s)}" for i, s in enumerate(extra[:args.n_extra]) if normalize_text(s)]
with atomic_open(args.out) as f:
    f.writelines(line + "\n" for line in sorted(lines))
print(f"{len(lines)} lines -> {args.out}")
