"""A text-only pool per corpus language from text installed on the machine, outside every mini transcript.

The mini text teachers of the recipes learn from the speech corpus's own transcripts; the zoo's
multilingual text teacher learns from this pool instead. Sources (all read offline from Debian packages):

* ``fortunes``: the fortunes sentences that no mini recipe transcribes: each language's sentence list
  (:func:`speechkd.corpus.text_sources.load_sentences`) is shuffled exactly as the mini corpora shuffle
  it (``random.Random(f"{seed}:{lang}")``) and the first ``skip`` (1500) are left out for every seed given;
* ``man``: manual pages (``/usr/share/man/<lang>/``, English: ``/usr/share/man/man*``), roff markup
  stripped by a small parser of our own, paragraphs split into sentences;
* ``gettext``: the translated strings (``msgstr``) of the gettext catalogues (``*/<lang>/LC_MESSAGES/*.mo``
  under /usr/share/locale, LibreOffice's and vim's resource folders); for English the ``msgid`` strings
  of every catalogue (they are the English originals).

Every line is NFC, split into sentences, filtered (:func:`is_pool_sentence`: only the language's letters
and basic punctuation, no digits/markup/URLs, 3..40 words, no ALL-CAPS words, no in-word punctuation, and
for Latin-script languages a stop-word check that rejects lines that look more like another corpus
language, e.g. untranslated English paragraphs of a German man page), written in the ASR-normalised form
(:func:`~speechkd.corpus.text_sources.normalize_text`) and deduplicated. Any line whose normalised form is
an excluded sentence (the skipped fortunes of every language, and every line of the ``exclude`` files,
plain or Kaldi ``utt words``) is dropped, whatever its source.

    >>> from speechkd.corpus.text_pool import build_text_pool
    >>> stats = build_text_pool("data/text_pool", ["en", "de", "ga"], exclude_files=["data/train/text"])
    >>> stats["de"]["sentences"], stats["de"]["words"]

Output: ``<out>/<lang>`` (one sentence a line), ``<out>/text`` (all languages, in language order),
``<out>/stats.json``; every file written atomically. A missing source package raises an error naming the
``apt-get install`` command.
"""
from __future__ import annotations

import glob
import gzip
import json
import logging
import random
import re
import struct
import unicodedata
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Set

from ..utils.errors import SpeechkdError
from ..utils.fileio import atomic_open
from .text_sources import LETTERS, _PUNCT, clean_words, load_sentences, normalize_text, split_sentences

log = logging.getLogger("speechkd")

SOURCES = ("fortunes", "man", "gettext")
# Debian packages each language's man pages / catalogues come from (named in the error when missing)
MAN_PACKAGES: Dict[str, str] = {"en": "manpages", "de": "manpages-de manpages-de-dev",
                                "es": "manpages-es manpages-es-dev", "it": "manpages-it manpages-it-dev",
                                "ru": "manpages-ru manpages-ru-dev", "pl": "manpages-pl manpages-pl-dev"}
GETTEXT_PACKAGES: Dict[str, str] = {"ga": "libreoffice-l10n-ga"}
MAN_ROOT = "/usr/share/man"
LOCALE_ROOTS = ("/usr/share/locale", "/usr/share/locale-langpack", "/usr/lib/libreoffice/program/resource",
                "/usr/share/vim/vim*/lang")

# a few very frequent function words per Latin-script language (for the "is it this language" check)
STOPWORDS: Dict[str, Set[str]] = {
    "en": set("the of and to in is that it for you are with this be on not as can by or from an if "
              "will which your all have was".split()),
    "de": set("der die das und ist nicht ein eine zu den mit von sich des auf für im dem wird werden "
              "sie es oder wenn kann auch als bei".split()),
    "es": set("el la los las de que y en un una es se por con para del al no lo como más su o si "
              "este esta puede".split()),
    "it": set("il lo la gli le di che e è un una per non con del della si da in dei delle sono al "
              "come questo può".split()),
    "pl": set("i w nie na się z do to że jest jak o co po przez od za dla lub jeśli są może być "
              "oraz ten".split()),
    "ga": set("an na agus ar i is a le go do ag sé sí níl tá bhí ní atá seo sin mar".split()),
}
_LATIN_LANGS = tuple(STOPWORDS)


