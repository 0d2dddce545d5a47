#!/usr/bin/env python3
"""Combine, subset and split Kaldi data dirs (over speechkd.data.datadir); behind the utils/*.sh wrappers.

Usage:
    utils/data_dir.py combine DEST SRC1 SRC2 ...
    utils/data_dir.py subset [--first N | --last N | --utt-list F | --spk-list F | --num N] SRC DEST
    utils/data_dir.py subset SRC N DEST                # Kaldi form: same as --num N
    utils/data_dir.py split [--per-utt] SRC N          # SRC/splitN/1 .. SRC/splitN/N

Examples:
    utils/data_dir.py combine data/train_all data/train_en data/train_de
    utils/data_dir.py subset --num 100 data/train data/train_100      # 100 utterances, evenly spread
    utils/data_dir.py split data/train 4                               # speakers kept together

combine: a per-utterance file goes into DEST when every source has it (otherwise it is left out with a
warning); an utterance id in two sources is an error. subset: ``--num N`` takes N utterances evenly
spaced through the sorted list (deterministic). split: contiguous parts of near-equal size; with
speakers kept together unless ``--per-utt`` (see utils/split_scp.py). Outputs are complete, sorted data
dirs with spk2utt rebuilt.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.realpath(__file__))))
from split_scp import SplitError, split_keys  # noqa: E402

from speechkd.data.datadir import UTT_FILES, DataDir, read_kv, subset_datadir, write_datadir  # noqa: E402
from speechkd.utils.errors import DataError, SpeechkdError  # noqa: E402

PER_UTT = tuple(UTT_FILES) + ("utt2spk",)


def combine(dest, sources) -> DataDir:
    """Concatenate data dirs ``sources`` into ``dest`` (see the module docstring)."""
    dirs = [DataDir(s) for s in sources]
    for d in dirs:
        if not d.has("utt2spk"):
            raise DataError(d.file("utt2spk"), None, "required file missing")
    with_segments = [d.has("segments") for d in dirs]
    if any(with_segments) and not all(with_segments):
        raise DataError(dirs[with_segments.index(False)].file("segments"), None,
                        "some sources have segments and others not; cannot combine")
    names = [n for n in PER_UTT if all(d.has(n) for d in dirs)]
    for n in PER_UTT:
        if n not in names and any(d.has(n) for d in dirs):
            print(f"combine: leaving out {n} (not in every source)", file=sys.stderr)
    out = {n: {} for n in names}
    owner = {}
    for d in dirs:
        for n in names:
            entries = d.read(n, allow_empty_value=True)
            for k, v in entries.items():
                if n == "utt2spk":
                    if k in owner:
                        raise DataError(d.file(n), None, f"utterance '{k}' also in {owner[k]}")
                    owner[k] = d.path
                elif n == "wav.scp" and all(with_segments) and k in out[n] and out[n][k] != v:
                    raise DataError(d.file(n), None, f"recording '{k}' differs from another source")
                out[n][k] = v
    return write_datadir(dest, out)


def subset(src, dest, first=None, last=None, utt_list=None, spk_list=None, num=None) -> DataDir:
    """Write the chosen utterances of ``src`` to ``dest``."""
    s = DataDir(src)
    utts = sorted(s.utt_ids())
    if first is not None:
        keep = utts[:first]
    elif last is not None:
        keep = utts[-last:] if last else []
    elif num is not None:
        if num > len(utts):
            raise DataError(s.file("utt2spk"), None, f"asked for {num} utterances, only {len(utts)} there")
        keep = [utts[(i * len(utts)) // num] for i in range(num)]
    elif utt_list is not None:
        keep = list(read_kv(utt_list, allow_empty_value=True))
    elif spk_list is not None:
        spks = set(read_kv(spk_list, allow_empty_value=True))
        keep = [u for u, sp in s.read("utt2spk").items() if sp in spks]
    else:
        raise SpeechkdError("subset: give one of --first/--last/--num/--utt-list/--spk-list")
    return subset_datadir(src, dest, keep)


def split(src, n_parts: int, per_utt: bool = False) -> list:
    """Split data dir ``src`` into ``src/split{n}/1..n`` (speakers together unless ``per_utt``)."""
    s = DataDir(src)
    utt2spk = s.read("utt2spk")
    keys = sorted(utt2spk, key=lambda u: (utt2spk[u], u)) if not per_utt else sorted(utt2spk)
    try:
        parts = split_keys(keys, n_parts, None if per_utt else dict(utt2spk), source=str(s.file("utt2spk")))
    except SplitError as e:
        raise SpeechkdError(str(e)) from None
    out = []
    for i, part in enumerate(parts, 1):
        out.append(subset_datadir(src, s.path / f"split{n_parts}" / str(i), part).path)
    return out


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="verb", required=True)
    c = sub.add_parser("combine")
    c.add_argument("dest")
    c.add_argument("sources", nargs="+")
    s = sub.add_parser("subset")
    g = s.add_mutually_exclusive_group()
    g.add_argument("--first", type=int)
    g.add_argument("--last", type=int)
    g.add_argument("--num", type=int)
    g.add_argument("--utt-list")
    g.add_argument("--spk-list")
    s.add_argument("dirs", nargs="+", metavar="SRC [N] DEST",
                   help="Kaldi form 'SRC N DEST' means --num N")
    sp = sub.add_parser("split")
    sp.add_argument("--per-utt", action="store_true")
    sp.add_argument("src")
    sp.add_argument("n", type=int)
    return p


def main(argv=None) -> int:
    args = get_parser().parse_args(argv)
    try:
        if args.verb == "combine":
            d = combine(args.dest, args.sources)
            print(f"combine: {len(d.utt_ids())} utterances in {args.dest}", file=sys.stderr)
        elif args.verb == "subset":
            if len(args.dirs) == 3 and args.dirs[1].isdigit():
                args.src, n, args.dest = args.dirs
                if args.first is None and args.last is None:
                    args.num = int(n)
            elif len(args.dirs) == 2:
                args.src, args.dest = args.dirs
            else:
                raise SpeechkdError("subset: expected SRC DEST or SRC N DEST")
            d = subset(args.src, args.dest, args.first, args.last, args.utt_list, args.spk_list, args.num)
            print(f"subset: {len(d.utt_ids())} utterances in {args.dest}", file=sys.stderr)
        else:
            split(args.src, args.n, args.per_utt)
    except SpeechkdError as e:
        print(f"ERROR: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
