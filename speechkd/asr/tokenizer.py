"""Tokenizers for CTC targets: characters, space-separated units (phones), SentencePiece.

Every tokenizer reserves id 0 for the CTC blank (``<blank>``) and id 1 for ``<unk>``; the other units
follow. A tokenizer directory holds ``units.txt`` (``unit id`` per line), ``tokenizer.yaml`` (kind and
options) and, for SentencePiece, ``sp.model``::

    >>> tok = build_tokenizer("phone", ["h ə l oʊ", "w ɜː l d"], "data/token_phone")
    >>> tok.encode("h ə l d")              # -> [id(h), id(ə), id(l), id(d)]
    >>> tok.decode(tok.encode("h ə l d"))
    'h ə l d'
    >>> tok = load_tokenizer("data/token_phone")   # same tokenizer again
    >>> tok.vocab_size, tok.blank_id, tok.unk_id
    (9, 0, 1)

Characters: the space is the unit ``<space>`` (or ``▁`` with ``space_symbol="▁"``), so
``CharTokenizer.decode`` restores word boundaries. Text is used as given (no case folding).

Units that are not in the vocabulary map to ``<unk>``; each tokenizer counts them (``unk_count``) and
logs a warning for the first few. With ``strict=True`` (or ``encode(..., strict=True)``) an unknown unit
is a :class:`~speechkd.utils.errors.DataError` naming the utterance (``where=`` e.g. ``"data/x/text:3"``).
"""
from __future__ import annotations

import logging
import shutil
from collections import Counter
from pathlib import Path
from typing import Iterable, List, Optional, Sequence

import yaml

from ..utils.errors import ConfigError, DataError
from ..utils.fileio import atomic_open, atomic_path

log = logging.getLogger("speechkd")

BLANK = "<blank>"
UNK = "<unk>"
SPACE = "<space>"
SP_SPACE = "\u2581"  # "▁"
_MAX_WARNINGS = 5

__all__ = ["Tokenizer", "CharTokenizer", "PhoneTokenizer", "SentencePieceTokenizer", "load_tokenizer",
           "build_tokenizer", "read_units", "BLANK", "UNK"]


def read_units(path) -> List[str]:
    """Read ``units.txt`` (``unit id`` lines, ids 0..V-1 in order) into a list indexed by id."""
    path = Path(path)
    if not path.exists():
        raise DataError(path, None, "file not found")
    units: List[str] = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            parts = line.split()
            if len(parts) != 2 or not parts[1].isdigit():
                raise DataError(path, n, f"expected 'unit id', got {line.strip()!r}")
            if int(parts[1]) != len(units):
                raise DataError(path, n, f"ids must be 0,1,2,... in order; got {parts[1]} at position {len(units)}")
            units.append(parts[0])
    if len(units) < 2 or units[0] != BLANK or units[1] != UNK:
        raise DataError(path, None, f"first units must be {BLANK} 0 and {UNK} 1")
    return units