# --------------------------------------------------------------------------------------- filter
def is_pool_sentence(sent: str, lang: str, min_words: int = 3, max_words: int = 40) -> bool:
    """True if ``sent`` (NFC, straight apostrophes) is a clean sentence of ``lang`` for the pool."""
    if lang not in LETTERS:
        raise SpeechkdError(f"no letter set for language '{lang}' (have: {', '.join(LETTERS)})")
    words = clean_words(sent, lang, min_words, max_words)
    if words is None:
        return False
    n_norm = 0
    for w in words:
        letters = "".join(c for c in w if c.isalpha())
        if len(letters) >= 2 and letters.isupper():
            return False  # ALL-CAPS word, acronym, option name
        core = w.strip(_PUNCT)
        if any(not (c.isalpha() or c == "'") for c in core) or (w[0] in "-–—" and core):
            return False  # in-word hyphen/punctuation, options (-v, --force), compounds normalize_text glues
        if not core and w not in ("-", "–", "—"):
            return False
        n_norm += bool(core)
    if n_norm < min_words:
        return False
    if lang in _LATIN_LANGS:
        toks = normalize_text(sent).split()
        own = sum(t in STOPWORDS[lang] for t in toks)
        other = max(sum(t in STOPWORDS[o] for t in toks) for o in _LATIN_LANGS if o != lang)
        if other > own:
            return False
    return True


# ------------------------------------------------------------------------------------- roff text
_ROFF_NAMED = {"aq": "'", "cq": "'", "oq": "'", "dq": '"', "lq": "“", "rq": "”", "Fo": "«", "Fc": "»",
               "em": "—", "en": "–", "hy": "-", "ha": "^", "ti": "~", "bu": "", "co": "", "rg": ""}
_ROFF_ESC = re.compile(r"\\(?:"
                       r"f(?:\[[^\]]*\]|\(..|.)"          # font changes
                       r"|\*(?:\[[^\]]*\]|\(..|.)"        # string variables (dropped)
                       r"|s[-+]?(?:\d+|\(\d\d|\[\d+\])"   # size changes
                       r"|\((..)"                         # \(xx named characters
                       r"|\[([^\]]*)\]"                   # \[name] named characters
                       r"|[nkgYV](?:\[[^\]]*\]|\(..|.)"   # registers, marks
                       r"|[hvwlLDxXNobZ]'[^']*'"          # drawing/motion with an argument
                       r"|.)")                            # any other one-character escape
_ROFF_SIMPLE = {"-": "-", "e": "\\", " ": " ", "~": " ", "0": " ", "&": "", "|": "", "^": "", "%": "",
                "c": "", ":": "", "/": "", ",": "", "t": " ", "'": "'", "`": "`", ".": ".", '"': ""}
_INLINE_MACROS = {"B", "I", "BR", "BI", "IB", "IR", "RB", "RI", "SM", "SB", "UR", "UE", "MT", "ME"}


def _roff_unescape(text: str) -> str:
    def sub(m):
        s = m.group(0)
        name = m.group(1) or m.group(2)
        if name is not None:
            return _ROFF_NAMED.get(name, "\x00")  # unknown glyph: poison the sentence
        if s[1] in "f*snkgYVhvwlLDxXNobZ":
            return ""
        return _ROFF_SIMPLE.get(s[1:], "\x00")

    return _ROFF_ESC.sub(sub, text)


def _macro_args(rest: str) -> List[str]:
    return [a.strip('"') for a in re.findall(r'"[^"]*"|\S+', rest)]


def roff_paragraphs(source: str) -> Iterator[str]:
    """Plain-text paragraphs of a man page written in roff (man or mdoc macros)."""
    para: List[str] = []

    def flush():
        text = " ".join(" ".join(para).split())
        para.clear()
        return text

    nofill = False
    for line in source.splitlines():
        if line.startswith(('.\\"', "'\\\"", '\\"')):
            continue
        if line[:1] in (".", "'"):
            parts = line[1:].strip().split(None, 1)
            name = parts[0] if parts else ""
            if name in ("nf", "EX"):
                nofill = True
            elif name in ("fi", "EE"):
                nofill = False
            if name in _INLINE_MACROS and len(parts) > 1 and not nofill:
                args = _macro_args(parts[1])
                para.append(("" if len(name) == 2 and name not in ("SM", "SB") else " ").join(args))
                continue
            text = flush()
            if text:
                yield text
            continue
        if nofill:
            continue  # examples, tables, code
        para.append(line)
    text = flush()
    if text:
        yield text


def read_man_page(path) -> str:
    raw = Path(path).read_bytes()
    if str(path).endswith(".gz"):
        raw = gzip.decompress(raw)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def man_files(lang: str, root: str = MAN_ROOT) -> List[Path]:
    """Sorted man page files of ``lang`` (real files, no symlinks); raises naming the apt package."""
    base = Path(root) if lang == "en" else Path(root) / lang
    files = sorted(p for p in base.glob("man*/*") if p.is_file() and not p.is_symlink())
    if not files and lang in MAN_PACKAGES:
        raise SpeechkdError(f"no man pages for '{lang}' under {base}: install them with "
                            f"'apt-get install -y {MAN_PACKAGES[lang]}'")
    return files


