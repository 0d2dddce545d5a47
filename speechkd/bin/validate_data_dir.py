"""Validate (and optionally fix) a Kaldi data directory.

Usage::

    # check wav.scp/text/utt2spk (+ any optional per-utterance file): sorted, keys agree, spk2utt matches
    speechkd-validate-data-dir data/train

    # also require features
    speechkd-validate-data-dir --need feats.scp --need utt2num_frames data/train

    # sort every file, drop utterances missing from wav.scp/text/utt2spk (or with empty text),
    # rebuild spk2utt; the old files are kept in data/train/.backup/
    speechkd-validate-data-dir --fix data/train

The shell wrappers ``utils/validate_data_dir.sh`` and ``utils/fix_data_dir.sh`` call this. A problem is
reported as one line naming the file and line, with exit status 1. On success prints
``data/train: OK (N utterances, S speakers)``.
"""
from __future__ import annotations

import argparse
import logging
import shutil
import sys

from speechkd.data.datadir import REQUIRED, UTT_FILES, DataDir
from speechkd.utils.cli import parse_args, run_main

log = logging.getLogger("speechkd")

# Kaldi validate_data_dir.sh flags accepted for compatibility; features are optional here anyway.
KALDI_NOOP_FLAGS = ("--no-feats", "--no-wav", "--no-spk-sort")


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--fix", action="store_true",
                   help="sort, drop incomplete utterances, rebuild spk2utt (backup in DIR/.backup)")
    p.add_argument("--need", action="append", default=[], metavar="FILE",
                   help="a file that must exist (repeatable), e.g. feats.scp")
    p.add_argument("--no-check-sorted", action="store_true", help="do not require sorted files")
    p.add_argument("--allow-empty-text", action="store_true", help="accept utterances with empty text")
    for flag in KALDI_NOOP_FLAGS:
        p.add_argument(flag, action="store_true", help=argparse.SUPPRESS)
    p.add_argument("data_dir")
    return p


def backup_files(d: DataDir) -> str:
    """Copy the data dir's known files into ``DIR/.backup/`` (overwriting an older backup)."""
    backup = d.path / ".backup"
    backup.mkdir(exist_ok=True)
    for name in (*UTT_FILES, *REQUIRED, "utt2spk", "spk2utt"):
        if d.has(name):
            shutil.copy2(d.file(name), backup / name)
    return str(backup)


def validate_data_dir(path, fix: bool = False, need=(), check_sorted: bool = True,
                      non_empty_text: bool = True) -> dict:
    """Validate data dir ``path`` (fixing it first when ``fix``); return counts.

    Returns ``{"utterances": N, "speakers": S, "dropped": [utt ids removed by fix]}``; raises
    :class:`~speechkd.utils.errors.DataError` naming the file and line of the first problem.
    """
    d = DataDir(path)
    dropped = []
    if fix:
        if not d.path.is_dir():
            d.validate()  # raises "data directory not found"
        where = backup_files(d)
        dropped = d.fix()
        if dropped:
            log.warning("%s: dropped %d utterances (e.g. %s); old files in %s", d.path, len(dropped),
                        " ".join(dropped[:3]), where)
    d.validate(need=tuple(need), check_sorted=check_sorted, non_empty_text=non_empty_text)
    utt2spk = d.read("utt2spk")
    return {"utterances": len(utt2spk), "speakers": len(set(utt2spk.values())), "dropped": dropped}


def _main(argv=None):
    args = parse_args(get_parser(), argv, allow_overrides=False)
    info = validate_data_dir(args.data_dir, fix=args.fix, need=args.need,
                             check_sorted=not args.no_check_sorted, non_empty_text=not args.allow_empty_text)
    extra = f", fixed: {len(info['dropped'])} dropped" if args.fix else ""
    print(f"{args.data_dir}: OK ({info['utterances']} utterances, {info['speakers']} speakers{extra})")
    return 0


def main(argv=None):
    sys.exit(run_main(_main, argv))


if __name__ == "__main__":
    main()