class Tokenizer:
    """Base class: a unit list with ``<blank>`` = 0 and ``<unk>`` = 1; subclasses define splitting/joining.

    Args:
        units: all units in id order, starting with ``<blank>``, ``<unk>``.
        strict: raise DataError on unknown units instead of mapping them to ``<unk>``.
    """

    kind = "base"

    def __init__(self, units: Sequence[str], strict: bool = False):
        units = list(units)
        if units[:2] != [BLANK, UNK]:
            raise ConfigError(f"tokenizer units must start with {BLANK}, {UNK}; got {units[:2]}")
        if len(set(units)) != len(units):
            dup = [u for u, c in Counter(units).items() if c > 1]
            raise ConfigError(f"duplicate tokenizer units: {dup[:5]}")
        self.units = units
        self.unit2id = {u: i for i, u in enumerate(units)}
        self.strict = strict
        self.unk_count = 0
        self.unk_units: Counter = Counter()

    # ---------------------------------------------------------------- properties
    @property
    def vocab_size(self) -> int:
        return len(self.units)

    @property
    def blank_id(self) -> int:
        return 0

    @property
    def unk_id(self) -> int:
        return 1

    def __len__(self) -> int:
        return len(self.units)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(vocab_size={self.vocab_size})"

    # ---------------------------------------------------------------- to implement
    def split(self, text: str) -> List[str]:
        """Text → list of unit strings (may contain units outside the vocabulary)."""
        raise NotImplementedError

    def join(self, units: Sequence[str]) -> str:
        """List of unit strings → text."""
        raise NotImplementedError

    def _options(self) -> dict:
        return {}

    # ---------------------------------------------------------------- shared
    def _lookup(self, units: Sequence[str], where: str, strict: Optional[bool]) -> List[int]:
        strict = self.strict if strict is None else strict
        ids = []
        for u in units:
            i = self.unit2id.get(u)
            if i is None or i == self.blank_id:
                if strict:
                    raise DataError(where or "<text>", None, f"unknown unit {u!r} (not in the {self.kind} vocabulary)")
                self.unk_count += 1
                self.unk_units[u] += 1
                if self.unk_count <= _MAX_WARNINGS:
                    log.warning("%sunknown unit %r mapped to %s%s", f"{where}: " if where else "", u, UNK,
                                " (further warnings suppressed)" if self.unk_count == _MAX_WARNINGS else "")
                i = self.unk_id
            ids.append(i)
        return ids

    def encode(self, text: str, where: str = "", strict: Optional[bool] = None) -> List[int]:
        """Text → list of ids (never containing the blank). ``where`` names the utterance in messages."""
        return self._lookup(self.split(text), where, strict)

    def tokens(self, text: str) -> List[str]:
        """Text → unit strings as the model sees them (unknown units replaced by ``<unk>``)."""
        return [self.units[i] for i in self.encode(text)]

    def ids_to_units(self, ids: Iterable[int]) -> List[str]:
        return [self.units[int(i)] for i in ids if int(i) != self.blank_id]

    def decode(self, ids: Iterable[int]) -> str:
        """List of ids → text (blanks dropped; no CTC collapsing, see :mod:`speechkd.asr.ctc_search`)."""
        return self.join(self.ids_to_units(ids))

    def unk_report(self) -> str:
        """One line summarising unknown units seen so far (empty if none)."""
        if not self.unk_count:
            return ""
        top = ", ".join(f"{u!r}×{c}" for u, c in self.unk_units.most_common(10))
        return f"{self.unk_count} unknown units mapped to {UNK}: {top}"

    def save(self, out_dir) -> Path:
        """Write ``units.txt`` and ``tokenizer.yaml`` (atomically) into ``out_dir``; returns the dir."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        with atomic_open(out_dir / "units.txt") as f:
            for i, u in enumerate(self.units):
                f.write(f"{u} {i}\n")
        with atomic_open(out_dir / "tokenizer.yaml") as f:
            yaml.safe_dump({"kind": self.kind, "vocab_size": self.vocab_size, **self._options()}, f,
                           sort_keys=False, allow_unicode=True)
        return out_dir


class CharTokenizer(Tokenizer):
    """Characters; the space becomes ``space_symbol`` (``<space>`` or ``▁``), runs of spaces collapse."""

    kind = "char"

    def __init__(self, units: Sequence[str], space_symbol: str = SPACE, strict: bool = False):
        super().__init__(units, strict)
        self.space_symbol = space_symbol

    def split(self, text: str) -> List[str]:
        return [self.space_symbol if c == " " else c for c in " ".join(text.split())]

    def join(self, units: Sequence[str]) -> str:
        return " ".join("".join(" " if u == self.space_symbol else u for u in units).split())

    def _options(self) -> dict:
        return {"space_symbol": self.space_symbol}


class PhoneTokenizer(Tokenizer):
    """Whitespace-separated units (e.g. IPA phones from a data dir's ``phones`` file)."""

    kind = "phone"

    def split(self, text: str) -> List[str]:
        return text.split()

    def join(self, units: Sequence[str]) -> str:
        return " ".join(units)


class SentencePieceTokenizer(Tokenizer):
    """SentencePiece (unigram or bpe) model; SentencePiece id ``i`` is our id ``i + 1`` (blank is 0).

    SentencePiece is trained with ``unk_id=0`` and no bos/eos, so its ``<unk>`` lands on our id 1.
    """

    kind = "sentencepiece"

    def __init__(self, model_file, strict: bool = False):
        import sentencepiece as spm

        self.model_file = Path(model_file)
        if not self.model_file.exists():
            raise ConfigError(f"{self.model_file}: sentencepiece model not found")
        self.sp = spm.SentencePieceProcessor(model_file=str(self.model_file))
        pieces = [self.sp.id_to_piece(i) for i in range(self.sp.get_piece_size())]
        if self.sp.unk_id() != 0:
            raise ConfigError(f"{self.model_file}: expected unk_id 0 in the sentencepiece model")
        super().__init__([BLANK, UNK, *pieces[1:]], strict)

    def split(self, text: str) -> List[str]:
        return self.sp.encode(" ".join(text.split()), out_type=str)

    def encode(self, text: str, where: str = "", strict: Optional[bool] = None) -> List[int]:
        strict = self.strict if strict is None else strict
        text = " ".join(text.split())
        ids = [i + 1 for i in self.sp.encode(text)]
        if self.unk_id in ids:
            # name the characters sentencepiece could not cover
            unknown = [c for c in text if c != " " and self.sp.piece_to_id(c) == self.sp.unk_id()
                       and all(self.sp.piece_to_id(p) == 0 for p in (c, SP_SPACE + c))]
            n = ids.count(self.unk_id)
            if strict:
                raise DataError(where or "<text>", None, f"unknown characters {''.join(sorted(set(unknown)))!r}")
            self.unk_count += n
            self.unk_units.update(["".join(sorted(set(unknown))) or "?"] * n)
            if self.unk_count - n < _MAX_WARNINGS:
                log.warning("%s%d unknown piece(s) (characters %r) mapped to %s", f"{where}: " if where else "",
                            n, "".join(sorted(set(unknown))), UNK)
        return ids

    def join(self, units: Sequence[str]) -> str:
        return " ".join("".join(units).replace(SP_SPACE, " ").split())

    def decode(self, ids: Iterable[int]) -> str:
        """Ids → text via SentencePiece (an ``<unk>`` piece decodes to SentencePiece's ``⁇``)."""
        pieces = [int(i) - 1 for i in ids if int(i) != self.blank_id]
        return " ".join(self.sp.decode(pieces).split())

    def _options(self) -> dict:
        return {"model": "sp.model"}

    def save(self, out_dir) -> Path:
        out_dir = super().save(out_dir)
        dst = out_dir / "sp.model"
        if self.model_file.resolve() != dst.resolve():
            with atomic_path(dst) as tmp:
                shutil.copyfile(self.model_file, tmp)
        return out_dir


# -------------------------------------------------------------------------------------------- factory
def _vocab(unit_lists: Iterable[Sequence[str]], min_count: int = 1) -> List[str]:
    counts: Counter = Counter()
    for units in unit_lists:
        counts.update(units)
    keep = sorted(u for u, c in counts.items() if c >= min_count and u not in (BLANK, UNK))
    return [BLANK, UNK, *keep]


def train_sentencepiece(texts: Iterable[str], out_dir, vocab_size: int = 100, model_type: str = "unigram",
                        character_coverage: float = 1.0, seed_sentencepiece_size: int = 100000) -> Path:
    """Train a SentencePiece model into ``out_dir/sp.model`` (``hard_vocab_limit=False`` for tiny data)."""
    import sentencepiece as spm

    if model_type not in ("unigram", "bpe", "char", "word"):
        raise ConfigError(f"unknown sentencepiece model_type '{model_type}'")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = [" ".join(t.split()) for t in texts]
    lines = [t for t in lines if t]
    if not lines:
        raise ConfigError("no text to train the sentencepiece model on")
    # our blank takes id 0, so sentencepiece gets vocab_size - 1 pieces
    with atomic_path(out_dir / "sp.model") as tmp_model:
        prefix = tmp_model[: -len(".model")] if tmp_model.endswith(".model") else tmp_model
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(lines), model_prefix=prefix, vocab_size=max(vocab_size - 1, 4),
            model_type=model_type, character_coverage=character_coverage, hard_vocab_limit=False,
            unk_id=0, bos_id=-1, eos_id=-1, pad_id=-1, minloglevel=2,
            seed_sentencepiece_size=seed_sentencepiece_size, num_threads=1)
        Path(prefix + ".model").replace(tmp_model)
        Path(prefix + ".vocab").unlink(missing_ok=True)
    return out_dir / "sp.model"


