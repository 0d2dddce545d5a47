"""Streaming (chunked) decoding of a data dir with transducer checkpoints; one model, or one per language.

Usage::

    # one model, streaming greedy search: Fbank fed in 320 ms pieces through the chunk encoder
    speechkd-decode-transducer --ckpt exp/dense_multi/model --data data/test --out exp/dense_multi/decode_test

    # one checkpoint per language (utterances routed by data/test/utt2lang): pathways exports,
    # monolingual models; modified beam search of width 4 over the streamed encoder frames
    speechkd-decode-transducer --ckpt en=exp/pathways/seed1/export/en --ckpt de=exp/pathways/seed1/export/de \\
        --data data/test --out exp/pathways/seed1/decode_test --search beam --beam 4

    # full-utterance (non-streaming) encoder pass instead of chunked feeding (same chunk mask)
    speechkd-decode-transducer --ckpt exp/dense_multi/model --data data/test --out exp/x/decode_full --piece-ms 0

Outputs in ``--out``: ``text`` (hypotheses), ``token``, ``<lang>/text``, ``decode.yaml`` (settings, real-time
factor) and ``params.json`` (per language the non-zero parameters of the model that decoded it
``params_<lang>`` in thousands, mean ``sparsity`` (%) of the prunable weights, and ``params_unique``: the
parameters stored for all languages together, counting a weight shared by several checkpoints once).
The tokenizer and ``cmvn.npz`` are read from each checkpoint dir. Score with ``speechkd-score``.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from speechkd.utils.cli import parse_args, run_main
from speechkd.utils.errors import ConfigError

log = logging.getLogger("speechkd")


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ckpt", required=True, action="append",
                   help="checkpoint dir, or LANG=DIR (repeatable: one model per language)")
    p.add_argument("--data", required=True, help="data dir with feats.scp (+ utt2lang)")
    p.add_argument("--out", required=True, help="output decode dir")
    p.add_argument("--search", default="greedy", choices=["greedy", "beam"])
    p.add_argument("--beam", type=int, default=4, help="beam width of --search beam")
    p.add_argument("--max-symbols", type=int, default=3, help="symbols per frame at most (greedy and beam search)")
    p.add_argument("--piece-ms", type=int, default=320,
                   help="streaming: Fbank fed in pieces of this many ms (0 = whole utterance at once)")
    p.add_argument("--no-progress", action="store_true")
    return p


def parse_ckpts(specs) -> dict:
    """``["DIR"]`` -> ``{None: DIR}``; ``["en=D1", "de=D2"]`` -> ``{"en": D1, "de": D2}``."""
    out = {}
    for s in specs:
        lang, sep, path = s.partition("=")
        key, path = (lang, path) if sep else (None, s)
        if key in out:
            raise ConfigError(f"--ckpt for {key or 'all languages'} given twice")
        out[key] = path
    if None in out and len(out) > 1:
        raise ConfigError("give either one --ckpt DIR or LANG=DIR pairs, not both")
    return out


def load_transducer_dir(ckpt):
    """``(model, tokenizer, cmvn_fn)`` of a transducer checkpoint dir (tokenizer/ and cmvn.npz inside)."""
    from speechkd.asr.tokenizer import load_tokenizer
    from speechkd.data.dataset import _load_cmvn
    from speechkd.models.checkpoint import load_checkpoint

    model, cfg = load_checkpoint(ckpt)
    if cfg["model"].get("type") != "transducer":
        raise ConfigError(f"{ckpt}: not a transducer checkpoint")
    cmvn = Path(ckpt) / "cmvn.npz"
    return model.eval(), load_tokenizer(Path(ckpt) / "tokenizer"), _load_cmvn(cmvn if cmvn.exists() else None)


def decode_utterance(model, feats, search: str = "greedy", beam: int = 4, max_symbols: int = 3,
                     piece_frames: int = 32):
    """Token ids of one utterance ``feats`` (T, F), CMVN applied; streamed in ``piece_frames`` pieces."""
    import torch

    from speechkd.asr.rnnt_search import StreamingGreedyDecoder, greedy_search, modified_beam_search

    x = feats[None]
    if piece_frames <= 0:
        enc, lens = model.encode(x, torch.tensor([x.shape[1]]))
        if search == "greedy":
            return greedy_search(model, enc, lens, max_symbols)[0]
        return modified_beam_search(model, enc, lens, beam, max_symbols)[0]
    if search == "greedy":
        dec = StreamingGreedyDecoder(model, max_symbols)
        for s in range(0, x.shape[1], piece_frames):
            dec.accept(x[:, s: s + piece_frames])
        return dec.finalize()
    state, outs = model.encoder.init_state(), []
    for s in range(0, x.shape[1], piece_frames):
        o, state = model.encoder.streaming_forward(x[:, s: s + piece_frames], state)
        outs.append(o)
    o, state = model.encoder.streaming_forward(None, state, final=True)
    enc = torch.cat(outs + [o], dim=1)
    return modified_beam_search(model, enc, torch.tensor([enc.shape[1]]), beam, max_symbols)[0]


def params_summary(models: dict) -> dict:
    """``params_<lang>`` (k non-zero), mean ``sparsity`` (%), ``params_unique`` (k) over ``{lang: model}``."""
    import torch

    from speechkd.train.transducer import count_params

    info, seen = {}, {}
    spars = []
    for lang, m in models.items():
        c = count_params(m)
        info[f"params_{lang}"] = c["params_nonzero"] / 1000.0
        spars.append(100.0 * c["sparsity"])
        if id(m) in seen:
            continue
        seen[id(m)] = m
    # a parameter entry stored once per distinct non-zero value at its position (shared weights count once)
    unique = 0
    states = [dict(m.named_parameters()) for m in seen.values()]
    for name in states[0]:
        vals = torch.stack([s[name].detach().reshape(-1) for s in states])      # (M, N)
        srt = vals.sort(dim=0).values
        distinct = (srt != 0) & torch.cat([torch.ones_like(srt[:1], dtype=torch.bool), srt[1:] != srt[:-1]])
        unique += int(distinct.sum())
    info["params_unique"] = unique / 1000.0
    info["sparsity"] = sum(spars) / len(spars)
    return info


def _main(argv=None):
    args = parse_args(get_parser(), argv, allow_overrides=False)
    import torch
    from speechkd.utils.progress import progress as progress_bar

    from speechkd.data.datadir import DataDir, write_kv
    from speechkd.data.dataset import FeatsDataset
    from speechkd.utils.config import save_config
    from speechkd.utils.fileio import atomic_write_text

    out, data = Path(args.out), Path(args.data)
    ckpts = parse_ckpts(args.ckpt)
    d = DataDir(data)
    u2l = d.read("utt2lang") if d.has("utt2lang") else {}
    loaded = {k: load_transducer_dir(v) for k, v in ckpts.items()}
    if None in loaded:
        route = {u: None for u in d.read("feats.scp")}
    else:
        if not u2l:
            raise ConfigError(f"{data}: per-language --ckpt needs utt2lang")
        route = {u: lang for u, lang in u2l.items() if lang in loaded}
        skipped = sorted(set(u2l.values()) - set(loaded))
        if skipped:
            log.warning("no checkpoint for language(s) %s: their utterances are not decoded", ", ".join(skipped))
    ds = FeatsDataset(data, utts=sorted(route), text_file=None)
    piece = int(round(args.piece_ms / 10))
    text, tokens = {}, {}
    audio = 0.0
    t0 = time.time()
    with torch.no_grad():                  # (not set_grad_enabled: main() may run inside another program)
        for i in progress_bar(range(len(ds)), desc="decode", progress=not args.no_progress):
            utt = ds.utts[i]
            model, tok, cmvn = loaded[route[utt]]
            x = torch.from_numpy(ds._read(utt).copy()).float()
            audio += x.shape[0] / 100.0
            if cmvn is not None:
                x = cmvn(x)
            ids = decode_utterance(model, x, args.search, args.beam, args.max_symbols, piece)
            text[utt] = tok.decode(ids)
            tokens[utt] = " ".join(tok.ids_to_units(ids))
    wall = time.time() - t0
    write_kv(out / "text", text)
    write_kv(out / "token", tokens)
    for lang in sorted({u2l[u] for u in text if u in u2l}):
        write_kv(out / lang / "text", {u: t for u, t in text.items() if u2l.get(u) == lang})
    models = {lang: loaded[lang][0] for lang in loaded} if None not in loaded else \
        {lang: loaded[None][0] for lang in (sorted(set(u2l.values())) or ["all"])}
    atomic_write_text(out / "params.json", json.dumps(params_summary(models), indent=1) + "\n")
    save_config({"ckpt": {str(k): str(v) for k, v in ckpts.items()}, "data": str(data), "search": args.search,
                 "beam": args.beam if args.search == "beam" else 1, "max_symbols": args.max_symbols, "piece_ms": args.piece_ms,
                 "streaming": piece > 0, "utts": len(text), "audio_s": round(audio, 2),
                 "wall_s": round(wall, 2), "rtf": round(wall / max(audio, 1e-9), 4)}, out / "decode.yaml")
    log.info("%d utterances, %.1f s of audio in %.1f s (RTF %.3f) -> %s", len(text), audio, wall,
             wall / max(audio, 1e-9), out)


def main(argv=None):
    sys.exit(run_main(_main, argv))


if __name__ == "__main__":
    main()
