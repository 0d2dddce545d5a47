"""Error rates the ESPnet/sclite way: per-utterance alignments (jiwer) and the ``Snt Wrd Corr ...`` table.

Units: ``word`` (whitespace-separated), ``phone`` (the same split, named for ``phones`` references),
``char`` (characters, the space counted as the unit ``<space>`` as in ESPnet's CER) and ``token``
(a tokenizer's units, e.g. SentencePiece pieces).

Example::

    >>> refs = {"u1": "a b c d"}
    >>> hyps = {"u1": "a x c d e"}
    >>> st, al = score(refs, hyps, "word")
    >>> (st.corr, st.sub, st.dele, st.ins, st.err)
    (3, 1, 0, 1, 2)
    >>> print(format_table([("test", st)]))
    | dataset | Snt | Wrd | Corr | Sub | Del | Ins | Err | S.Err |
    |---|---|---|---|---|---|---|---|---|
    | test | 1 | 4 | 75.0 | 25.0 | 0.0 | 25.0 | 50.0 | 100.0 |
    >>> print(format_alignment(al[0]))       # sclite-style block, errors upper-cased
    id: (u1)
    Scores: (#C #S #D #I) 3 1 0 1
    REF:  a  B  c  d  ***
    HYP:  a  X  c  d  E
    Eval:    S        I

Percentages are of the reference length ``Wrd`` (``Err`` may exceed 100); ``S.Err`` is the percentage
of sentences with at least one error. :func:`score_files` writes ``result.txt`` and ``score.json``.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from ..utils.errors import ConfigError, DataError
from ..utils.fileio import atomic_open

log = logging.getLogger("speechkd")

UNITS = ("word", "phone", "char", "token")
COLUMNS = ("Snt", "Wrd", "Corr", "Sub", "Del", "Ins", "Err", "S.Err")

__all__ = ["ErrorStats", "UttAlignment", "split_units", "align", "score", "format_table", "format_alignment",
           "score_files", "UNITS", "COLUMNS"]


@dataclass
class ErrorStats:
    """Counts over a set of utterances (``dele`` = deletions; ``serr`` = sentences with an error)."""

    snt: int = 0
    wrd: int = 0
    corr: int = 0
    sub: int = 0
    dele: int = 0
    ins: int = 0
    serr: int = 0

    @property
    def err(self) -> int:
        return self.sub + self.dele + self.ins

    def __iadd__(self, o: "ErrorStats") -> "ErrorStats":
        for k in ("snt", "wrd", "corr", "sub", "dele", "ins", "serr"):
            setattr(self, k, getattr(self, k) + getattr(o, k))
        return self

    def _pct(self, n: int, d: int) -> float:
        return 100.0 * n / d if d else 0.0

    def percentages(self) -> Dict[str, float]:
        """``Corr Sub Del Ins Err`` as % of ``Wrd`` and ``S.Err`` as % of ``Snt`` (unrounded)."""
        return {"Corr": self._pct(self.corr, self.wrd), "Sub": self._pct(self.sub, self.wrd),
                "Del": self._pct(self.dele, self.wrd), "Ins": self._pct(self.ins, self.wrd),
                "Err": self._pct(self.err, self.wrd), "S.Err": self._pct(self.serr, self.snt)}

    @property
    def error_rate(self) -> float:
        return self.percentages()["Err"]

    def row(self, digits: int = 1) -> List[str]:
        p = self.percentages()
        return [str(self.snt), str(self.wrd)] + [f"{p[c]:.{digits}f}" for c in COLUMNS[2:]]

    def to_dict(self) -> dict:
        return {"Snt": self.snt, "Wrd": self.wrd, **{k: round(v, 4) for k, v in self.percentages().items()},
                "counts": {"corr": self.corr, "sub": self.sub, "del": self.dele, "ins": self.ins,
                           "err": self.err, "serr": self.serr}}

    @classmethod
    def from_dict(cls, d: Mapping) -> "ErrorStats":
        c = d["counts"]
        return cls(snt=d["Snt"], wrd=d["Wrd"], corr=c["corr"], sub=c["sub"], dele=c["del"], ins=c["ins"],
                   serr=c["serr"])


@dataclass
class UttAlignment:
    """One utterance's alignment: ``ops`` is a list of ``(op, ref_unit, hyp_unit)`` with op in
    ``C`` (correct), ``S``, ``D`` (hyp_unit None), ``I`` (ref_unit None)."""

    utt: str
    ops: List[Tuple[str, Optional[str], Optional[str]]] = field(default_factory=list)

    @property
    def stats(self) -> ErrorStats:
        n = {k: sum(1 for o in self.ops if o[0] == k) for k in "CSDI"}
        st = ErrorStats(snt=1, wrd=n["C"] + n["S"] + n["D"], corr=n["C"], sub=n["S"], dele=n["D"], ins=n["I"])
        st.serr = int(st.err > 0)
        return st


def split_units(text: str, unit: str = "word", tokenizer=None) -> List[str]:
    """Split a transcript into scoring units (see module doc)."""
    if unit in ("word", "phone"):
        return text.split()
    if unit == "char":
        return ["<space>" if c == " " else c for c in " ".join(text.split())]
    if unit == "token":
        if tokenizer is None:
            raise ConfigError("scoring unit 'token' needs a tokenizer")
        return tokenizer.tokens(text)
    raise ConfigError(f"unknown scoring unit '{unit}' (one of {', '.join(UNITS)})")


def _ops_from_chunks(ref: List[str], hyp: List[str], chunks) -> List[Tuple[str, Optional[str], Optional[str]]]:
    ops = []
    for ch in chunks:
        r, h = ref[ch.ref_start_idx:ch.ref_end_idx], hyp[ch.hyp_start_idx:ch.hyp_end_idx]
        if ch.type == "equal":
            ops += [("C", a, b) for a, b in zip(r, h)]
        elif ch.type == "substitute":
            ops += [("S", a, b) for a, b in zip(r, h)]
        elif ch.type == "delete":
            ops += [("D", a, None) for a in r]
        elif ch.type == "insert":
            ops += [("I", None, b) for b in h]
        else:  # pragma: no cover - jiwer only has these four
            raise RuntimeError(f"unknown jiwer chunk type {ch.type}")
    return ops


def align(refs: Mapping[str, str], hyps: Mapping[str, str], unit: str = "word",
          tokenizer=None) -> List[UttAlignment]:
    """Align each reference utterance with its hypothesis (missing hypothesis = empty), in ref order."""
    import jiwer

    out: List[UttAlignment] = []
    todo, todo_idx = ([], []), []
    for utt, ref_text in refs.items():
        r = split_units(ref_text, unit, tokenizer)
        h = split_units(hyps.get(utt, ""), unit, tokenizer)
        ua = UttAlignment(utt)
        if not r or not h:
            ua.ops = [("D", a, None) for a in r] + [("I", None, b) for b in h]
        else:
            todo[0].append(r)
            todo[1].append(h)
            todo_idx.append(len(out))
        out.append(ua)
    if todo_idx:
        res = jiwer.process_words([" ".join(r) for r in todo[0]], [" ".join(h) for h in todo[1]])
        for i, r, h, chunks in zip(todo_idx, todo[0], todo[1], res.alignments):
            out[i].ops = _ops_from_chunks(r, h, chunks)
    return out


def total(alignments: Sequence[UttAlignment]) -> ErrorStats:
    st = ErrorStats()
    for a in alignments:
        st += a.stats
    return st


def score(refs: Mapping[str, str], hyps: Mapping[str, str], unit: str = "word",
          tokenizer=None) -> Tuple[ErrorStats, List[UttAlignment]]:
    """Total :class:`ErrorStats` and per-utterance alignments of ``hyps`` against ``refs``."""
    al = align(refs, hyps, unit, tokenizer)
    return total(al), al


def format_table(rows: Sequence[Tuple[str, ErrorStats]], digits: int = 1) -> str:
    """ESPnet's markdown table: ``| dataset | Snt | Wrd | Corr | Sub | Del | Ins | Err | S.Err |``."""
    lines = ["| dataset | " + " | ".join(COLUMNS) + " |", "|" + "---|" * (len(COLUMNS) + 1)]
    for name, st in rows:
        lines.append(f"| {name} | " + " | ".join(st.row(digits)) + " |")
    return "\n".join(lines)


