"""Kaldi-style data directories: read, write, validate, fix.

A data dir holds sorted, space-separated ``key value`` files::

    wav.scp    utt  path-or-"cmd |"
    text       utt  transcript
    utt2spk    utt  spk
    spk2utt    spk  utt1 utt2 ...
    optional:  segments (utt rec start end), utt2dur, utt2lang, utt2intent, phones, feats.scp, utt2num_frames

Every reader names the file and line of a bad entry (:class:`~speechkd.utils.errors.DataError`).
Writers are atomic. ``DataDir`` is a light view over one directory::

    d = DataDir("data/train")
    text = d.read("text")              # {"utt1": "hello world", ...}
    d.validate()                        # raises DataError on the first problem
    d.write("utt2lang", {"utt1": "en"})
"""
from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Dict, Iterable, List, Mapping

from ..utils.errors import DataError
from ..utils.fileio import atomic_open

REQUIRED = ("wav.scp", "text", "utt2spk")
# per-utterance files that are keyed by utterance id (checked against utt2spk)
UTT_FILES = ("wav.scp", "text", "utt2dur", "utt2lang", "utt2intent", "phones", "feats.scp",
             "utt2num_frames", "segments", "utt2gender")
# files whose value may legitimately be empty
MAY_BE_EMPTY = ()


def read_kv(path, allow_empty_value: bool = False, unique: bool = True) -> "OrderedDict[str, str]":
    """Read a ``key value...`` file into an ordered dict; value is the rest of the line, stripped."""
    path = Path(path)
    if not path.exists():
        raise DataError(path, None, "file not found")
    out: "OrderedDict[str, str]" = OrderedDict()
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n").rstrip("\r")
            if not line.strip():
                raise DataError(path, n, "empty line")
            parts = line.strip().split(maxsplit=1)
            key = parts[0]
            value = parts[1].strip() if len(parts) > 1 else ""
            if not value and not allow_empty_value:
                raise DataError(path, n, f"entry '{key}' has no value")
            if unique and key in out:
                raise DataError(path, n, f"duplicate key '{key}'")
            out[key] = value
    return out


def write_kv(path, mapping: Mapping[str, str] | Iterable[tuple], sort: bool = True) -> None:
    """Write ``key value`` lines atomically (sorted by key unless ``sort=False``)."""
    items = list(mapping.items()) if isinstance(mapping, Mapping) else list(mapping)
    if sort:
        items.sort(key=lambda kv: kv[0])
    with atomic_open(path, "w") as f:
        for k, v in items:
            if any(c.isspace() for c in k):
                raise DataError(path, None, f"key '{k}' contains whitespace")
            f.write(f"{k} {v}\n" if v != "" else f"{k}\n")


def spk2utt_from_utt2spk(utt2spk: Mapping[str, str]) -> "OrderedDict[str, str]":
    groups: Dict[str, List[str]] = {}
    for u, s in sorted(utt2spk.items()):
        groups.setdefault(s, []).append(u)
    return OrderedDict((s, " ".join(us)) for s, us in sorted(groups.items()))


