"""Fluent Speech Commands -> Kaldi data dirs with ``utt2intent``.

Real on-disk layout read here::

    fluent_speech_commands_dataset/data/{train,valid,test}_data.csv
        header ",path,speakerId,transcription,action,object,location" (the first column is a row index),
        e.g. 0,wavs/speakers/2BqVo8kVB2Skwgyb/0a3129c0-4474-11e9-a9a5-5dbec3b8816a.wav,2BqVo8kVB2Skwgyb,
             Change language,change language,none,none
    fluent_speech_commands_dataset/wavs/speakers/<speakerId>/<file>.wav

Usage::

    >>> from speechkd.corpus.fsc import prepare
    >>> dirs = prepare("/data/fluent_speech_commands_dataset", "data")   # doctest: +SKIP
    >>> sorted(dirs)                                                    # doctest: +SKIP
    ['test', 'train', 'valid']

Output ``<out>/<split>/``: ``wav.scp`` (absolute wav path), ``text`` (the transcription, whitespace
normalised; ``normalize=True`` lower-cases and strips punctuation), ``utt2intent``
(``<action>_<object>_<location>``, spaces inside a slot value become ``-``), ``utt2spk``
(``speakerId``), ``spk2utt``, ``utt2lang`` (``en``). Utterance id = ``<speakerId>-<file stem>``.
"""
from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Dict, Sequence

from ..data.datadir import DataDir
from ..utils.errors import DataError
from .prep_common import check_audio_exists, clean_id, finish_datadir, new_entries, normalize_text, write_fake_audio

log = logging.getLogger("speechkd")

DEFAULT_SPLITS = ("train", "valid", "test")
COLUMNS = ("path", "speakerId", "transcription", "action", "object", "location")


def find_root(src) -> Path:
    src = Path(src)
    for cand in (src, src / "fluent_speech_commands_dataset"):
        if (cand / "data").is_dir():
            return cand
    raise DataError(src, None, "Fluent Speech Commands folder (with data/*_data.csv) not found")


def intent_of(action: str, obj: str, location: str) -> str:
    return "_".join("-".join(v.split()) for v in (action, obj, location))


def read_csv(path: Path, root: Path, normalize: bool = False, check_audio: bool = True) -> Dict[str, Dict[str, str]]:
    """Entries of one ``<split>_data.csv``; DataError(file, line) on a malformed row."""
    from ..utils.progress import progress as progress_bar

    entries = new_entries("wav.scp", "text", "utt2spk", "utt2lang", "utt2intent")
    root = Path(root).resolve()
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        missing = [c for c in COLUMNS if header is None or c not in header]
        if missing:
            raise DataError(path, 1, f"header lacks column(s) {', '.join(missing)}")
        col = {c: header.index(c) for c in COLUMNS}
        for row in progress_bar(reader, desc=path.name, unit="utt", mininterval=2.0):
            n = reader.line_num
            if not row or not any(x.strip() for x in row):
                continue
            if len(row) != len(header):
                raise DataError(path, n, f"expected {len(header)} comma-separated fields, got {len(row)}")
            rel, spk, trans, act, obj, loc = (row[col[c]].strip() for c in COLUMNS)
            for name, v in zip(COLUMNS, (rel, spk, trans, act, obj, loc)):
                if not v:
                    raise DataError(path, n, f"empty '{name}'")
            spk = clean_id(spk)
            stem = clean_id(Path(rel).stem)
            utt = f"{spk}-{stem}"
            if utt in entries["text"]:
                raise DataError(path, n, f"duplicate recording '{rel}'")
            text = normalize_text(trans, "en") if normalize else " ".join(trans.split())
            if not text:
                raise DataError(path, n, "transcription is empty after normalisation")
            audio = Path(f"{root}/{rel}")
            if check_audio:
                check_audio_exists(audio, path, n, utt)
            entries["wav.scp"][utt] = str(audio)
            entries["text"][utt] = text
            entries["utt2spk"][utt] = spk
            entries["utt2lang"][utt] = "en"
            entries["utt2intent"][utt] = intent_of(act, obj, loc)
    return entries


def prepare(src, out_dir, splits: Sequence[str] = DEFAULT_SPLITS, normalize: bool = False,
            check_audio: bool = True, utt2dur: bool = False) -> Dict[str, DataDir]:
    """Write ``<out_dir>/<split>`` for each split. Returns ``{name: DataDir}``."""
    root = find_root(src)
    result: Dict[str, DataDir] = {}
    for split in splits:
        path = root / "data" / f"{split}_data.csv"
        if not path.is_file():
            raise DataError(path, None, "split file not found")
        result[split] = finish_datadir(Path(out_dir) / split, read_csv(path, root, normalize, check_audio),
                                       what=str(path), utt2dur=utt2dur)
    return result


# ---------------------------------------------------------------------------------------------- test tree
FAKE_ROWS = {
    "train": [("2BqVo8kVB2Skwgyb", "Turn on the lights", "activate", "lights", "none"),
              ("2BqVo8kVB2Skwgyb", "Lights on in the kitchen.", "activate", "lights", "kitchen"),
              ("4BrX8aDqK2cLZRYl", "Change language", "change language", "none", "none")],
    "valid": [("5o9BvRGEGvhaeBwA", "Turn the volume up, please", "increase", "volume", "none")],
    "test": [("7B4XmNppyrCK977p", "Bring me my shoes", "bring", "shoes", "none"),
             ("7B4XmNppyrCK977p", "Decrease the heat in the washroom", "decrease", "heat", "washroom")],
}


def fake_file_id(split: str, i: int) -> str:
    return f"{split[:2]}{i:02d}a3129c0-4474-11e9-a9a5-5dbec3b8816a"


def make_fake_tree(root) -> Path:
    """Write a tiny ``fluent_speech_commands_dataset`` under ``root`` (returned) from :data:`FAKE_ROWS`.

    Row ``i`` of split ``s`` is ``wavs/speakers/<spk>/<fake_file_id(s, i)>.wav`` (16 kHz wav), written
    to ``data/<s>_data.csv`` with the real header and a leading index column.
    """
    root = Path(root) / "fluent_speech_commands_dataset"
    (root / "data").mkdir(parents=True, exist_ok=True)
    k = 0
    for split, rows in FAKE_ROWS.items():
        with open(root / "data" / f"{split}_data.csv", "w", encoding="utf-8", newline="") as f:
            w = csv.writer(f)
            w.writerow(["", *COLUMNS])
            for i, (spk, trans, act, obj, loc) in enumerate(rows):
                rel = f"wavs/speakers/{spk}/{fake_file_id(split, i)}.wav"
                write_fake_audio(root / rel, k, seconds=0.25)
                w.writerow([k, rel, spk, trans, act, obj, loc])
                k += 1
    return root