def man_text(lang: str, root: str = MAN_ROOT) -> Iterator[str]:
    for path in man_files(lang, root):
        try:
            src = read_man_page(path)
        except (OSError, EOFError, gzip.BadGzipFile) as e:
            log.warning("skipping unreadable man page %s: %s", path, e)
            continue
        for para in roff_paragraphs(src):
            yield _roff_unescape(para)


# --------------------------------------------------------------------------------------- gettext
def read_mo(path) -> List[tuple]:
    """``[(msgid, msgstr), ...]`` of a GNU ``.mo`` catalogue (plural forms split on NUL; header dropped)."""
    data = Path(path).read_bytes()
    if len(data) < 20:
        raise SpeechkdError(f"{path}: not a gettext .mo file (too short)")
    magic = struct.unpack("<I", data[:4])[0]
    end = "<" if magic == 0x950412DE else ">" if magic == 0xDE120495 else None
    if end is None:
        raise SpeechkdError(f"{path}: not a gettext .mo file (bad magic {magic:#x})")
    _, n, off_orig, off_trans = struct.unpack(end + "4I", data[4:20])
    out = []
    for i in range(n):
        lo, oo = struct.unpack(end + "2I", data[off_orig + 8 * i: off_orig + 8 * i + 8])
        lt, ot = struct.unpack(end + "2I", data[off_trans + 8 * i: off_trans + 8 * i + 8])
        msgid, msgstr = data[oo: oo + lo], data[ot: ot + lt]
        if not msgid:
            continue  # header
        msgid = msgid.split(b"\x04")[-1]  # drop the msgctxt
        out.append((msgid.decode("utf-8", "replace"), msgstr.decode("utf-8", "replace")))
    return out


def mo_files(lang: str, roots: Sequence[str] = LOCALE_ROOTS) -> List[Path]:
    """Catalogues of ``lang`` (``<root>/<lang>[_XX][@variant]/LC_MESSAGES/*.mo``); for ``en``: all of them."""
    files: Set[Path] = set()
    for root in roots:
        for d in glob.glob(root):
            pats = ["*"] if lang == "en" else [lang, f"{lang}_*", f"{lang}@*"]
            for pat in pats:
                files.update(Path(p) for p in glob.glob(f"{d}/{pat}/LC_MESSAGES/*.mo"))
    files = {p for p in files if p.is_file()}
    if not files and lang in GETTEXT_PACKAGES:
        raise SpeechkdError(f"no gettext catalogues for '{lang}': install them with "
                            f"'apt-get install -y {GETTEXT_PACKAGES[lang]}'")
    return sorted(files)


def gettext_text(lang: str, roots: Sequence[str] = LOCALE_ROOTS) -> Iterator[str]:
    seen_ids: Set[str] = set()
    for path in mo_files(lang, roots):
        try:
            pairs = read_mo(path)
        except (OSError, struct.error, SpeechkdError) as e:
            log.warning("skipping unreadable catalogue %s: %s", path, e)
            continue
        for msgid, msgstr in pairs:
            strings = msgid.split("\x00") if lang == "en" else msgstr.split("\x00")
            for s in strings:
                if lang == "en":
                    if s in seen_ids:
                        continue
                    seen_ids.add(s)
                for line in s.replace("\\n", "\n").splitlines():
                    yield line.replace("_", "").replace("~", "").replace("&", "")


# ------------------------------------------------------------------------------------- fortunes
def fortune_split(lang: str, skip: int = 1500, seeds: Sequence[int] = (1,), min_words: int = 3,
                  max_words: int = 14):
    """``(excluded, kept)`` fortunes of ``lang``: a sentence is excluded when it is among the first
    ``skip`` of the mini-corpus shuffle of any of ``seeds`` (the recipes' transcripts come from there)."""
    sents = load_sentences(lang, min_words, max_words)
    excluded: Set[str] = set()
    for seed in seeds:
        pool = list(sents)
        random.Random(f"{seed}:{lang}").shuffle(pool)
        excluded.update(pool[:skip])
    return sorted(excluded), [s for s in sents if s not in excluded]


def read_exclude_file(path) -> Set[str]:
    """Normalised forms of the lines of a plain or Kaldi ``text`` file (both the whole line and the line
    without its first field are taken, so either format works)."""
    out: Set[str] = set()
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            out.add(normalize_text(line))
            parts = line.split(maxsplit=1)
            if len(parts) == 2:
                out.add(normalize_text(parts[1]))
    out.discard("")
    return out


# ---------------------------------------------------------------------------------------- build
def pool_sentences(lines: Iterable[str], lang: str, exclude: Set[str], seen: Set[str],
                   min_words: int = 3, max_words: int = 40) -> Iterator[str]:
    """Normalised, filtered, new (not in ``seen``/``exclude``) sentences of ``lines``; updates ``seen``."""
    for line in lines:
        line = unicodedata.normalize("NFC", line).replace("’", "'").replace("‘", "'")
        for sent in split_sentences(" ".join(line.split())):
            if not is_pool_sentence(sent, lang, min_words, max_words):
                continue
            norm = normalize_text(sent)
            if norm in seen or norm in exclude:
                continue
            seen.add(norm)
            yield norm


