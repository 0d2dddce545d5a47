"""Multilingual LibriSpeech (MLS) -> Kaldi data dirs, per language and split (+ limited supervision).

Real on-disk layout read here (``mls_<language>`` with flac, or ``mls_<language>_opus`` with opus)::

    mls_<language>/{train,dev,test}/transcripts.txt      "<spk>_<book>_<utt><TAB>text" lines
    mls_<language>/{train,dev,test}/segments.txt         (LibriVox source times; not needed, ignored)
    mls_<language>/{train,dev,test}/audio/<spk>/<book>/<spk>_<book>_<utt>.flac
    mls_<language>/train/limited_supervision/1hr/{0..5}/handles.txt   one utterance id a line
    mls_<language>/train/limited_supervision/9hr/handles.txt

Usage::

    >>> from speechkd.corpus.mls import prepare
    >>> dirs = prepare("/data/mls", "data", languages=["german", "polish"])      # doctest: +SKIP
    >>> sorted(dirs)[:4]                                                        # doctest: +SKIP
    ['dev_de', 'dev_pl', 'test_de', 'test_pl']

Output ``<out>/<split>_<code>/`` (``code`` = ISO 639-1: en de nl fr es it pt pl): ``wav.scp`` (absolute
audio path), ``text`` (as distributed: MLS transcripts are already lower case without punctuation),
``utt2spk`` (the first id field), ``spk2utt``, ``utt2lang``. With the limited-supervision lists
(``limited=True`` and the folder present): ``train_10min_<code>`` (fold ``1hr/0``), ``train_1h_<code>``
(all six ``1hr`` folds) and ``train_10h_<code>`` (``1hr`` + ``9hr``).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from ..data.datadir import DataDir
from ..utils.errors import DataError
from .prep_common import check_audio_exists, finish_datadir, new_entries, write_fake_audio

log = logging.getLogger("speechkd")

LANG_CODES = {"english": "en", "german": "de", "dutch": "nl", "french": "fr", "spanish": "es",
              "italian": "it", "portuguese": "pt", "polish": "pl"}
DEFAULT_SPLITS = ("train", "dev", "test")
_NAMES = {v: k for k, v in LANG_CODES.items()}


def find_language_dirs(src) -> Dict[str, Path]:
    """``{language: folder}`` for ``mls_<language>[_opus]`` folders at or under ``src``."""
    src = Path(src)
    if not src.is_dir():
        raise DataError(src, None, "MLS folder not found")
    cands = [src] if src.name.startswith("mls_") else sorted(src.glob("mls_*"))
    out = {}
    for d in cands:
        if not d.is_dir():
            continue
        lang = d.name[len("mls_"):]
        lang = lang[: -len("_opus")] if lang.endswith("_opus") else lang
        out.setdefault(lang, d)  # sorted: flac folder (mls_x) before mls_x_opus
    if not out:
        raise DataError(src, None, "no mls_<language> folder found")
    return out


def read_transcripts(split_dir: Path, code: str, check_audio: bool = True) -> Dict[str, Dict[str, str]]:
    """Entries of one ``<split>/transcripts.txt``; DataError(file, line) on a malformed line."""
    from ..utils.progress import progress as progress_bar

    tf = split_dir / "transcripts.txt"
    if not tf.is_file():
        raise DataError(tf, None, "transcripts file not found")
    ext = ".opus" if split_dir.parent.name.endswith("_opus") else ".flac"
    entries = new_entries("wav.scp", "text", "utt2spk", "utt2lang")
    audio_root = (split_dir / "audio").resolve()
    with open(tf, encoding="utf-8") as f:
        for n, line in enumerate(progress_bar(f, desc=f"{split_dir.parent.name}/{split_dir.name}", unit="utt",
                                      mininterval=2.0), 1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            if "\t" not in line:
                raise DataError(tf, n, "expected '<spk>_<book>_<utt><TAB>text'")
            utt, text = line.split("\t", 1)
            utt, text = utt.strip(), " ".join(text.split())
            fields = utt.split("_")
            if len(fields) != 3 or not all(x.isdigit() for x in fields):
                raise DataError(tf, n, f"utterance id '{utt}' is not '<spk>_<book>_<utt>'")
            if not text:
                raise DataError(tf, n, f"utterance '{utt}' has an empty transcript")
            if utt in entries["text"]:
                raise DataError(tf, n, f"duplicate utterance '{utt}'")
            audio = Path(f"{audio_root}/{fields[0]}/{fields[1]}/{utt}{ext}")
            if check_audio:
                check_audio_exists(audio, tf, n, utt)
            entries["wav.scp"][utt] = str(audio)
            entries["text"][utt] = text
            entries["utt2spk"][utt] = fields[0]
            entries["utt2lang"][utt] = code
    return entries


def read_handles(path: Path, known) -> List[str]:
    """Utterance ids of a limited-supervision ``handles.txt``; each must be in ``known``."""
    if not path.is_file():
        raise DataError(path, None, "handles file not found")
    out = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            h = line.strip()
            if not h:
                continue
            if h not in known:
                raise DataError(path, n, f"utterance '{h}' is not in train/transcripts.txt")
            out.append(h)
    return out


def limited_splits(train_dir: Path, known) -> Dict[str, List[str]]:
    ls = train_dir / "limited_supervision"
    folds = [read_handles(ls / "1hr" / str(k) / "handles.txt", known) for k in range(6)]
    one_h = [u for fold in folds for u in fold]
    return {"train_10min": folds[0], "train_1h": one_h,
            "train_10h": one_h + read_handles(ls / "9hr" / "handles.txt", known)}


def prepare(src, out_dir, languages: Optional[Sequence[str]] = None, splits: Sequence[str] = DEFAULT_SPLITS,
            limited: bool = True, check_audio: bool = True, utt2dur: bool = False) -> Dict[str, DataDir]:
    """Write ``<out_dir>/<split>_<code>`` (+ ``train_{10min,1h,10h}_<code>``) per language.

    ``src``: an ``mls_<language>`` folder or a folder holding several; ``languages`` are MLS names
    (``german``) or codes (``de``), default all found. Returns ``{name: DataDir}``.
    """
    found = find_language_dirs(src)
    by_code = {LANG_CODES.get(k, k): k for k in found}
    languages = list(languages) if languages else sorted(found)
    result: Dict[str, DataDir] = {}
    for lang in languages:
        lang = by_code.get(lang) or _NAMES.get(lang, lang)
        if lang not in found:
            raise DataError(src, None, f"MLS language '{lang}' not found (have: {' '.join(sorted(found))})")
        code = LANG_CODES.get(lang, lang)
        for split in splits:
            split_dir = found[lang] / split
            entries = read_transcripts(split_dir, code, check_audio)
            name = f"{split}_{code}"
            result[name] = finish_datadir(Path(out_dir) / name, entries, what=str(split_dir / "transcripts.txt"),
                                          utt2dur=utt2dur)
            if split == "train" and limited and (split_dir / "limited_supervision").is_dir():
                for sub, utts in limited_splits(split_dir, entries["text"]).items():
                    keep = set(utts)
                    sub_entries = {k: {u: v for u, v in m.items() if u in keep} for k, m in entries.items()}
                    result[f"{sub}_{code}"] = finish_datadir(Path(out_dir) / f"{sub}_{code}", sub_entries,
                                                             what=str(split_dir / "limited_supervision"),
                                                             utt2dur=utt2dur)
    return result


# ---------------------------------------------------------------------------------------------- test tree
_FAKE_WORDS = {"german": ["der", "die", "das", "haus", "ist", "groß", "und", "alt"],
               "polish": ["to", "jest", "dom", "ładny", "i", "stary", "kot", "pies"]}


def fake_text(language: str, spk: int, book: int, utt: int) -> str:
    words = _FAKE_WORDS.get(language, _FAKE_WORDS["german"])
    return " ".join(words[(spk + book + utt + j) % len(words)] for j in range(2 + utt % 3))


def make_fake_tree(root, languages: Sequence[str] = ("german", "polish"), n_utts: int = 4) -> Path:
    """Write tiny ``mls_<language>`` trees under ``root`` (returned).

    Each split has speakers ``{train: 10, 11; dev: 20; test: 30}`` (plus ``100 * language index``),
    book ``<spk>0``; utterance ``k`` of a book is ``<spk>_<book>_<k:06d>``, text :func:`fake_text`, flac.
    Limited supervision (needs ``n_utts >= 4``, i.e. 8 train utterances): ``1hr/<k>`` holds train
    utterance ``k`` (k = 0..5, in sorted order) and ``9hr`` the remaining ones.
    """
    root = Path(root)
    for li, lang in enumerate(languages):
        base = root / f"mls_{lang}"
        spks = {"train": [10, 11], "dev": [20], "test": [30]}
        train_utts = []
        for split, ss in spks.items():
            d = base / split
            lines, seg = [], []
            for s in ss:
                spk = s + 100 * li
                book = spk * 10
                for k in range(n_utts):
                    utt = f"{spk}_{book}_{k:06d}"
                    write_fake_audio(d / "audio" / str(spk) / str(book) / f"{utt}.flac", spk * 10 + k,
                                     seconds=0.25)
                    lines.append(f"{utt}\t{fake_text(lang, spk, book, k)}\n")
                    seg.append(f"{utt}\thttp://www.archive.org/fake/{book}.mp3\t{k}.0\t{k}.25\n")
                    if split == "train":
                        train_utts.append(utt)
            (d / "transcripts.txt").write_text("".join(lines), encoding="utf-8")
            (d / "segments.txt").write_text("".join(seg), encoding="utf-8")
        ls = base / "train" / "limited_supervision"
        for k in range(6):
            (ls / "1hr" / str(k)).mkdir(parents=True, exist_ok=True)
            (ls / "1hr" / str(k) / "handles.txt").write_text(train_utts[k] + "\n")
        (ls / "9hr").mkdir(parents=True, exist_ok=True)
        (ls / "9hr" / "handles.txt").write_text("".join(u + "\n" for u in train_utts[6:]))
    return root
