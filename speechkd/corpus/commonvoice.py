"""Mozilla Common Voice (v7+ release layout) -> Kaldi data dirs, one per split and language.

Real on-disk layout read here::

    cv-corpus-<version>/<lang>/{train,dev,test,validated,other,invalidated}.tsv
    cv-corpus-<version>/<lang>/clips/common_voice_<lang>_<n>.mp3

Each tsv is tab separated with a header line; the columns used are ``client_id`` (a long hex hash of
the speaker), ``path`` (clip file name under ``clips/``) and ``sentence``; the others (``up_votes
down_votes age gender accents locale segment`` ...) are ignored, whatever their number or order.

Usage::

    >>> from speechkd.corpus.commonvoice import prepare
    >>> dirs = prepare("/data/cv-corpus-15.0-2023-09-08", "data", langs=["ky", "sw"],
    ...                splits=["train", "dev", "test"])                     # doctest: +SKIP
    >>> sorted(dirs)                                                      # doctest: +SKIP
    ['dev_ky', 'dev_sw', 'test_ky', 'test_sw', 'train_ky', 'train_sw']

Output ``<out>/<split>_<lang>/``: ``wav.scp`` (absolute mp3 path, or with ``audio="ffmpeg"`` a pipe
``ffmpeg ... -f wav -ar 16000 -ac 1 - |``), ``text`` (normalised: NFC, language-aware lower case,
punctuation removed but in-word apostrophes, see :func:`~speechkd.corpus.prep_common.normalize_text`),
``utt2spk``, ``spk2utt``, ``utt2lang`` (the folder's language code, e.g. ``en``, ``zh-CN``).
Speaker id = the first ``spk_len`` (16) hex digits of ``client_id``; utterance id =
``<speaker>-<clip name without extension>``, so sorting by utterance groups speakers. Rows whose
sentence normalises to nothing are skipped (and counted in the log).

MP3 decoding needs libsndfile >= 1.1 (the ``soundfile`` 0.12+ wheels ship it; check
``"MP3" in soundfile.available_formats()``); otherwise use ``audio="ffmpeg"`` with ffmpeg on PATH.
"""
from __future__ import annotations

import logging
import re
import shlex
from pathlib import Path
from typing import Dict, Optional, Sequence

from ..data.datadir import DataDir
from ..utils.errors import DataError
from .prep_common import check_audio_exists, finish_datadir, new_entries, normalize_text, write_fake_audio

log = logging.getLogger("speechkd")
_HEX = re.compile(r"[0-9a-fA-F]+\Z")

DEFAULT_SPLITS = ("train", "dev", "test")
REQUIRED_COLUMNS = ("client_id", "path", "sentence")
HEADER = ("client_id", "path", "sentence", "up_votes", "down_votes", "age", "gender", "accents",
          "locale", "segment")


def find_lang_dirs(src) -> Dict[str, Path]:
    """``{lang: folder}`` for the language folders under ``src``.

    ``src`` may be a ``cv-corpus-*`` folder, one language folder (holding ``clips/``), or a folder that
    holds ``cv-corpus-*`` folders (the newest name wins when a language appears twice).
    """
    src = Path(src)
    if not src.is_dir():
        raise DataError(src, None, "Common Voice folder not found")
    if (src / "clips").is_dir():
        return {src.name: src}
    out = {d.name: d for d in sorted(src.iterdir()) if (d / "clips").is_dir()}
    if not out:
        for corpus in sorted(src.glob("cv-corpus-*")):
            out.update({d.name: d for d in sorted(corpus.iterdir()) if (d / "clips").is_dir()})
    if not out:
        raise DataError(src, None, "no Common Voice language folder (<lang>/clips/) found")
    return out


def audio_spec(path: Path, audio: str = "path", sample_rate: int = 16000) -> str:
    """wav.scp value for one clip: its path, or an ffmpeg pipe decoding it to ``sample_rate`` mono wav."""
    if audio == "path":
        return str(path)
    if audio == "ffmpeg":
        return (f"ffmpeg -nostdin -loglevel error -i {shlex.quote(str(path))} -f wav -ar {sample_rate} "
                f"-ac 1 - |")
    raise ValueError(f"audio must be 'path' or 'ffmpeg', got {audio!r}")


