"""CTC forced alignment of a data dir's phones with a phone CTC checkpoint → ``<out>/phones.ctm``.

Usage::

    # align data/train_en/phones (tokenizer + cmvn.npz found beside the checkpoint)
    speechkd-align --ckpt exp/phone_ctc/model --data data/train_en --out exp/align

    # two parallel jobs, then merge; check boundaries against espeak-ng's reference CTM
    speechkd-align --ckpt exp/phone_ctc/model --data data/train_en --out exp/align --nj 2 --job 1
    speechkd-align --ckpt exp/phone_ctc/model --data data/train_en --out exp/align --nj 2 --job 2
    speechkd-align --data data/train_en --out exp/align --nj 2 --merge --ref-ctm data/train_en/phones.ctm

Segments (``--mode``): ``start`` (default; each phone lasts until the next one starts), ``mid``
(boundaries in the middle of blank gaps) or ``peaky`` (only the frames CTC fired on).
With ``--ref-ctm`` (and no ``--ckpt``: for an existing ``<out>/phones.ctm``) the boundary errors are written to ``<out>/accuracy.json`` (median, % within 20 ms) and
``<out>/accuracy.md`` (the same as a markdown table row named after the data dir).
Outputs: ``phones.ctm`` (one line per aligned token), ``align.yaml`` (settings, frame shift, failures).
``--words`` (with a character CTC model and ``--text-file text``): also ``words.ctm``, each word from its
first character's start to its last character's end (the word spans PAD reads from a data dir)::

    speechkd-align --ckpt exp/aligner/model --data data/train --out exp/align_train --text-file text --words
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from speechkd.utils.cli import parse_args, run_main
from speechkd.utils.errors import ConfigError

log = logging.getLogger("speechkd")


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ckpt", help="phone CTC checkpoint dir")
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True, help="output dir for phones.ctm")
    p.add_argument("--text-file", default="phones", help="transcript file in the data dir (phones or text)")
    p.add_argument("--mode", default="start", choices=["start", "mid", "peaky"])
    p.add_argument("--tokenizer")
    p.add_argument("--cmvn")
    p.add_argument("--nj", type=int, default=1)
    p.add_argument("--job", type=int, default=None)
    p.add_argument("--merge", action="store_true", help="merge split<nj>/phones.<j>.ctm and stop")
    p.add_argument("--ref-ctm", help="reference CTM: write boundary accuracy to <out>/accuracy.json")
    p.add_argument("--tolerance-ms", type=float, default=20.0)
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-seconds", type=float, default=60.0)
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--words", action="store_true",
                   help="also write <out>/words.ctm from the character alignment (text file: text)")
    return p


def _write_words(out: Path, data, text_file: str) -> None:
    from speechkd.align.ctm import read_ctm, words_from_char_ctm, write_ctm
    from speechkd.data.datadir import DataDir, read_kv

    texts = dict(read_kv(DataDir(data).file(text_file)))
    words = words_from_char_ctm(read_ctm(out / "phones.ctm"), texts)
    write_ctm(out / "words.ctm", words)
    log.info("word spans of %d utterances -> %s", len(words), out / "words.ctm")


def _accuracy(out: Path, ref_ctm, tol: float, name: str) -> None:
    from speechkd.align.accuracy import accuracy_markdown, boundary_errors
    from speechkd.align.ctm import read_ctm
    from speechkd.utils.fileio import atomic_write_text

    st = boundary_errors(read_ctm(out / "phones.ctm"), read_ctm(ref_ctm), tolerance_ms=tol)
    atomic_write_text(out / "accuracy.json", json.dumps(st, indent=1) + "\n")
    atomic_write_text(out / "accuracy.md", accuracy_markdown({name: st}))
    log.info("boundaries vs %s: median |err| %.1f ms, %.1f%% within %g ms (%d boundaries, %d utts, "
             "%d token mismatches)", ref_ctm, st["median_abs_ms"], st["pct_within_tol"], tol,
             st["n_boundaries"], st["n_utts"], st["n_mismatch"])


def _main(argv=None):
    args = parse_args(get_parser(), argv, allow_overrides=False)
    from speechkd.align.ctm import read_ctm, write_ctm

    out = Path(args.out)
    if not args.ckpt and not args.merge and args.ref_ctm:
        pass  # only score an existing <out>/phones.ctm
    elif args.merge:
        ctm = {}
        for j in range(1, args.nj + 1):
            part = out / f"split{args.nj}" / f"phones.{j}.ctm"
            if args.nj == 1 and not part.exists() and (out / "phones.ctm").exists():
                part = out / "phones.ctm"   # one job writes phones.ctm itself
            if not part.exists():
                raise ConfigError(f"{part}: missing (job {j} of {args.nj} not finished?)")
            ctm.update(read_ctm(part))
        write_ctm(out / "phones.ctm", ctm)
        log.info("merged %d utterances into %s", len(ctm), out / "phones.ctm")
        if args.words:
            _write_words(out, args.data, args.text_file)
    else:
        if not args.ckpt:
            raise ConfigError("--ckpt is required (except with --merge)")
        if args.nj > 1 and args.job is None:
            raise ConfigError("--nj > 1 needs --job (or --merge)")
        from speechkd.align.ctc_inference import align_datadir, load_ctc_for_inference, split_utts
        from speechkd.data.datadir import DataDir
        from speechkd.utils.config import save_config

        d = DataDir(args.data)
        d.validate(need=(args.text_file,))
        utts = split_utts(d.utt_ids(), args.nj, args.job) if args.nj > 1 else None
        m = load_ctc_for_inference(args.ckpt, args.tokenizer, args.cmvn, args.device)
        ctm, stats = align_datadir(m, args.data, utts, text_file=args.text_file, mode=args.mode,
                                   batch_seconds=args.batch_seconds, progress=not args.no_progress)
        if args.nj > 1:
            write_ctm(out / f"split{args.nj}" / f"phones.{args.job}.ctm", ctm)
            return
        write_ctm(out / "phones.ctm", ctm)
        save_config({"ckpt": str(args.ckpt), "data": str(args.data), "text_file": args.text_file,
                     "mode": args.mode, "frame_shift": m.frame_shift, **stats}, out / "align.yaml")
        log.info("aligned %d utterances (%d failed) -> %s", stats["utts"], stats["failed"], out / "phones.ctm")
        if args.words:
            _write_words(out, args.data, args.text_file)
    if args.ref_ctm:
        _accuracy(out, args.ref_ctm, args.tolerance_ms, Path(args.data).name)


def main(argv=None):
    sys.exit(run_main(_main, argv))


if __name__ == "__main__":
    main()