class DataDir:
    """A Kaldi data directory on disk."""

    def __init__(self, path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"DataDir({str(self.path)!r})"

    def file(self, name: str) -> Path:
        return self.path / name

    def has(self, name: str) -> bool:
        return self.file(name).exists()

    def read(self, name: str, allow_empty_value: bool = False) -> "OrderedDict[str, str]":
        return read_kv(self.file(name), allow_empty_value=allow_empty_value)

    def write(self, name: str, mapping, sort: bool = True) -> None:
        write_kv(self.file(name), mapping, sort=sort)

    def utt_ids(self) -> List[str]:
        return list(self.read("utt2spk").keys())

    # ------------------------------------------------------------------ validation
    def validate(self, need: Iterable[str] = (), check_sorted: bool = True,
                 non_empty_text: bool = True) -> None:
        """Check required files, sortedness, key agreement and spk2utt; raise DataError on a problem.

        ``need`` names extra files that must exist (e.g. ``("feats.scp",)``).
        """
        if not self.path.is_dir():
            raise DataError(self.path, None, "data directory not found")
        for name in (*REQUIRED, *need):
            if not self.has(name):
                raise DataError(self.file(name), None, "required file missing")
        utt2spk = self.read("utt2spk")
        utts = set(utt2spk)
        for name in UTT_FILES:
            if not self.has(name):
                continue
            path = self.file(name)
            entries = read_kv(path, allow_empty_value=(name == "text" and not non_empty_text))
            keys = list(entries)
            if check_sorted:
                for i in range(1, len(keys)):
                    if keys[i] < keys[i - 1]:
                        raise DataError(path, i + 1, f"not sorted: '{keys[i]}' after '{keys[i - 1]}' "
                                        f"(run utils/fix_data_dir.sh {self.path})")
            if name == "wav.scp" and self.has("segments"):
                continue  # wav.scp is keyed by recording when segments exist
            for n, k in enumerate(keys, 1):
                if k not in utts:
                    raise DataError(path, n, f"utterance '{k}' not in utt2spk")
            if name in ("wav.scp", "text") and len(keys) != len(utts):
                missing = sorted(utts - set(keys))[:3]
                raise DataError(path, None, f"{len(utts) - len(keys)} utterances of utt2spk missing, "
                                f"e.g. {' '.join(missing)}")
        if self.has("spk2utt"):
            want = spk2utt_from_utt2spk(utt2spk)
            got = read_kv(self.file("spk2utt"))
            if got != want:
                raise DataError(self.file("spk2utt"), None, "does not match utt2spk "
                                f"(run utils/fix_data_dir.sh {self.path})")

    # ------------------------------------------------------------------ fixing
    def fix(self) -> List[str]:
        """Sort every file, keep only utterances present in all of wav.scp/text/utt2spk, rebuild spk2utt.

        Returns the list of utterance ids that were dropped.
        """
        per_utt = {}
        for name in UTT_FILES + ("utt2spk",):
            if self.has(name) and not (name == "wav.scp" and self.has("segments")):
                per_utt[name] = self.read(name, allow_empty_value=(name == "text"))
        common = None
        for name in ("utt2spk", "text", "wav.scp", "segments", "feats.scp"):
            if name in per_utt:
                keys = set(per_utt[name])
                if name == "text":
                    keys = {k for k, v in per_utt[name].items() if v.strip()}
                common = keys if common is None else common & keys
        common = common or set()
        dropped = sorted(set(per_utt.get("utt2spk", {})) - common)
        for name, entries in per_utt.items():
            self.write(name, {k: v for k, v in entries.items() if k in common})
        if self.has("segments") and self.has("wav.scp"):
            recs = {v.split()[0] for v in self.read("segments").values()}
            self.write("wav.scp", {k: v for k, v in self.read("wav.scp").items() if k in recs})
        self.write("spk2utt", spk2utt_from_utt2spk(self.read("utt2spk")))
        return dropped


def write_datadir(path, entries: Mapping[str, Mapping[str, str]]) -> DataDir:
    """Write a whole data dir from ``{"wav.scp": {...}, "text": {...}, "utt2spk": {...}, ...}``.

    spk2utt is derived from utt2spk. Each file is written atomically.
    """
    d = DataDir(path)
    d.path.mkdir(parents=True, exist_ok=True)
    for name, mapping in entries.items():
        d.write(name, mapping)
    if "utt2spk" in entries:
        d.write("spk2utt", spk2utt_from_utt2spk(entries["utt2spk"]))
    return d


def subset_datadir(src, dst, utt_ids: Iterable[str]) -> DataDir:
    """Copy the entries of ``utt_ids`` from data dir ``src`` into ``dst`` (all per-utt files)."""
    s, keep = DataDir(src), set(utt_ids)
    out = {}
    for name in UTT_FILES + ("utt2spk",):
        if s.has(name) and not (name == "wav.scp" and s.has("segments")):
            out[name] = {k: v for k, v in s.read(name, allow_empty_value=True).items() if k in keep}
    d = write_datadir(dst, out)
    if s.has("segments") and s.has("wav.scp"):
        recs = {v.split()[0] for v in d.read("segments").values()}
        d.write("wav.scp", {k: v for k, v in s.read("wav.scp").items() if k in recs})
    for extra in ("phones.ctm", "words.ctm"):
        if s.has(extra):
            lines = [ln for ln in open(s.file(extra), encoding="utf-8") if ln.split()[0] in keep]
            with atomic_open(d.file(extra)) as f:
                f.writelines(lines)
    return d