def build_text_pool(out_dir, languages: Sequence[str], sources: Sequence[str] = SOURCES,
                    exclude_files: Sequence = (), fortune_skip: int = 1500, fortune_seeds: Sequence[int] = (1,),
                    min_words: int = 3, max_words: int = 40, man_root: str = MAN_ROOT,
                    locale_roots: Sequence[str] = LOCALE_ROOTS, text_sources: Optional[dict] = None) -> dict:
    """Write the pool (see module doc) and return ``{lang: {"sentences", "words", "by_source": {...}},
    "total": {...}, "excluded": n}``.

    ``text_sources`` (tests): ``{lang: {source: [lines]}}`` used instead of the installed files for the
    sources it names (given ``fortunes`` are taken as already outside the transcripts: no installed
    fortunes are read for that language).
    """
    bad = [s for s in sources if s not in SOURCES]
    if bad:
        raise SpeechkdError(f"unknown text pool source(s) {bad} (have: {', '.join(SOURCES)})")
    out_dir = Path(out_dir)
    exclude: Set[str] = set()
    for path in exclude_files:
        if not Path(path).is_file():
            raise SpeechkdError(f"--exclude {path}: no such file")
        exclude |= read_exclude_file(path)
    kept_fortunes: Dict[str, List[str]] = {}
    if fortune_skip > 0 or "fortunes" in sources:
        for lang in languages:
            if text_sources and "fortunes" in text_sources.get(lang, {}):
                kept_fortunes[lang] = list(text_sources[lang]["fortunes"])
                continue
            excl, kept = fortune_split(lang, fortune_skip, fortune_seeds)
            exclude.update(normalize_text(s) for s in excl)
            kept_fortunes[lang] = kept
    stats: dict = {}
    all_seen: Set[str] = set()
    with atomic_open(out_dir / "text") as ftext:
        for lang in languages:
            seen: Set[str] = set()
            by_source: Dict[str, dict] = {}
            with atomic_open(out_dir / lang) as flang:
                for src in sources:
                    given = (text_sources or {}).get(lang, {})
                    if src in given:
                        lines: Iterable[str] = given[src]
                    elif src == "fortunes":
                        lines = kept_fortunes.get(lang, [])
                    elif src == "man":
                        lines = man_text(lang, man_root) if (lang in MAN_PACKAGES or lang == "en") else []
                    else:
                        lines = gettext_text(lang, locale_roots)
                    n = w = 0
                    for norm in pool_sentences(lines, lang, exclude, seen, min_words, max_words):
                        flang.write(norm + "\n")
                        if norm not in all_seen:
                            all_seen.add(norm)
                            ftext.write(norm + "\n")
                        n += 1
                        w += len(norm.split())
                    by_source[src] = {"sentences": n, "words": w}
                    log.info("text pool %s/%s: %d sentences, %d words", lang, src, n, w)
            stats[lang] = {"sentences": sum(v["sentences"] for v in by_source.values()),
                           "words": sum(v["words"] for v in by_source.values()), "by_source": by_source}
    stats["total"] = {"sentences": sum(stats[l]["sentences"] for l in languages),
                      "words": sum(stats[l]["words"] for l in languages)}
    stats["excluded"] = len(exclude)
    with atomic_open(out_dir / "stats.json") as f:
        f.write(json.dumps(stats, indent=1, ensure_ascii=False) + "\n")
    return stats


# --------------------------------------------------------------------------- transcript baseline
def plan_transcripts(corpus_config, seed: int = 1, split: str = "train") -> List[str]:
    """The (normalised) sentences of ``split`` that the mini corpus of ``corpus_config`` with ``seed``
    transcribes (:func:`speechkd.corpus.mini_espeak.plan_corpus`, no audio made), in utterance order."""
    from ..utils.config import load_config
    from .mini_espeak import DEFAULTS, plan_corpus

    cfg = load_config(corpus_config, defaults=DEFAULTS)
    return [normalize_text(j["sentence"]) for j in plan_corpus(cfg["corpus"], seed) if j["split"] == split]


def write_plan_transcripts(corpus_config, out_dir, seed: int = 1, splits: Sequence[str] = ("train", "test")) -> dict:
    """Write ``<out_dir>/<split>`` (one normalised sentence a line) for each split; returns line counts."""
    counts = {}
    for split in splits:
        lines = plan_transcripts(corpus_config, seed, split)
        with atomic_open(Path(out_dir) / split) as f:
            f.writelines(line + "\n" for line in lines)
        counts[split] = {"sentences": len(lines), "words": sum(len(line.split()) for line in lines)}
    return counts
