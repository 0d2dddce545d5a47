"""CTC decoding of a data dir with a trained checkpoint; writes ``<out>/text`` (``utt hyp``).

Usage::

    # greedy, whole test set (GPU if available); the tokenizer and cmvn.npz are found beside the checkpoint
    speechkd-decode --ckpt exp/ft/model --data data/test --out exp/ft/decode_test

    # prefix beam search of width 8
    speechkd-decode --ckpt exp/ft/model --data data/test --out exp/ft/decode_test_beam8 --beam 8

    # parallel jobs (e.g. under utils/run.pl JOB=1:4), then merge the parts
    speechkd-decode --ckpt exp/ft/model --data data/test --out exp/ft/decode_test --nj 4 --job 2
    speechkd-decode --ckpt exp/ft/model --data data/test --out exp/ft/decode_test --nj 4 --merge

Outputs: ``text`` (hypotheses), ``token`` (hypotheses as tokenizer units), ``decode.yaml`` (settings,
device, real-time factor) and, when the data dir has ``utt2lang``, ``<lang>/text`` per language.
With ``--nj N --job J`` a job writes ``split<N>/text.<J>`` and ``split<N>/token.<J>`` instead.
``--utt-list FILE`` restricts decoding to the utterances listed (first column).
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from speechkd.utils.cli import parse_args, run_main
from speechkd.utils.errors import ConfigError

log = logging.getLogger("speechkd")


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ckpt", help="checkpoint dir (config.yaml + model.pt)")
    p.add_argument("--data", required=True, help="data dir to decode")
    p.add_argument("--out", required=True, help="output decode dir")
    p.add_argument("--beam", type=int, default=1, help="1 = greedy, > 1 = prefix beam search")
    p.add_argument("--insertion-bonus", type=float, default=0.0, help="beam search: score bonus per label")
    p.add_argument("--tokenizer", help="tokenizer dir (default: found beside the checkpoint)")
    p.add_argument("--cmvn", help="cmvn.npz for fbank models (default: found beside the checkpoint)")
    p.add_argument("--utt-list", help="decode only these utterances (first column of the file)")
    p.add_argument("--nj", type=int, default=1, help="number of parallel jobs")
    p.add_argument("--job", type=int, default=None, help="this job's number, 1..nj")
    p.add_argument("--merge", action="store_true", help="merge split<nj>/text.* into text and stop")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:1")
    p.add_argument("--batch-seconds", type=float, default=60.0, help="padded audio seconds per batch")
    p.add_argument("--precision", default="auto", help="auto (bf16 where the CPU/GPU has it) | fp32 | bf16 | fp16")
    p.add_argument("--no-progress", action="store_true")
    return p


def _read_list(path) -> list:
    with open(path, encoding="utf-8") as f:
        return [ln.split()[0] for ln in f if ln.strip()]


def _write_outputs(out: Path, data: Path, text: dict, tokens: dict) -> None:
    from speechkd.data.datadir import DataDir, write_kv

    write_kv(out / "text", text)
    write_kv(out / "token", tokens)
    d = DataDir(data)
    if d.has("utt2lang"):
        langs = d.read("utt2lang")
        for lang in sorted({langs[u] for u in text if u in langs}):
            write_kv(out / lang / "text", {u: t for u, t in text.items() if langs.get(u) == lang})


def merge_parts(out: Path, data: Path, nj: int) -> dict:
    from speechkd.data.datadir import read_kv

    text, tokens = {}, {}
    for j in range(1, nj + 1):
        part = out / f"split{nj}" / f"text.{j}"
        if not part.exists():
            raise ConfigError(f"{part}: missing (job {j} of {nj} not finished?)")
        text.update(read_kv(part, allow_empty_value=True))
        tok = out / f"split{nj}" / f"token.{j}"
        if tok.exists():
            tokens.update(read_kv(tok, allow_empty_value=True))
    _write_outputs(out, data, text, tokens)
    return text


def _main(argv=None):
    args = parse_args(get_parser(), argv, allow_overrides=False)
    out, data = Path(args.out), Path(args.data)
    if args.merge:
        text = merge_parts(out, data, args.nj)
        log.info("merged %d hypotheses from %d jobs into %s", len(text), args.nj, out / "text")
        return
    if not args.ckpt:
        raise ConfigError("--ckpt is required (except with --merge)")
    if args.nj > 1 and args.job is None:
        raise ConfigError("--nj > 1 needs --job (or --merge)")
    import torch

    from speechkd.align.ctc_inference import decode_datadir, load_ctc_for_inference, split_utts
    from speechkd.data.datadir import DataDir, write_kv
    from speechkd.utils.config import save_config

    d = DataDir(data)
    d.validate()
    utts = _read_list(args.utt_list) if args.utt_list else None
    if args.nj > 1:
        utts = split_utts(utts if utts is not None else d.utt_ids(), args.nj, args.job)
    m = load_ctc_for_inference(args.ckpt, args.tokenizer, args.cmvn, args.device, args.precision)
    log.info("decoding %s with %s (%s front-end, %d units, beam %d) on %s, precision %s", data, args.ckpt,
             m.frontend, m.tokenizer.vocab_size, args.beam, m.device, m.precision)
    text, tokens, stats = decode_datadir(m, data, utts, beam=args.beam, insertion_bonus=args.insertion_bonus,
                                         batch_seconds=args.batch_seconds, progress=not args.no_progress)
    if args.nj > 1:
        write_kv(out / f"split{args.nj}" / f"text.{args.job}", text)
        write_kv(out / f"split{args.nj}" / f"token.{args.job}", tokens)
    else:
        _write_outputs(out, data, text, tokens)
        from speechkd.asr.results import collect_environment

        env = collect_environment(".")
        dev = torch.cuda.get_device_name(m.device) if m.device.type == "cuda" else env["cpu"]
        save_config({"ckpt": str(args.ckpt), "data": str(data), "beam": args.beam, "precision": m.precision,
                     "insertion_bonus": args.insertion_bonus, "device": str(m.device), "device_name": dev,
                     "torch": str(torch.__version__), **stats}, out / "decode.yaml")
    log.info("%d utterances, %.1f s of audio in %.1f s (RTF %s) -> %s", stats["utts"], stats["audio_s"],
             stats["wall_s"], stats["rtf"], out)


def main(argv=None):
    sys.exit(run_main(_main, argv))


if __name__ == "__main__":
    main()
