"""In-process espeak-ng speech synthesis with exact phone and word times (ctypes over the C API).

espeak-ng in synchronous mode calls back with chunks of int16 audio (22050 Hz) and a list of events.
With phoneme events enabled (IPA names), every phone event carries the sample index where the phone
starts; a phone ends where the next phone (or pause) event starts, so the intervals tile the audio.
Word events carry the (1-based, in characters) offset and length of the word in the input text.

    >>> from speechkd.corpus.espeak import synthesize
    >>> syn = synthesize("Hello world.", voice="en-us+f2", rate=175, pitch=50)
    >>> syn.audio.dtype, syn.sample_rate          # int16 (S,), native rate
    (dtype('int16'), 22050)
    >>> [p for p, _, _ in syn.phones][:4]          # pauses dropped, IPA names
    ['h', 'ə', 'l', 'oʊ']
    >>> syn.words[0]                               # (word text as written, start_s, end_s)
    ('Hello', 0.0..., 0.3...)

One process holds one espeak instance (the library is not thread-safe): synthesise in parallel with
multiprocessing, never with threads. The library is found as Debian's ``libespeak-ng.so.1``, else the
pip package ``espeakng_loader``; :func:`find_library` says which.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
import unicodedata
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

import numpy as np

from ..utils.errors import SpeechkdError

NATIVE_SAMPLE_RATE = 22050
INSTALL_HINT = "apt-get install -y espeak-ng"

# speak_lib.h constants
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INIT_PHONEME_EVENTS = 0x0001
_INIT_PHONEME_IPA = 0x0002
_INIT_DONT_EXIT = 0x8000
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_EV_LIST_TERMINATED, _EV_WORD, _EV_SENTENCE, _EV_END, _EV_MSG_TERMINATED, _EV_PHONEME = 0, 1, 2, 5, 6, 7
_PARAM_RATE, _PARAM_PITCH = 1, 3
# marks that are prosody, not phones (espeak-ng >= 1.52 puts stress marks on IPA phone names)
STRESS_MARKS = "ˈˌ"
_EDGE_PUNCT = ".,;:!?\"'()[]«»„“”‘’–—…¿¡-"


class EspeakError(SpeechkdError):
    """espeak-ng missing, or a voice/synthesis call failed."""


class _Event(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint),
                ("text_position", ctypes.c_int), ("length", ctypes.c_int),
                ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", ctypes.c_char * 8)]


_Callback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                             ctypes.POINTER(_Event))


@dataclass
class Synthesis:
    """Result of :func:`synthesize`.

    audio: int16 (S,) at ``sample_rate``; phones: ``(ipa, start_s, end_s)`` without pauses, in order,
    non-overlapping; words: ``(word, start_s, end_s)`` with the word as written in the input text
    (surrounding punctuation stripped); word_offsets: 0-based character offset of each word in ``text``.
    """
    text: str
    audio: np.ndarray
    sample_rate: int
    phones: List[Tuple[str, float, float]] = field(default_factory=list)
    words: List[Tuple[str, float, float]] = field(default_factory=list)
    word_offsets: List[int] = field(default_factory=list)

    @property
    def duration(self) -> float:
        return len(self.audio) / self.sample_rate


def find_library() -> Tuple[str, Optional[str]]:
    """Return ``(library_path, data_path_or_None)``: Debian's libespeak-ng first, then espeakng_loader.

    Raises EspeakError with the install command when neither exists.
    """
    env = os.environ.get("SPEECHKD_ESPEAK_LIBRARY")
    if env:
        return env, os.environ.get("SPEECHKD_ESPEAK_DATA") or None
    for name in ("libespeak-ng.so.1", ctypes.util.find_library("espeak-ng")):
        if not name:
            continue
        try:
            ctypes.CDLL(name)
            return name, None
        except OSError:
            pass
    try:
        import espeakng_loader  # type: ignore

        return espeakng_loader.get_library_path(), espeakng_loader.get_data_path()
    except (ImportError, OSError, AttributeError):
        pass
    raise EspeakError(f"libespeak-ng not found: install it with '{INSTALL_HINT}' "
                      "(or 'pip install espeakng-loader')")


class _Engine:
    """The one espeak-ng instance of this process."""

    def __init__(self):
        path, data = find_library()
        try:
            self.lib = ctypes.CDLL(path)
        except OSError as e:
            raise EspeakError(f"cannot load {path}: {e}; try '{INSTALL_HINT}'") from None
        lib = self.lib
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                     ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        lib.espeak_SetSynthCallback.argtypes = [_Callback]
        opts = _INIT_PHONEME_EVENTS | _INIT_PHONEME_IPA | _INIT_DONT_EXIT
        sr = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data.encode() if data else None, opts)
        if sr <= 0:
            raise EspeakError(f"espeak_Initialize failed ({sr}) for {path}")
        self.sample_rate = sr
        self.library = path
        self._cb = _Callback(self._on_synth)  # keep a reference: the C side holds the pointer
        lib.espeak_SetSynthCallback(self._cb)
        self._chunks: list = []
        self._events: list = []
        self._voice: Optional[str] = None
        self.lock = threading.Lock()

    def _on_synth(self, wav, n, events) -> int:
        if n > 0 and wav:
            self._chunks.append(np.ctypeslib.as_array(wav, (n,)).copy())
        i = 0
        while events[i].type != _EV_LIST_TERMINATED:
            e = events[i]
            self._events.append((e.type, e.text_position, e.length, e.sample,
                                 bytes(e.id).split(b"\0", 1)[0]))
            i += 1
        return 0

    def set_voice(self, voice: str) -> None:
        if voice != self._voice:
            if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
                self._voice = None
                raise EspeakError(f"espeak-ng has no voice '{voice}' (language codes like 'fr', not "
                                  "'fr-fr'; variants as 'en-us+f2'; list them with 'espeak-ng --voices')")
            self._voice = voice

    def synth(self, text: str, voice: str, rate: int, pitch: int):
        self.set_voice(voice)
        self.lib.espeak_SetParameter(_PARAM_RATE, int(rate), 0)
        self.lib.espeak_SetParameter(_PARAM_PITCH, int(pitch), 0)
        self._chunks, self._events = [], []
        data = text.encode("utf-8") + b"\0"
        rc = self.lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        if rc != 0:
            raise EspeakError(f"espeak_Synth failed ({rc}) on {text[:60]!r}")
        audio = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
        return audio.astype(np.int16, copy=False), self._events


_ENGINE: Optional[_Engine] = None
_ENGINE_PID: Optional[int] = None


def engine() -> _Engine:
    """This process's espeak-ng instance (created on first use; re-created in a forked child)."""
    global _ENGINE, _ENGINE_PID
    if _ENGINE is None or _ENGINE_PID != os.getpid():
        _ENGINE, _ENGINE_PID = _Engine(), os.getpid()
    return _ENGINE