def read_tsv(tsv, lang: str, clips: Path, audio: str = "path", sample_rate: int = 16000,
             lower: bool = True, strip_punct: bool = True, check_audio: bool = True,
             spk_len: int = 16, speakers: Optional[Dict[str, str]] = None) -> Dict[str, Dict[str, str]]:
    """Data-dir entries of one Common Voice tsv; DataError(tsv, line) on a malformed row.

    ``speakers`` (prefix -> full client_id) is shared between calls to detect prefix collisions.
    """
    from ..utils.progress import progress as progress_bar

    tsv = Path(tsv)
    speakers = {} if speakers is None else speakers
    entries = new_entries("wav.scp", "text", "utt2spk", "utt2lang")
    skipped = 0
    clips = Path(clips).resolve()
    with open(tsv, encoding="utf-8", newline="") as f:
        header_line = f.readline()
        header = header_line.rstrip("\r\n").split("\t")
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        if not header_line or missing:
            raise DataError(tsv, 1, f"header lacks column(s) {', '.join(missing or REQUIRED_COLUMNS)} "
                            f"(got: {' '.join(header)})")
        col = {c: header.index(c) for c in REQUIRED_COLUMNS}
        for n, line in enumerate(progress_bar(f, desc=f"{tsv.parent.name}/{tsv.name}", unit="utt",
                                      mininterval=2.0), 2):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            fields = line.split("\t")
            if len(fields) != len(header):
                raise DataError(tsv, n, f"expected {len(header)} tab-separated fields, got {len(fields)}")
            client, clip, sentence = (fields[col[c]].strip() for c in REQUIRED_COLUMNS)
            if not _HEX.match(client):
                raise DataError(tsv, n, f"client_id '{client}' is not a hex hash")
            if not clip:
                raise DataError(tsv, n, "empty path")
            spk = client[:spk_len].lower()
            if speakers.setdefault(spk, client) != client:
                raise DataError(tsv, n, f"two client_ids share the prefix '{spk}': raise spk_len")
            stem = clip.rsplit(".", 1)[0] if clip.endswith((".mp3", ".wav", ".flac", ".ogg")) else clip
            utt = f"{spk}-{stem}"
            if len(utt.split()) != 1:
                raise DataError(tsv, n, f"clip name '{clip}' contains whitespace")
            if utt in entries["text"]:
                raise DataError(tsv, n, f"duplicate clip '{clip}'")
            text = normalize_text(sentence, lang, lower=lower, strip_punct=strip_punct)
            if not text:
                skipped += 1
                continue
            path = Path(f"{clips}/{clip}")
            if check_audio:
                check_audio_exists(path, tsv, n, utt)
            entries["wav.scp"][utt] = audio_spec(path, audio, sample_rate)
            entries["text"][utt] = text
            entries["utt2spk"][utt] = spk
            entries["utt2lang"][utt] = lang
    if skipped:
        log.warning("%s: skipped %d rows whose sentence is empty after normalisation", tsv, skipped)
    return entries


def prepare(src, out_dir, langs: Optional[Sequence[str]] = None, splits: Sequence[str] = DEFAULT_SPLITS,
            audio: str = "path", sample_rate: int = 16000, lower: bool = True, strip_punct: bool = True,
            check_audio: bool = True, spk_len: int = 16, utt2dur: bool = False) -> Dict[str, DataDir]:
    """Write ``<out_dir>/<split>_<lang>`` for each language (default: all found) and split.

    Returns ``{name: DataDir}``. A missing language or split tsv is a DataError.
    """
    if audio == "path":
        import soundfile as sf

        if "MP3" not in sf.available_formats():
            log.warning("this libsndfile cannot decode MP3 (needs >= 1.1): use audio='ffmpeg'")
    found = find_lang_dirs(src)
    langs = list(langs) if langs else sorted(found)
    result: Dict[str, DataDir] = {}
    for lang in langs:
        if lang not in found:
            raise DataError(src, None, f"language '{lang}' not found (have: {' '.join(sorted(found))})")
        speakers: Dict[str, str] = {}
        for split in splits:
            tsv = found[lang] / f"{split}.tsv"
            if not tsv.is_file():
                raise DataError(tsv, None, "split file not found")
            entries = read_tsv(tsv, lang, found[lang] / "clips", audio, sample_rate, lower, strip_punct,
                               check_audio, spk_len, speakers)
            name = f"{split}_{lang}"
            result[name] = finish_datadir(Path(out_dir) / name, entries, what=str(tsv), utt2dur=utt2dur)
    return result


# ---------------------------------------------------------------------------------------------- test tree
FAKE_SENTENCES = {
    "en": ["Hello, World!", "Don't stop—it's “fine”.", "The cat sat on 2 mats.", "Why? Because!"],
    "de": ["Straße – schön?", "Guten Morgen, Welt.", "Das ist's.", "Ein kleiner Test!"],
    "tr": ["İstanbul'a GİDİYORUZ.", "Işık yanıyor!", "Merhaba dünya.", "Bir iki üç."],
}


def make_fake_tree(root, langs: Sequence[str] = ("en", "de"), version: str = "cv-corpus-99.0-2026-01-01",
                   n_speakers: int = 2, mp3: bool = True) -> Path:
    """Write a tiny Common Voice release under ``root`` and return the ``cv-corpus-*`` folder.

    Per language: ``n_speakers`` hex client_ids (``("<lang index><s>" * 32)`` with 0 -> a), splits
    ``train`` (sentences 0 and 1 of :data:`FAKE_SENTENCES`, speaker 0), ``dev`` (sentence 2, speaker 1),
    ``test`` (sentence 3, speaker 1) and ``validated`` (all). Clips are ``common_voice_<lang>_<1000+k>.mp3``,
    real 48 kHz MP3 (or ``.ogg`` clips where libsndfile cannot write MP3, or with ``mp3=False``).
    """
    import soundfile as sf

    root = Path(root) / version
    ext = ".mp3" if mp3 and "MP3" in sf.available_formats() else ".ogg"
    for li, lang in enumerate(langs):
        d = root / lang
        (d / "clips").mkdir(parents=True, exist_ok=True)
        clients = [(f"{li}{s}" * 32)[:64].replace("0", "a") for s in range(n_speakers)]
        rows = []
        for k, sent in enumerate(FAKE_SENTENCES[lang]):
            clip = f"common_voice_{lang}_{1000 + k}{ext}"
            write_fake_audio(d / "clips" / clip, 10 * li + k, seconds=0.3, sr=48000)
            client = clients[0] if k < 2 else clients[1 % n_speakers]
            rows.append([client, clip, sent, "2", "0", "twenties", "male", "", lang, ""])
        splits = {"train": rows[:2], "dev": rows[2:3], "test": rows[3:], "validated": rows}
        for split, rs in splits.items():
            (d / f"{split}.tsv").write_text("\t".join(HEADER) + "\n" + "".join("\t".join(r) + "\n" for r in rs),
                                            encoding="utf-8")
    return root
