"""Text -> IPA phones with phonemizer's espeak backend, in the symbol inventory of the mini_espeak corpus.

The corpus' ``phones`` come from espeak-ng's phoneme events during synthesis; phonemizer goes through
espeak-ng's text-to-phonemes instead, which differs in two ways that this module undoes:
stress marks (dropped: ``with_stress=False`` and :data:`~speechkd.corpus.espeak.STRESS_MARKS`), and a
length mark that text-to-phonemes adds to geminated consonants (``pː`` in ``el optimista``) and, in
languages without phonemic vowel length, to vowels (dropped for consonants always and for vowels outside
:data:`LONG_VOWEL_LANGS`). Standalone modifier letters are glued to the previous phone, as in the corpus.

    >>> from speechkd.corpus.phonemize import phonemize_texts
    >>> phonemize_texts(["hello world"], "en")
    [['h', 'ə', 'l', 'oʊ', 'w', 'ɜː', 'l', 'd']]
    >>> phonemize_datadir("data/mini/data/train")       # writes data/mini/data/train/phones

Languages are our codes (``en``, ``de``, ...) mapped to espeak-ng voices by
:data:`speechkd.corpus.mini_espeak.ESPEAK_VOICES`.
"""
from __future__ import annotations

import logging
import os
from typing import Dict, List, Optional, Sequence

from ..data.datadir import DataDir
from ..utils.errors import DataError, SpeechkdError
from .espeak import STRESS_MARKS, is_modifier

log = logging.getLogger("speechkd")

LENGTH = "ː"
# languages whose espeak-ng phoneme set has long vowels (keep their length mark)
LONG_VOWEL_LANGS = {"en", "de", "cs", "ga", "sk", "nl", "sv", "fi", "hu", "et", "la"}
_VOWEL_CHARS = set("aeiouyæɑɒɐəɘɛɜɞɪʊʏøœɔʌɤɯɵɨʉɶɚɝ")


def _is_vowel(phone: str) -> bool:
    return any(c in _VOWEL_CHARS for c in phone)


def _setup_library() -> None:
    """Point phonemizer at the libespeak-ng that :mod:`speechkd.corpus.espeak` uses, if it has none."""
    from phonemizer.backend.espeak.wrapper import EspeakWrapper

    if os.environ.get("PHONEMIZER_ESPEAK_LIBRARY"):
        return
    try:
        EspeakWrapper.library()
        return
    except RuntimeError:
        pass
    from .espeak import find_library

    path, data = find_library()
    EspeakWrapper.set_library(path)
    if data and hasattr(EspeakWrapper, "set_data_path"):
        EspeakWrapper.set_data_path(data)


def clean_phones(tokens: Sequence[str], lang: str) -> List[str]:
    """Apply the corpus conventions (module docstring) to phonemizer's phone tokens."""
    out: List[str] = []
    for tok in tokens:
        tok = "".join(c for c in tok if c not in STRESS_MARKS).strip()
        if not tok or tok == "|":
            continue
        if is_modifier(tok) and out:
            out[-1] += tok
            continue
        out.append(tok)
    fixed = []
    for p in out:
        if p.endswith(LENGTH) and len(p) > 1:
            base = p[:-1]
            if not _is_vowel(base) or lang not in LONG_VOWEL_LANGS:
                p = base
        fixed.append(p)
    return fixed


_BACKENDS: Dict[str, object] = {}


def _backend(lang: str):
    from phonemizer.backend import EspeakBackend

    from .mini_espeak import ESPEAK_VOICES

    if lang not in _BACKENDS:
        _setup_library()
        voice = ESPEAK_VOICES.get(lang, lang)
        try:
            _BACKENDS[lang] = EspeakBackend(voice, with_stress=False, language_switch="remove-flags",
                                            preserve_punctuation=False)
        except RuntimeError as e:
            raise SpeechkdError(f"phonemizer/espeak-ng cannot phonemize language '{lang}' "
                                f"(voice '{voice}'): {e}") from None
    return _BACKENDS[lang]


def phonemize_texts(texts: Sequence[str], lang: str) -> List[List[str]]:
    """Phone lists (IPA) for ``texts`` of language ``lang`` (one list per text, may be empty)."""
    from phonemizer.separator import Separator

    if not texts:
        return []
    backend = _backend(lang)
    sep = Separator(phone=" ", word=" | ", syllable=None)
    lines = [" ".join(t.split()) for t in texts]
    out = backend.phonemize(lines, separator=sep, strip=True, njobs=1)
    return [clean_phones(o.split(), lang) for o in out]


def phonemize_datadir(data_dir, out_name: str = "phones", default_lang: Optional[str] = None) -> Dict[str, str]:
    """Phonemize ``<data_dir>/text`` per ``utt2lang`` (or ``default_lang``); write ``<data_dir>/<out_name>``.

    Returns ``{utt: "p1 p2 ..."}``. An utterance whose phone list comes out empty is a DataError naming
    the text line.
    """
    from ..utils.progress import progress as progress_bar

    d = DataDir(data_dir)
    text = d.read("text")
    if d.has("utt2lang"):
        utt2lang = d.read("utt2lang")
    elif default_lang:
        utt2lang = {u: default_lang for u in text}
    else:
        raise DataError(d.file("utt2lang"), None, "file not found (or give a default language)")
    lines = {u: n for n, u in enumerate(text, 1)}
    by_lang: Dict[str, List[str]] = {}
    for u in text:
        if u not in utt2lang:
            raise DataError(d.file("utt2lang"), None, f"utterance '{u}' of text has no language")
        by_lang.setdefault(utt2lang[u], []).append(u)
    result: Dict[str, str] = {}
    for lang, utts in progress_bar(sorted(by_lang.items()), desc="phonemize", unit="lang"):
        for u, phones in zip(utts, phonemize_texts([text[u] for u in utts], lang)):
            if not phones:
                raise DataError(d.file("text"), lines[u], f"'{u}': no phones for '{text[u]}' ({lang})")
            result[u] = " ".join(phones)
    d.write(out_name, result)
    return result


def phone_agreement(ref: Dict[str, str], hyp: Dict[str, str]) -> Dict[str, float]:
    """Compare two ``phones`` maps: fraction of identical utterances and phone error rate (edit distance)."""
    import jiwer

    utts = sorted(set(ref) & set(hyp))
    same = sum(ref[u].split() == hyp[u].split() for u in utts)
    refs = [ref[u] for u in utts]
    hyps = [hyp[u] for u in utts]
    per = jiwer.wer(refs, hyps) if utts else 1.0
    return {"utts": len(utts), "identical": same / max(len(utts), 1), "per": float(per)}
