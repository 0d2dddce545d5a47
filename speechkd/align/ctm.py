"""CTM files: ``utt channel start dur token [conf]`` per line (seconds), grouped by utterance.

Example::

    >>> ctm = {"utt1": [CTMEntry("utt1", 0.10, 0.08, "h"), CTMEntry("utt1", 0.18, 0.12, "ə")]}
    >>> write_ctm("exp/align/phones.ctm", ctm)            # atomic, sorted by utt then start
    >>> read_ctm("exp/align/phones.ctm")["utt1"][1].end
    0.3

A malformed line is a :class:`~speechkd.utils.errors.DataError` naming the file and line.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Union

from ..utils.errors import DataError
from ..utils.fileio import atomic_open

__all__ = ["CTMEntry", "read_ctm", "write_ctm", "ctm_tokens", "word_entries", "words_from_char_ctm"]

SPACE_SYMBOLS = ("<space>", "\u2581")   # how the char tokenizers write the space (speechkd.asr.tokenizer)


@dataclass
class CTMEntry:
    utt: str
    start: float
    dur: float
    token: str
    channel: str = "1"
    conf: Optional[float] = None

    @property
    def end(self) -> float:
        return round(self.start + self.dur, 6)


def read_ctm(path, allow_overlap: bool = True) -> "OrderedDict[str, List[CTMEntry]]":
    """Read a CTM file into ``{utt: [CTMEntry, ...]}`` (entries sorted by start time)."""
    path = Path(path)
    if not path.exists():
        raise DataError(path, None, "file not found")
    out: "OrderedDict[str, List[CTMEntry]]" = OrderedDict()
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            parts = line.split()
            if not parts or parts[0].startswith(";;"):
                continue
            if len(parts) not in (5, 6):
                raise DataError(path, n, f"expected 'utt channel start dur token [conf]', got {line.strip()!r}")
            try:
                start, dur = float(parts[2]), float(parts[3])
                conf = float(parts[5]) if len(parts) == 6 else None
            except ValueError:
                raise DataError(path, n, f"bad number in {line.strip()!r}") from None
            if start < 0 or dur < 0:
                raise DataError(path, n, "negative start or duration")
            out.setdefault(parts[0], []).append(CTMEntry(parts[0], start, dur, parts[4], parts[1], conf))
    for utt, entries in out.items():
        entries.sort(key=lambda e: e.start)
        if not allow_overlap:
            for a, b in zip(entries, entries[1:]):
                if b.start < a.end - 1e-6:
                    raise DataError(path, None, f"utterance '{utt}': '{b.token}' at {b.start} overlaps "
                                    f"'{a.token}' ending at {a.end}")
    return out


def write_ctm(path, ctm: Union[Mapping[str, Sequence[CTMEntry]], Iterable[CTMEntry]], digits: int = 3) -> None:
    """Write entries atomically, sorted by utterance then start time, times with ``digits`` decimals."""
    if isinstance(ctm, Mapping):
        entries = [e for utt in ctm for e in ctm[utt]]
    else:
        entries = list(ctm)
    entries.sort(key=lambda e: (e.utt, e.start))
    with atomic_open(path, "w") as f:
        for e in entries:
            conf = "" if e.conf is None else f" {e.conf:.3f}"
            f.write(f"{e.utt} {e.channel} {e.start:.{digits}f} {e.dur:.{digits}f} {e.token}{conf}\n")


def ctm_tokens(entries: Sequence[CTMEntry]) -> List[str]:
    return [e.token for e in entries]


def group_by_utt(entries: Iterable[CTMEntry]) -> Dict[str, List[CTMEntry]]:
    out: Dict[str, List[CTMEntry]] = {}
    for e in entries:
        out.setdefault(e.utt, []).append(e)
    return out


def word_entries(entries: Sequence[CTMEntry], words: Sequence[str]) -> List[CTMEntry]:
    """The word CTM of one utterance from its character alignment (``entries`` in time order).

    Each run of characters between space tokens (``<space>`` or ``▁``) is one word of ``words``, from its
    first character's start to its last character's end (the space between two words belongs to neither).
    A run count that differs from ``len(words)`` is a :class:`DataError` naming the utterance."""
    runs: List[List[CTMEntry]] = [[]]
    for e in entries:
        if e.token in SPACE_SYMBOLS:
            if runs[-1]:
                runs.append([])
        else:
            runs[-1].append(e)
    runs = [r for r in runs if r]
    if len(runs) != len(words):
        utt = entries[0].utt if entries else "?"
        raise DataError(None, None, f"{utt}: the character alignment has {len(runs)} words, the transcript "
                        f"{len(words)}")
    return [CTMEntry(r[0].utt, r[0].start, round(r[-1].end - r[0].start, 6), w) for r, w in zip(runs, words)]


def words_from_char_ctm(ctm: Mapping[str, Sequence[CTMEntry]], texts: Mapping[str, str]
                        ) -> "OrderedDict[str, List[CTMEntry]]":
    """Word CTMs of every aligned utterance with a transcript in ``texts`` (see :func:`word_entries`)."""
    out: "OrderedDict[str, List[CTMEntry]]" = OrderedDict()
    for utt, entries in ctm.items():
        if utt in texts:
            out[utt] = word_entries(sorted(entries, key=lambda e: e.start), texts[utt].split())
    return out
