#!/usr/bin/env python3
"""Phone error rate of the check's decodes per espeak-ng voice variant (the cause experiment for a teacher
that wins on one set of unseen voices and loses on another): mean ± spread over seeds per init and voice.

    local/per_voice.py exp/check decode_dev decode_test > exp/check/per_voice.md

A speaker id is <lang>_<variant>p<pitch>r<rate> (e.g. de_f5p65r145); the variant (f5) is the voice.
Writes a markdown table to stdout; reads only score.json's ref/hyp files (nothing is re-decoded).
"""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from speechkd.asr.results import summarize
from speechkd.asr.scoring import score_files
from speechkd.corpus.mini_espeak import parse_speaker_id


def per_voice(score_json: Path) -> dict:
    sc = json.loads(score_json.read_text())
    hyp = Path(sc["hyp"])
    utts = [line.split(maxsplit=1)[0] for line in Path(sc["ref"]).read_text().splitlines() if line.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        u2v = Path(tmp) / "utt2voice"
        u2v.write_text("".join(f"{u} {parse_speaker_id(u)[1]}\n" for u in utts))
        res = score_files(sc["ref"], hyp, out_dir=tmp, units=("phone",), utt2lang=u2v)
    return {v: st["phone"]["Err"] for v, st in res["per_lang"].items()}


def main(argv) -> int:
    check, sets = Path(argv[0]), argv[1:]
    inits = sorted(p.name[3:] for p in check.glob("ft_*") if p.is_dir())
    print("| init | set | voice | PER (mean ± spread over seeds) |")
    print("|---|---|---|---|")
    for init in inits:
        for s in sets:
            by_voice: dict = {}
            for sj in sorted(check.glob(f"ft_{init}/seed*/{s}/score.json")):
                for v, e in per_voice(sj).items():
                    by_voice.setdefault(v, []).append(e)
            for v in sorted(by_voice):
                m, sd, n = summarize(by_voice[v])
                print(f"| {init} | {s} | {v} | {m:.1f} ± {sd:.1f} (n={n}) |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
