"""Natural sentences per language from installed Debian ``fortunes-*`` files (no network needed).

A fortune file holds entries separated by lines with a single ``%``. Entries are joined into one line,
attribution lines (``-- Author``) dropped, split into sentences, and filtered: 3..14 words, only the
letters of the language and basic punctuation, no digits/URLs, no ALL-CAPS words, no in-word hyphens
(espeak-ng speaks ``well-known`` as one word, which would make word times ambiguous), deduplicated by
their ASR-normalised form. Order is deterministic (sorted files, file order); shuffle downstream.

    >>> from speechkd.corpus.text_sources import load_sentences, normalize_text
    >>> sents = load_sentences("de")            # list of str, e.g. 'Der Klügere gibt nach.'
    >>> normalize_text("Don't panic, Arthur!")
    "don't panic arthur"

Languages: en, de, es, it, ru, pl, cs, ga (:data:`LANGUAGES`). A missing package gives an error that
names the ``apt-get install`` command.
"""
from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence

from ..utils.errors import SpeechkdError

FORTUNE_DIRS = ("/usr/share/games/fortunes", "/usr/share/fortunes")

_PUNCT = ".,;:!?\"'()«»„“”‘’–—…¿¡-"
_LATIN = "abcdefghijklmnopqrstuvwxyz"


def _both(s: str) -> str:
    return s + s.upper()


# letters allowed per language (lower + upper case)
LETTERS: Dict[str, str] = {
    "en": _both(_LATIN),
    "de": _both(_LATIN + "äöü") + "ß",
    "es": _both(_LATIN + "áéíóúüñ"),
    "it": _both(_LATIN + "àèéìíòóùú"),
    "ru": _both("абвгдеёжзийклмнопрстуфхцчшщъыьэюя"),
    "pl": _both(_LATIN + "ąćęłńóśźż"),
    "cs": _both(_LATIN + "áčďéěíňóřšťúůýž"),
    "ga": _both(_LATIN + "áéíóú"),
}

# where each language's fortunes live: (subdirectory or "", file names or None = all files there)
_EN_FILES = ("fortunes", "wisdom", "platitudes", "people", "humorists", "literature", "love", "education",
             "science", "work", "food", "pets", "kids", "law", "medicine", "politics", "songs-poems",
             "sports", "miscellaneous", "men-women", "magic", "goedel", "paradoxum", "pratchett", "riddles",
             "startrek", "tao", "zippy", "computers", "definitions", "linux", "cookie", "drugs", "ethnic",
             "disclaimer", "debian", "news", "art")
SOURCES: Dict[str, tuple] = {
    "en": ("", _EN_FILES),
    "de": ("de", None), "es": ("es", None), "it": ("it", None), "ru": ("ru", None),
    "pl": ("pl", None), "cs": ("cs", None), "ga": ("ga", None),
}
# files that are another language or not prose
_SKIP = {"cs": {"klasik-sk"}, "de": {"asciiart"}}
APT_PACKAGES: Dict[str, str] = {
    "en": "fortunes", "de": "fortunes-de", "es": "fortunes-es", "it": "fortunes-it",
    "ru": "fortunes-ru", "pl": "fortunes-pl", "cs": "fortunes-cs", "ga": "fortunes-ga",
}
LANGUAGES = tuple(SOURCES)

_ATTRIBUTION = re.compile(r"^\s*(--|—|–|~~)\s*\S")
_SENT_SPLIT = re.compile(r"(?<=[.!?…])[\"'»”’)]*\s+")
_DIGIT_URL = re.compile(r"[0-9]|www|http|@|/|\\|_|\*|=|#|<|>|\[|\]|&|\||\$|%")


def fortune_root() -> Optional[Path]:
    for d in FORTUNE_DIRS:
        if Path(d).is_dir():
            return Path(d)
    return None


