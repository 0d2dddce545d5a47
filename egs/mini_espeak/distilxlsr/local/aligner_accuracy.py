#!/usr/bin/env python3
"""One markdown table of the CTC aligner's boundary accuracy over several alignment dirs (stage 6).

    local/aligner_accuracy.py exp/aligner_accuracy.md exp/align_train_en exp/align_dev_en

Each dir holds the accuracy.json that steps/align_ctc.sh --ref_ctm wrote; its row is named after the
dir (align_train_* is the aligner's training set, any other unseen speakers).
"""
import json
import sys
from pathlib import Path

from speechkd.align.accuracy import accuracy_markdown
from speechkd.utils.fileio import atomic_write_text


def main(argv):
    if len(argv) < 2:
        sys.exit("usage: aligner_accuracy.py OUT.md ALIGN_DIR...")
    out, dirs = argv[0], [Path(d) for d in argv[1:]]
    sets = {}
    for d in dirs:
        acc = d / "accuracy.json"
        if not acc.is_file():
            sys.exit(f"{acc}: missing (run steps/align_ctc.sh with --ref_ctm first)")
        what = "aligner training set" if d.name.startswith("align_train") else "unseen speakers"
        sets[f"{d.name.replace('align_', '')} ({what})"] = json.loads(acc.read_text())
    atomic_write_text(out, accuracy_markdown(sets))


if __name__ == "__main__":
    main(sys.argv[1:])