def build_tokenizer(kind: str, texts: Iterable[str], out_dir=None, **opts) -> Tokenizer:
    """Build a tokenizer of ``kind`` (``char``, ``phone``, ``sentencepiece``/``bpe``/``unigram``) from texts.

    Options: ``min_count`` (char/phone), ``space_symbol`` (char), ``vocab_size``, ``model_type``,
    ``character_coverage`` (sentencepiece), ``strict``. With ``out_dir`` the tokenizer is also saved there.
    """
    texts = list(texts)
    strict = bool(opts.pop("strict", False))
    if kind == "char":
        space = opts.pop("space_symbol", SPACE)
        probe = CharTokenizer([BLANK, UNK], space_symbol=space)
        tok: Tokenizer = CharTokenizer(_vocab((probe.split(t) for t in texts), opts.pop("min_count", 1)),
                                       space_symbol=space, strict=strict)
    elif kind == "phone":
        tok = PhoneTokenizer(_vocab((t.split() for t in texts), opts.pop("min_count", 1)), strict=strict)
    elif kind in ("sentencepiece", "bpe", "unigram"):
        model_type = opts.pop("model_type", "unigram" if kind != "bpe" else "bpe")
        if out_dir is None:
            raise ConfigError("a sentencepiece tokenizer needs out_dir to hold its model")
        model = train_sentencepiece(texts, out_dir, vocab_size=int(opts.pop("vocab_size", 100)),
                                    model_type=model_type,
                                    character_coverage=float(opts.pop("character_coverage", 1.0)))
        tok = SentencePieceTokenizer(model, strict=strict)
    else:
        raise ConfigError(f"unknown tokenizer kind '{kind}' (char, phone, sentencepiece, bpe, unigram)")
    opts.pop("vocab_size", None)  # meaningful only for sentencepiece
    if opts:
        raise ConfigError(f"unknown options for a {kind} tokenizer: {sorted(opts)}")
    if out_dir is not None:
        tok.save(out_dir)
    return tok