def format_alignment(ua: UttAlignment) -> str:
    """sclite ``pra``-style block: errors upper-cased, ``***`` for gaps, an ``Eval:`` line."""
    st = ua.stats
    ref, hyp, ev = [], [], []
    for op, r, h in ua.ops:
        if op == "C":
            r_s, h_s = r, h
        else:
            r_s = r.upper() if r is not None else "*" * max(3, len(h or ""))
            h_s = h.upper() if h is not None else "*" * max(3, len(r or ""))
        w = max(len(r_s), len(h_s))
        ref.append(r_s.ljust(w))
        hyp.append(h_s.ljust(w))
        ev.append(("" if op == "C" else op).ljust(w))
    return "\n".join([f"id: ({ua.utt})", f"Scores: (#C #S #D #I) {st.corr} {st.sub} {st.dele} {st.ins}",
                      "REF:  " + "  ".join(ref).rstrip(), "HYP:  " + "  ".join(hyp).rstrip(),
                      "Eval: " + "  ".join(ev).rstrip()])


def _read_text(path, allow_empty: bool) -> Dict[str, str]:
    from ..data.datadir import read_kv

    return dict(read_kv(path, allow_empty_value=allow_empty))


def score_files(ref_path, hyp_path, out_dir=None, units: Sequence[str] = ("word", "char"),
                utt2lang=None, tokenizer=None, name: Optional[str] = None,
                only_hyp_utts: bool = False) -> dict:
    """Score a hypothesis ``text`` file against a reference ``text``/``phones`` file.

    Writes ``out_dir/result.txt`` (tables, then each unit's per-utterance alignments) and
    ``out_dir/score.json`` ``{"name", "ref", "hyp", "units": {unit: stats}, "per_lang": {lang: {unit:
    stats}}}`` where stats is :meth:`ErrorStats.to_dict`. ``out_dir`` defaults to the hyp file's directory.
    A hypothesis for an utterance not in the reference is an error naming the hyp file and line;
    a missing hypothesis counts as empty (all deletions), unless ``only_hyp_utts``.
    """
    ref_path, hyp_path = Path(ref_path), Path(hyp_path)
    out_dir = Path(out_dir) if out_dir is not None else hyp_path.parent
    name = name or hyp_path.parent.name
    refs = _read_text(ref_path, allow_empty=False)
    hyps = _read_text(hyp_path, allow_empty=True)
    for n, utt in enumerate(hyps, 1):
        if utt not in refs:
            raise DataError(hyp_path, n, f"utterance '{utt}' not in the reference {ref_path}")
    if only_hyp_utts:
        refs = {u: t for u, t in refs.items() if u in hyps}
    missing = [u for u in refs if u not in hyps]
    if missing:
        log.warning("%s: %d of %d reference utterances have no hypothesis (scored as empty), e.g. %s",
                    hyp_path, len(missing), len(refs), missing[0])
    langs: Dict[str, str] = {}
    if utt2lang is not None:
        langs = _read_text(utt2lang, allow_empty=False)
        unknown = [u for u in refs if u not in langs]
        if unknown:
            raise DataError(utt2lang, None, f"utterance '{unknown[0]}' of {ref_path} has no language")
    result = {"name": name, "ref": str(ref_path), "hyp": str(hyp_path), "units": {}, "per_lang": {}}
    tables, blocks = [], []
    for unit in units:
        al = align(refs, hyps, unit, tokenizer)
        st = total(al)
        result["units"][unit] = st.to_dict()
        rows = [(name, st)]
        for lang in sorted(set(langs.values())):
            st_l = total([a for a in al if langs[a.utt] == lang])
            result["per_lang"].setdefault(lang, {})[unit] = st_l.to_dict()
            rows.append((f"{name}/{lang}", st_l))
        tables.append(f"## {unit}\n\n{format_table(rows)}\n")
        blocks.append(f"## {unit} alignments\n\n" + "\n\n".join(format_alignment(a) for a in al) + "\n")
        log.info("%s %s: Err %.2f%% (%d utts, %d %ss)", name, unit, st.error_rate, st.snt, st.wrd, unit)
    with atomic_open(out_dir / "result.txt") as f:
        f.write(f"# {name}\nref: {ref_path}\nhyp: {hyp_path}\n\n")
        f.write("\n".join(tables) + "\n" + "\n".join(blocks))
    with atomic_open(out_dir / "score.json") as f:
        json.dump(result, f, indent=1, ensure_ascii=False)
        f.write("\n")
    return result
