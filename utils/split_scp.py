#!/usr/bin/env python3
"""Split a ``key value`` file (wav.scp, text, feats.scp, an utterance list) into N parts (stdlib only).

Usage:
    utils/split_scp.py [--utt2spk FILE] [--keys-only] IN OUT1 OUT2 ... OUTN
    utils/split_scp.py [--utt2spk FILE] [--keys-only] --nj N IN OUTDIR      # writes OUTDIR/1 .. OUTDIR/N

Examples:
    utils/split_scp.py --utt2spk data/train/utt2spk --nj 4 --keys-only data/train/wav.scp data/train/split4
    # -> data/train/split4/1 .. 4: utterance lists, each speaker's utterances in one part
    utils/split_scp.py data/train/feats.scp exp/feats.1.scp exp/feats.2.scp

Parts are contiguous runs of the input in its order, as equal in line count as possible (sizes differ
by at most one without ``--utt2spk``). With ``--utt2spk`` a speaker's lines never straddle two parts:
the cuts fall between speakers, each placed as close as possible to the ideal equal split (the input's
lines of a speaker must be contiguous, as in a sorted data dir). Deterministic: same input, same parts.
Every part is non-empty; splitting into more parts than lines (or speakers) is an error.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from typing import Dict, List, Optional, Sequence


class SplitError(Exception):
    """Bad input: the message names the file and line."""


def read_lines(path: str) -> List[tuple]:
    """Return ``[(key, line), ...]`` for the non-empty lines of ``path`` (line keeps its text)."""
    out, seen = [], set()
    try:
        f = open(path, encoding="utf-8")
    except OSError as e:
        raise SplitError(f"{path}: cannot read ({e.strerror})") from None
    with f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line.strip():
                raise SplitError(f"{path}:{n}: empty line")
            key = line.split(maxsplit=1)[0]
            if key in seen:
                raise SplitError(f"{path}:{n}: duplicate key '{key}'")
            seen.add(key)
            out.append((key, line))
    return out


def read_utt2spk(path: str) -> Dict[str, str]:
    out = {}
    for key, line in read_lines(path):
        parts = line.split()
        if len(parts) != 2:
            raise SplitError(f"{path}: line for '{key}' should be 'utt spk', got '{line}'")
        out[key] = parts[1]
    return out


def split_even(n_items: int, n_parts: int) -> List[int]:
    """Start offsets (plus the end) of ``n_parts`` contiguous parts: ``split_even(10, 3) == [0, 4, 7, 10]``."""
    base, extra = divmod(n_items, n_parts)
    bounds = [0]
    for i in range(n_parts):
        bounds.append(bounds[-1] + base + (1 if i < extra else 0))
    return bounds


def split_keys(keys: Sequence[str], n_parts: int, utt2spk: Optional[Dict[str, str]] = None,
               source: str = "input") -> List[List[str]]:
    """Split ``keys`` (in order) into ``n_parts`` contiguous non-empty lists.

    With ``utt2spk``, each speaker's keys stay in one part. Example::

        split_keys(["a1", "a2", "b1", "c1"], 2, {"a1": "a", "a2": "a", "b1": "b", "c1": "c"})
        # [["a1", "a2"], ["b1", "c1"]]
    """
    keys = list(keys)
    if n_parts < 1:
        raise SplitError(f"number of parts must be at least 1, got {n_parts}")
    if utt2spk is None:
        if len(keys) < n_parts:
            raise SplitError(f"{source}: {len(keys)} lines cannot be split into {n_parts} non-empty parts")
        b = split_even(len(keys), n_parts)
        return [keys[b[i]:b[i + 1]] for i in range(n_parts)]
    # group consecutive keys by speaker
    groups: List[List[str]] = []
    done_spk = set()
    for k in keys:
        if k not in utt2spk:
            raise SplitError(f"{source}: key '{k}' is not in utt2spk")
        spk = utt2spk[k]
        if groups and utt2spk[groups[-1][0]] == spk:
            groups[-1].append(k)
            continue
        if spk in done_spk:
            raise SplitError(f"{source}: utterances of speaker '{spk}' are not contiguous (at '{k}'); "
                             f"sort the data dir (utils/fix_data_dir.sh)")
        done_spk.add(spk)
        groups.append([k])
    n_groups = len(groups)
    if n_groups < n_parts:
        raise SplitError(f"{source}: {n_groups} speakers cannot be split into {n_parts} parts "
                         f"keeping speakers together")
    cum = [0]
    for g in groups:
        cum.append(cum[-1] + len(g))
    total = cum[-1]
    cuts = [0]
    for p in range(1, n_parts):
        target = p * total / n_parts
        lo, hi = cuts[-1] + 1, n_groups - (n_parts - p)  # leave at least one group per later part
        best = min(range(lo, hi + 1), key=lambda j: (abs(cum[j] - target), j))
        cuts.append(best)
    cuts.append(n_groups)
    return [[k for g in groups[cuts[i]:cuts[i + 1]] for k in g] for i in range(n_parts)]


def write_atomic(path: str, lines: Sequence[str]) -> None:
    d = os.path.dirname(path) or "."
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=d)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.writelines(line + "\n" for line in lines)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def split_file(in_path: str, out_paths: Sequence[str], utt2spk_path: Optional[str] = None,
               keys_only: bool = False) -> List[int]:
    """Split ``in_path`` into ``out_paths``; return the number of lines in each part."""
    entries = read_lines(in_path)
    utt2spk = read_utt2spk(utt2spk_path) if utt2spk_path else None
    by_key = dict(entries)
    parts = split_keys([k for k, _ in entries], len(out_paths), utt2spk, source=in_path)
    for path, part in zip(out_paths, parts):
        write_atomic(path, part if keys_only else [by_key[k] for k in part])
    return [len(p) for p in parts]


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--utt2spk", help="keep the utterances of each speaker in one part")
    p.add_argument("--keys-only", action="store_true", help="write only the keys (utterance lists)")
    p.add_argument("--nj", type=int, help="number of parts, written as OUTDIR/1 .. OUTDIR/N")
    p.add_argument("input")
    p.add_argument("outputs", nargs="+", help="output files, or OUTDIR with --nj")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = get_parser().parse_args(argv)
    prog = os.path.basename(sys.argv[0] or "split_scp.py")
    if args.nj is not None:
        if len(args.outputs) != 1:
            print(f"{prog}: with --nj give one output directory", file=sys.stderr)
            return 1
        outs = [os.path.join(args.outputs[0], str(i)) for i in range(1, args.nj + 1)]
    else:
        outs = args.outputs
    try:
        split_file(args.input, outs, args.utt2spk, args.keys_only)
    except SplitError as e:
        print(f"{prog}: ERROR: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