def is_modifier(phone: str) -> bool:
    """True for a 'phone' made only of modifier letters/diacritics (``ʲ``, ``ː``, combining marks)."""
    return bool(phone) and all(unicodedata.category(c) in ("Lm", "Mn", "Sk") for c in phone)


def clean_phone(name: str) -> str:
    """IPA phone name without stress marks (``"ˈaɪ"`` -> ``"aɪ"``); '' for pauses."""
    return "".join(c for c in name if c not in STRESS_MARKS).strip()


def _token_at(text: str, pos: int) -> Tuple[int, int]:
    """``(start, end)`` character span of the whitespace-delimited token of ``text`` covering ``pos``.

    A token without letters (a dash: espeak-ng puts the next word's event there) yields the next one.
    """
    pos = min(max(pos, 0), max(len(text) - 1, 0))
    a = pos
    while a > 0 and not text[a - 1].isspace():
        a -= 1
    while True:
        b = a
        while b < len(text) and not text[b].isspace():
            b += 1
        if any(c.isalnum() for c in text[a:b]) or b >= len(text):
            return a, b
        a = b
        while a < len(text) and text[a].isspace():
            a += 1


def events_to_intervals(text: str, events, num_samples: int, sample_rate: int):
    """Turn raw espeak events into phone and word intervals (seconds).

    ``events``: ``(type, text_position, length, sample, name_bytes)`` in emission order. A phone lasts
    from its event to the next phone/pause event (or the end of the audio); pauses (empty names) are
    dropped after they have closed the previous phone; language-switch markers (``(en)``) are ignored.
    A word is the whitespace-delimited token of
    ``text`` holding the word event's offset, without surrounding punctuation (espeak-ng's own word
    length stops at an apostrophe: ``Don't`` -> ``Don``); it spans the phones emitted after its word
    event, up to the next word event (events falling into the same token are merged).
    Returns ``(phones, words, word_offsets)`` with 0-based character offsets of the words.
    """
    marks = []  # (sample, phone-or-'', word_index)
    spans: list = []  # (a, b) character spans of the words
    cur_word = -1
    for etype, pos, length, sample, name in events:
        if etype == _EV_WORD:
            if length > 0 and text:
                span = _token_at(text, pos - 1)
                if not spans or spans[-1] != span:
                    spans.append(span)
                cur_word = len(spans) - 1
            else:
                cur_word = -1
        elif etype == _EV_PHONEME:
            if name.startswith(b"(") and name.endswith(b")"):
                continue  # language switch marker like '(en)': not a sound, not a boundary
            marks.append((min(max(sample, 0), num_samples), clean_phone(name.decode("utf-8", "replace")),
                          cur_word))
    phones, word_phones = [], {}
    last = 0
    for i, (sample, ph, w) in enumerate(marks):
        start = max(sample, last)
        end = marks[i + 1][0] if i + 1 < len(marks) else num_samples
        end = max(end, start)
        last = start
        if not ph:
            continue
        if is_modifier(ph) and phones and marks[i - 1][1]:
            # espeak-ng 1.51 emits some palatalisation marks as their own event ('b', 'ʲ'):
            # glue them to the phone they modify, as its text-to-phonemes output does ('bʲ')
            prev, p_start, _ = phones[-1]
            phones[-1] = (prev + ph, p_start, end / sample_rate)
            continue
        phones.append((ph, start / sample_rate, end / sample_rate))
        if w >= 0:
            word_phones.setdefault(w, []).append(len(phones) - 1)
    words, offsets = [], []
    for w, idx in sorted(word_phones.items()):
        a, b = spans[w]
        token = text[a:b]
        stripped = token.strip(_EDGE_PUNCT)
        offsets.append(a + (token.find(stripped) if stripped else 0))
        words.append((stripped or token, phones[idx[0]][1], phones[idx[-1]][2]))
    return phones, words, offsets


def synthesize(text: str, voice: str = "en-us", rate: int = 175, pitch: int = 50) -> Synthesis:
    """Synthesise ``text`` with an espeak-ng voice (``"en-us"``, ``"de+m3"``, ``"fr"``).

    ``rate`` in words per minute (80..450), ``pitch`` 0..100 (50 is the voice's default).
    Returns a :class:`Synthesis` with int16 audio at the native rate (22050 Hz).
    """
    if not text.strip():
        raise EspeakError("cannot synthesise empty text")
    eng = engine()
    with eng.lock:
        audio, events = eng.synth(text, voice, rate, pitch)
    phones, words, offsets = events_to_intervals(text, events, len(audio), eng.sample_rate)
    return Synthesis(text=text, audio=audio, sample_rate=eng.sample_rate, phones=phones, words=words,
                     word_offsets=offsets)
