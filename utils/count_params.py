#!/usr/bin/env python3
"""Write the encoder parameter count of a checkpoint dir as JSON ({"params": N, "params_M": N/1e6}), the
file results specs read as a "params (M)" column (steps/finetune_langs.sh).

    utils/count_params.py exp/ft_student/seed1/de/model exp/ft_student/seed1/params.json
"""
import json
import sys


def main(argv):
    if len(argv) != 2:
        sys.exit("usage: count_params.py CHECKPOINT_DIR OUT.json")
    from speechkd.models.checkpoint import load_checkpoint
    from speechkd.utils.fileio import atomic_write_text

    model, _ = load_checkpoint(argv[0])
    n = sum(p.numel() for p in model.encoder.parameters())
    atomic_write_text(argv[1], json.dumps({"params": n, "params_M": round(n / 1e6, 3)}) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
