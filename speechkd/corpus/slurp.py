"""SLURP (Spoken Language Understanding Resource Package) -> Kaldi data dirs with ``utt2intent``.

Real on-disk layout read here (the ``slurp`` repository checkout plus its audio download)::

    slurp/dataset/slurp/{train,devel,test,train_synthetic}.jsonl
        one JSON object a line: {"slurp_id": 13, "sentence": "wake me up at nine am",
        "intent": "alarm_set", "scenario": "alarm", "action": "set", "entities": [...],
        "recordings": [{"file": "audio-1490200813-headset.flac", "wer": 0.0, ...}, ...]}
    slurp/dataset/slurp/metadata.json          (optional) {"<slurp_id>": {"recordings":
        {"<file>": {"usrid": "MO-433", ...}}}}: the speaker of each recording
    slurp_real/<file>.flac, slurp_synth/<file>.flac   (found under <src>/audio/, <src>/ or <src>/..)

Usage::

    >>> from speechkd.corpus.slurp import prepare
    >>> dirs = prepare("/data/slurp", "data", splits=["train", "devel", "test"])   # doctest: +SKIP

Output ``<out>/<split>/`` (``train devel test``; ``synthetic=True`` adds ``train_synthetic``), one
utterance per recording: ``wav.scp`` (absolute flac path), ``text`` (the ``sentence``, whitespace
normalised; ``normalize=True`` lower-cases and strips punctuation), ``utt2intent``
(``<scenario>_<action>``, i.e. SLURP's intent label), ``utt2spk``, ``spk2utt``, ``utt2lang`` (``en``).
Speaker = ``usrid`` from ``metadata.json`` when present, else the recording session (the file name
without ``-headset``/extension); synthetic speech is speaker ``synth``. Utterance id =
``<speaker>-<file name without extension>``. A recording listed twice in one split is kept once.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Dict, Optional, Sequence

from ..data.datadir import DataDir
from ..utils.errors import DataError
from .prep_common import (check_audio_exists, clean_id, finish_datadir, new_entries, normalize_text,
                          write_fake_audio)

log = logging.getLogger("speechkd")

DEFAULT_SPLITS = ("train", "devel", "test")


def _meta_dir(src: Path) -> Path:
    for cand in (src / "dataset" / "slurp", src / "slurp" / "dataset" / "slurp", src):
        if (cand / "train.jsonl").is_file() or (cand / "test.jsonl").is_file():
            return cand
    raise DataError(src, None, "SLURP metadata (dataset/slurp/*.jsonl) not found")


def find_audio_dir(src: Path, name: str) -> Path:
    """``slurp_real`` / ``slurp_synth`` under ``src/audio``, ``src`` or ``src/..``."""
    for cand in (src / "audio" / name, src / name, src.parent / name, src.parent / "audio" / name):
        if cand.is_dir():
            return cand
    raise DataError(src, None, f"audio folder '{name}' not found under {src}/audio, {src} or {src.parent}")


def load_speakers(meta_dir: Path) -> Dict[str, str]:
    """``{recording file: usrid}`` from ``metadata.json`` (empty when the file is absent)."""
    path = meta_dir / "metadata.json"
    if not path.is_file():
        return {}
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(path, e.lineno, f"invalid JSON: {e.msg}") from None
    out = {}
    for rec in meta.values():
        for fname, info in (rec.get("recordings") or {}).items():
            if isinstance(info, dict) and info.get("usrid"):
                out[fname] = clean_id(str(info["usrid"]))
    return out


def session_of(fname: str) -> str:
    """``audio-1490200813-headset.flac`` -> ``audio-1490200813`` (headset and far-field share it)."""
    stem = fname.rsplit(".", 1)[0]
    return stem[: -len("-headset")] if stem.endswith("-headset") else stem


def read_jsonl(path: Path, audio_dir: Path, speakers: Dict[str, str], synthetic: bool = False,
               normalize: bool = False, check_audio: bool = True) -> Dict[str, Dict[str, str]]:
    """Entries of one SLURP jsonl; DataError(file, line) on bad JSON or a missing field."""
    from ..utils.progress import progress as progress_bar

    entries = new_entries("wav.scp", "text", "utt2spk", "utt2lang", "utt2intent")
    dups = 0
    audio_dir = Path(audio_dir).resolve()
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(progress_bar(f, desc=path.name, unit="rec", mininterval=2.0), 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(path, n, f"invalid JSON: {e.msg} (column {e.colno})") from None
            if not isinstance(rec, dict):
                raise DataError(path, n, "expected a JSON object")
            for key in ("sentence", "scenario", "action", "recordings"):
                if key not in rec or rec[key] in (None, ""):
                    raise DataError(path, n, f"missing field '{key}'")
            if not isinstance(rec["recordings"], list):
                raise DataError(path, n, "'recordings' is not a list")
            text = normalize_text(rec["sentence"], "en") if normalize else " ".join(str(rec["sentence"]).split())
            if not text:
                raise DataError(path, n, "empty sentence")
            intent = f"{rec['scenario']}_{rec['action']}"
            if any(c.isspace() for c in intent):
                raise DataError(path, n, f"intent '{intent}' contains whitespace")
            for r in rec["recordings"]:
                fname = r.get("file") if isinstance(r, dict) else None
                if not fname:
                    raise DataError(path, n, "a recording has no 'file'")
                spk = "synth" if synthetic else speakers.get(fname, session_of(fname))
                utt = f"{spk}-{clean_id(fname.rsplit('.', 1)[0])}"
                if utt in entries["text"]:
                    dups += 1
                    continue
                audio = Path(f"{audio_dir}/{fname}")
                if check_audio:
                    check_audio_exists(audio, path, n, utt)
                entries["wav.scp"][utt] = str(audio)
                entries["text"][utt] = text
                entries["utt2spk"][utt] = spk
                entries["utt2lang"][utt] = "en"
                entries["utt2intent"][utt] = intent
    if dups:
        log.warning("%s: %d recordings listed more than once, kept once", path, dups)
    return entries


def prepare(src, out_dir, splits: Sequence[str] = DEFAULT_SPLITS, synthetic: bool = False,
            normalize: bool = False, check_audio: bool = True, audio_dir: Optional[str] = None,
            utt2dur: bool = False) -> Dict[str, DataDir]:
    """Write ``<out_dir>/<split>`` per split (+ ``train_synthetic`` with ``synthetic``).

    ``src``: the ``slurp`` checkout; ``audio_dir``: the folder holding ``slurp_real``/``slurp_synth`` when
    it is not under ``src/audio``, ``src`` or ``src/..``. Returns ``{name: DataDir}``.
    """
    src = Path(src)
    meta = _meta_dir(src)
    base = Path(audio_dir) if audio_dir else src
    speakers = load_speakers(meta)
    result: Dict[str, DataDir] = {}
    todo = [(s, False) for s in splits] + ([("train_synthetic", True)] if synthetic else [])
    for split, synth in todo:
        path = meta / f"{split}.jsonl"
        if not path.is_file():
            raise DataError(path, None, "split file not found")
        adir = find_audio_dir(base, "slurp_synth" if synth else "slurp_real")
        entries = read_jsonl(path, adir, speakers, synth, normalize, check_audio)
        result[split] = finish_datadir(Path(out_dir) / split, entries, what=str(path), utt2dur=utt2dur)
    return result


# ---------------------------------------------------------------------------------------------- test tree
FAKE_RECORDS = {
    "train": [(0, "wake me up at nine am", "alarm", "set", ["MO-433", "FE-141"]),
              (1, "what's the weather like", "weather", "query", ["MO-433"])],
    "devel": [(2, "turn the lights off", "iot", "hue_lightoff", ["FE-200"])],
    "test": [(3, "play some jazz music", "play", "music", ["FE-300", "MO-301"])],
    "train_synthetic": [(4, "set an alarm for six", "alarm", "set", ["synth"])],
}


def make_fake_tree(root, with_metadata: bool = True) -> Path:
    """Write a tiny ``slurp`` checkout + ``audio/slurp_real`` + ``audio/slurp_synth`` under ``root``.

    Records are :data:`FAKE_RECORDS` (``slurp_id, sentence, scenario, action, speakers``); recording
    ``j`` of record ``i`` is ``audio-<1490000000 + 10*i + j>-headset.flac`` (synthetic:
    ``synth-<i>.flac``), speaker in ``metadata.json``. Returns ``<root>/slurp``.
    """
    root = Path(root) / "slurp"
    meta_dir = root / "dataset" / "slurp"
    meta_dir.mkdir(parents=True, exist_ok=True)
    metadata = {}
    for split, recs in FAKE_RECORDS.items():
        lines = []
        for sid, sent, scen, act, spks in recs:
            synth = split == "train_synthetic"
            files = ([f"synth-{sid}.flac"] if synth else
                     [f"audio-{1490000000 + 10 * sid + j}-headset.flac" for j in range(len(spks))])
            sub = "slurp_synth" if synth else "slurp_real"
            for j, fname in enumerate(files):
                write_fake_audio(root / "audio" / sub / fname, 10 * sid + j, seconds=0.25)
            lines.append(json.dumps({
                "slurp_id": sid, "sentence": sent, "sentence_annotation": sent, "intent": f"{scen}_{act}",
                "action": act, "scenario": scen, "tokens": [], "entities": [],
                "recordings": [{"file": fn, "wer": 0.0, "ent_wer": 0.0, "status": "correct"} for fn in files],
            }))
            if not synth:
                metadata[str(sid)] = {"recordings": {fn: {"usrid": spk} for fn, spk in zip(files, spks)}}
        (meta_dir / f"{split}.jsonl").write_text("".join(ln + "\n" for ln in lines), encoding="utf-8")
    if with_metadata:
        (meta_dir / "metadata.json").write_text(json.dumps(metadata, indent=1), encoding="utf-8")
    return root