def fortune_files(lang: str) -> List[Path]:
    """Sorted list of the fortune files of ``lang``; raises SpeechkdError naming the apt package."""
    if lang not in SOURCES:
        raise SpeechkdError(f"no text source for language '{lang}' (have: {', '.join(LANGUAGES)})")
    root = fortune_root()
    sub, names = SOURCES[lang]
    files: List[Path] = []
    if root is not None:
        d = root / sub if sub else root
        if d.is_dir():
            cands = [d / n for n in names] if names else sorted(d.iterdir())
            for p in cands:
                if (p.is_file() and not p.is_symlink() and p.suffix not in (".dat", ".u8")
                        and p.name not in _SKIP.get(lang, ())):
                    files.append(p)
    if not files:
        raise SpeechkdError(f"no fortune texts for language '{lang}' under {' or '.join(FORTUNE_DIRS)}: "
                            f"install them with 'apt-get install -y {APT_PACKAGES[lang]}'")
    return sorted(files)


def read_fortunes(path) -> Iterator[str]:
    """Yield the entries of one fortune file, each joined into one whitespace-normalised line."""
    raw = Path(path).read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    entry: List[str] = []
    for line in text.splitlines():
        if line.strip() == "%":
            if entry:
                yield " ".join(" ".join(entry).split())
            entry = []
        elif not _ATTRIBUTION.match(line):
            entry.append(line)
    if entry and " ".join(entry).strip():
        yield " ".join(" ".join(entry).split())


def split_sentences(entry: str) -> List[str]:
    """Split one entry into sentences at ``.``/``!``/``?``/``…`` followed by whitespace."""
    return [s.strip() for s in _SENT_SPLIT.split(entry) if s.strip()]


def normalize_text(text: str) -> str:
    """ASR form: NFC, lower case, punctuation removed except in-word apostrophes, single spaces."""
    text = unicodedata.normalize("NFC", text).replace("’", "'").replace("‘", "'").lower()
    out = []
    for tok in text.split():
        tok = "".join(c for c in tok if c.isalpha() or c == "'").strip("'")
        if tok:
            out.append(tok)
    return " ".join(out)


def clean_words(sent: str, lang: str, min_words: int, max_words: int) -> Optional[List[str]]:
    """The words of ``sent`` if it uses only ``lang``'s letters and basic punctuation (no digits, URLs,
    brackets) and has ``min_words..max_words`` words, else None (shared by the corpus and pool filters)."""
    allowed = set(LETTERS[lang]) | set(_PUNCT) | {" "}
    if _DIGIT_URL.search(sent) or "(" in sent or ")" in sent or any(c not in allowed for c in sent):
        return None
    words = sent.split()
    return words if min_words <= len(words) <= max_words else None


def is_good_sentence(sent: str, lang: str, min_words: int = 3, max_words: int = 14) -> bool:
    """The corpus filter (see module docstring)."""
    words = clean_words(sent, lang, min_words, max_words)
    if words is None:
        return False
    if not sent[-1] in ".!?…\"'»”’":
        return False
    first = next((c for c in sent if c.isalpha()), "")
    if not first or not first.isupper():
        return False
    for w in words:
        letters = "".join(c for c in w if c.isalpha())
        if len(letters) >= 2 and letters.isupper():
            return False  # ALL-CAPS word or acronym
        core = w.strip(_PUNCT)
        if any(not (c.isalpha() or c == "'") for c in core):
            return False  # in-word hyphen or other punctuation inside a word ('d(ie)')
        if not core and w not in ("-", "–", "—"):
            return False  # stray punctuation token like '?!'
    norm = normalize_text(sent).split()
    return len(norm) >= min_words


def load_sentences(lang: str, min_words: int = 3, max_words: int = 14,
                   files: Optional[Sequence] = None) -> List[str]:
    """Filtered, deduplicated sentences of ``lang`` in deterministic order (whitespace-normalised, NFC)."""
    files = fortune_files(lang) if files is None else [Path(f) for f in files]
    seen, out = set(), []
    for path in files:
        for entry in read_fortunes(path):
            for sent in split_sentences(unicodedata.normalize("NFC", entry)):
                sent = sent.replace("’", "'").replace("‘", "'")
                if not is_good_sentence(sent, lang, min_words, max_words):
                    continue
                key = normalize_text(sent)
                if key in seen:
                    continue
                seen.add(key)
                out.append(sent)
    return out