def load_tokenizer(tok_dir, strict: bool = False) -> Tokenizer:
    """Load a tokenizer saved by :meth:`Tokenizer.save` / :func:`build_tokenizer`."""
    tok_dir = Path(tok_dir)
    cfg_path = tok_dir / "tokenizer.yaml"
    if not cfg_path.exists():
        raise ConfigError(f"{cfg_path}: tokenizer config not found")
    cfg = yaml.safe_load(cfg_path.read_text(encoding="utf-8")) or {}
    kind = cfg.get("kind")
    if kind == "sentencepiece":
        tok: Tokenizer = SentencePieceTokenizer(tok_dir / cfg.get("model", "sp.model"), strict=strict)
    else:
        units = read_units(tok_dir / "units.txt")
        if kind == "char":
            tok = CharTokenizer(units, space_symbol=cfg.get("space_symbol", SPACE), strict=strict)
        elif kind == "phone":
            tok = PhoneTokenizer(units, strict=strict)
        else:
            raise ConfigError(f"{cfg_path}: unknown tokenizer kind {kind!r}")
    if "vocab_size" in cfg and int(cfg["vocab_size"]) != tok.vocab_size:
        raise ConfigError(f"{cfg_path}: vocab_size {cfg['vocab_size']} but the units give {tok.vocab_size}")
    return tok
