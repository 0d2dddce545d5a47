"""Helpers shared by the real-corpus preparers (:mod:`librispeech`, :mod:`commonvoice`, :mod:`mls`,
:mod:`slurp`, :mod:`fsc`): text normalisation, finishing a data dir, fake audio for the test trees.

    >>> normalize_text("Don't stop—it's 5 o'clock!", "en")
    "don't stop it's 5 o'clock"
    >>> normalize_text("İSTANBUL'da", "tr")
    "istanbul'da"
    >>> finish_datadir("data/dev_en", {"wav.scp": {...}, "text": {...}, "utt2spk": {...}})  # doctest: +SKIP

Every preparer ends with :func:`finish_datadir`: write the files atomically and sorted (spk2utt derived),
then :meth:`~speechkd.data.datadir.DataDir.validate` the result.
"""
from __future__ import annotations

import logging
import unicodedata
from pathlib import Path
from typing import Dict, Mapping, Optional

import numpy as np

from ..data.datadir import DataDir, write_datadir
from ..utils.errors import DataError

log = logging.getLogger("speechkd")

_APOSTROPHES = "'’‘ʼ`´"


def _lower(text: str, lang: str) -> str:
    """Language-aware lower case (Turkish/Azeri dotted and dotless i)."""
    if lang.split("-")[0].split("_")[0] in ("tr", "az", "crh"):
        text = text.replace("I", "ı").replace("İ", "i")
    return text.lower()


def normalize_text(text: str, lang: str = "en", lower: bool = True, strip_punct: bool = True) -> str:
    """ASR text form: NFC, (language-aware) lower case, punctuation/symbols -> space, single spaces.

    Letters, combining marks (Indic vowel signs, Arabic harakat) and digits are kept; an apostrophe is kept
    (as ``'``) only between two word characters (``don't``, ``l'homme``); hyphens and dashes split words.
    """
    text = unicodedata.normalize("NFC", text)
    if lower:
        text = _lower(text, lang)
    if not strip_punct:
        return " ".join(text.split())
    out = []
    n = len(text)
    for i, c in enumerate(text):
        cat = unicodedata.category(c)
        if cat[0] in "LMN":
            out.append(c)
        elif c in _APOSTROPHES:
            prev_ok = i > 0 and unicodedata.category(text[i - 1])[0] in "LMN"
            next_ok = i + 1 < n and unicodedata.category(text[i + 1])[0] in "LMN"
            out.append("'" if prev_ok and next_ok else " ")
        else:
            out.append(" ")
    return " ".join("".join(out).split())


def clean_id(s: str) -> str:
    """Make a string usable inside a Kaldi id: whitespace and '/' become '_'."""
    return "_".join(s.replace("/", "_").split())


def finish_datadir(out_dir, entries: Mapping[str, Mapping[str, str]], what: str = "",
                   utt2dur: bool = False) -> DataDir:
    """Write ``entries`` as a sorted data dir (spk2utt derived; ``utt2dur`` from the audio headers when
    asked, see :func:`write_utt2dur`), validate it and log its size.

    Raises :class:`DataError` naming ``what`` (the metadata source) when there is no utterance.
    """
    if not entries.get("utt2spk"):
        raise DataError(what or out_dir, None, "no utterances found")
    d = write_datadir(out_dir, entries)
    if utt2dur:
        write_utt2dur(d.path)
    d.validate()
    log.info("%s: %d utterances, %d speakers%s", out_dir, len(entries["utt2spk"]),
             len(set(entries["utt2spk"].values())), f" (from {what})" if what else "")
    return d


def write_utt2dur(data_dir) -> Dict[str, str]:
    """Add ``utt2dur`` (seconds, 3 decimals) from the audio headers of ``wav.scp`` (soundfile.info).

    Pipe entries (``cmd |``) are decoded with :func:`~speechkd.data.audio.load_audio`. A file that cannot
    be read is a DataError naming the wav.scp line.
    """
    import soundfile as sf
    from ..utils.progress import progress as progress_bar

    from ..data.audio import load_audio

    d = DataDir(data_dir)
    wavs = d.read("wav.scp")
    out: Dict[str, str] = {}
    for n, (utt, spec) in enumerate(progress_bar(wavs.items(), desc=f"utt2dur {d.path.name}", unit="utt",
                                         progress=len(wavs) >= 200), 1):
        try:
            if spec.rstrip().endswith("|"):
                dur = len(load_audio(spec, 16000, where=f"{d.file('wav.scp')}:{n} ({utt})")) / 16000
            else:
                info = sf.info(spec)
                dur = info.frames / info.samplerate
        except DataError:
            raise
        except Exception as e:  # noqa: BLE001 - soundfile raises several types
            raise DataError(d.file("wav.scp"), n, f"cannot read audio header of '{utt}': {e}") from None
        out[utt] = f"{dur:.3f}"
    d.write("utt2dur", out)
    return out


def check_audio_exists(path: Path, meta_file, line: Optional[int], utt: str) -> None:
    if not Path(path).is_file():
        raise DataError(meta_file, line, f"audio of '{utt}' not found: {path}")


def fake_audio(seed: int, seconds: float = 0.3, sr: int = 16000) -> np.ndarray:
    """A short noisy tone (float32, shape (sr*seconds,)) for the fake corpus trees of the tests."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(sr * seconds)) / sr
    freq = 150.0 + 37.0 * (seed % 17)
    return (0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(t.shape)).astype(np.float32)


def write_fake_audio(path, seed: int, seconds: float = 0.3, sr: int = 16000) -> Path:
    """Write :func:`fake_audio` in the format the suffix names (.flac, .wav, .ogg, .opus, .mp3)."""
    import soundfile as sf

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wav = fake_audio(seed, seconds, sr)
    suffix = path.suffix.lower()
    if suffix == ".mp3":
        sf.write(path, wav, sr, format="MP3", subtype="MPEG_LAYER_III")
    elif suffix == ".opus":
        sf.write(path, wav, sr if sr in (8000, 12000, 16000, 24000, 48000) else 48000, format="OGG", subtype="OPUS")
    elif suffix == ".ogg":
        sf.write(path, wav, sr, format="OGG", subtype="VORBIS")
    else:
        sf.write(path, wav, sr, subtype="PCM_16")
    return path


def new_entries(*names: str) -> Dict[str, Dict[str, str]]:
    """A fresh ``{name: {}}`` dict of data-dir files, e.g. ``new_entries("wav.scp", "text", "utt2spk")``."""
    return {n: {} for n in names}
