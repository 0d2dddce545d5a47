"""Map-style datasets over Kaldi data dirs: features (feats.scp, lazy via kaldiio) or waveforms (wav.scp).

Each item is a dict (batched by :func:`speechkd.data.collate.collate`)::

    ds = FeatsDataset("data/train", cmvn="data/train/cmvn.npz", tokenizer=tok, text_file="phones",
                      extra={"lang": "utt2lang"})
    ds[0]   # {"utt": "spk0-utt0", "x": (T, 80) float32, "tokens": (L,) int64, "text": "p1 p2 ...",
            #  "lang": "en"}
    ds.lengths          # frames per utterance (for the bucket sampler)

    ws = WavDataset("data/train", sample_rate=16000)
    ws[0]["x"]          # (S,) float32 waveform in [-1, 1]
    ws.lengths          # samples per utterance

``text_file`` names the transcript file (``text`` or ``phones``); with a ``tokenizer`` (anything with
``encode(str) -> list[int]``) the item carries ``tokens``; an empty transcript or a token the tokenizer
rejects is a :class:`DataError` naming the file and line. ``extra`` maps item keys to per-utterance
files (``{"lang": "utt2lang", "intent": "utt2intent"}``); ``arrays`` maps item keys to in-memory
``{utt: tensor}`` dicts (e.g. HuBERT frame labels). ``utts`` restricts the dataset to a subset.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Union

import numpy as np
import torch

from ..utils.errors import DataError
from .datadir import DataDir, read_kv

CMVNLike = Union[str, Path, Callable, None]


def _load_cmvn(cmvn: CMVNLike):
    """Return a callable (T, F) tensor -> normalised tensor, from a ``cmvn.npz`` path or a module."""
    if cmvn is None or callable(cmvn):
        return cmvn
    path = Path(cmvn)
    if not path.exists():
        raise DataError(path, None, "CMVN stats file not found")
    with np.load(path) as z:
        if "mean" not in z or "std" not in z:
            raise DataError(path, None, "CMVN file needs arrays 'mean' and 'std'")
        mean = torch.as_tensor(z["mean"], dtype=torch.float32)
        std = torch.as_tensor(z["std"], dtype=torch.float32).clamp_min(1e-5)
    return lambda x: (x - mean) / std


class _DataDirDataset(torch.utils.data.Dataset):
    """Shared part: utterance list, transcripts, tokens, extra per-utt fields."""

    def __init__(self, data_dir, keys: Sequence[str], tokenizer=None, text_file: Optional[str] = "text",
                 extra: Optional[Mapping[str, str]] = None,
                 arrays: Optional[Mapping[str, Mapping[str, torch.Tensor]]] = None,
                 utts: Optional[Sequence[str]] = None, need_text: bool = False):
        self.dir = DataDir(data_dir)
        self.utts: List[str] = list(keys) if utts is None else list(utts)
        self.tokenizer = tokenizer
        self.text: Dict[str, str] = {}
        self.text_line: Dict[str, int] = {}
        self.tokens: Dict[str, torch.Tensor] = {}
        if text_file is not None and (need_text or tokenizer is not None or self.dir.has(text_file)):
            path = self.dir.file(text_file)
            entries = read_kv(path, allow_empty_value=True)
            self.text_line = {k: i for i, k in enumerate(entries, 1)}
            for u in self.utts:
                if u not in entries:
                    if need_text or tokenizer is not None:
                        raise DataError(path, None, f"utterance '{u}' has no transcript")
                    continue
                self.text[u] = entries[u]
            if tokenizer is not None:
                for u in self.utts:
                    t = self.text[u]
                    if not t.strip():
                        raise DataError(path, self.text_line[u], f"empty transcript for '{u}'")
                    try:
                        ids = tokenizer.encode(t)
                    except Exception as e:  # tokenizers raise KeyError/ValueError on unknown units
                        raise DataError(path, self.text_line[u], f"cannot tokenize '{u}': {e}") from None
                    if len(ids) == 0:
                        raise DataError(path, self.text_line[u], f"transcript of '{u}' encodes to no tokens")
                    self.tokens[u] = torch.as_tensor(list(ids), dtype=torch.long)
        self.extra: Dict[str, Dict[str, str]] = {}
        for key, fname in (extra or {}).items():
            entries = read_kv(self.dir.file(fname))
            missing = [u for u in self.utts if u not in entries]
            if missing:
                raise DataError(self.dir.file(fname), None,
                                f"{len(missing)} utterances missing, e.g. '{missing[0]}'")
            self.extra[key] = {u: entries[u] for u in self.utts}
        self.arrays = dict(arrays or {})
        for key, table in self.arrays.items():
            missing = [u for u in self.utts if u not in table]
            if missing:
                raise DataError(self.dir.path, None, f"'{key}' has no entry for '{missing[0]}'")

    def __len__(self) -> int:
        return len(self.utts)

    def _fields(self, utt: str) -> Dict:
        item: Dict = {"utt": utt}
        if utt in self.tokens:
            item["tokens"] = self.tokens[utt]
        if utt in self.text:
            item["text"] = self.text[utt]
        for key, table in self.extra.items():
            item[key] = table[utt]
        for key, table in self.arrays.items():
            item[key] = torch.as_tensor(table[utt])
        return item


class FeatsDataset(_DataDirDataset):
    """Features from ``feats.scp`` (read lazily with kaldiio), optional global CMVN.

    Lengths come from ``utt2num_frames`` when present, else from reading each matrix once.
    """

    def __init__(self, data_dir, cmvn: CMVNLike = None, tokenizer=None, text_file: Optional[str] = "text",
                 extra: Optional[Mapping[str, str]] = None, arrays=None,
                 utts: Optional[Sequence[str]] = None, feats_file: str = "feats.scp"):
        import kaldiio

        d = DataDir(data_dir)
        self.scp_path = d.file(feats_file)
        scp = read_kv(self.scp_path)
        self.scp_line = {k: i for i, k in enumerate(scp, 1)}
        self.scp = dict(scp)
        super().__init__(data_dir, list(scp), tokenizer, text_file, extra, arrays, utts)
        for u in self.utts:
            if u not in self.scp:
                raise DataError(self.scp_path, None, f"utterance '{u}' not in {feats_file}")
        self._kaldiio = kaldiio
        self.cmvn = _load_cmvn(cmvn)
        if d.has("utt2num_frames"):
            nf = read_kv(d.file("utt2num_frames"))
            self.lengths = [int(nf[u]) if u in nf else self._read(u).shape[0] for u in self.utts]
        else:
            self.lengths = [self._read(u).shape[0] for u in self.utts]

    def _read(self, utt: str) -> np.ndarray:
        try:
            mat = self._kaldiio.load_mat(self.scp[utt])
        except Exception as e:
            raise DataError(self.scp_path, self.scp_line[utt], f"cannot read features of '{utt}': {e}") from None
        if mat.ndim != 2 or mat.shape[0] == 0:
            raise DataError(self.scp_path, self.scp_line[utt], f"features of '{utt}' have shape {mat.shape}")
        return mat

    def __getitem__(self, i: int) -> Dict:
        utt = self.utts[i]
        x = torch.from_numpy(np.array(self._read(utt), dtype=np.float32, copy=True))
        if not torch.isfinite(x).all():
            raise DataError(self.scp_path, self.scp_line[utt], f"features of '{utt}' contain NaN/inf")
        if self.cmvn is not None:
            x = self.cmvn(x)
        item = self._fields(utt)
        item["x"] = x
        return item


class WavDataset(_DataDirDataset):
    """Waveforms from ``wav.scp`` (+ ``segments``) via :func:`speechkd.data.audio.load_audio`.

    Lengths (samples) come from ``segments``, else ``utt2dur``, else the file header (soundfile), else
    by loading the audio once.
    """

    def __init__(self, data_dir, sample_rate: int = 16000, tokenizer=None, text_file: Optional[str] = "text",
                 extra: Optional[Mapping[str, str]] = None, arrays=None,
                 utts: Optional[Sequence[str]] = None):
        d = DataDir(data_dir)
        self.sample_rate = int(sample_rate)
        self.wav_path = d.file("wav.scp")
        wavs = read_kv(self.wav_path)
        self.wav_line = {k: i for i, k in enumerate(wavs, 1)}
        self.wavs = dict(wavs)
        self.segments = None
        if d.has("segments"):
            self.segments = {u: v.split() for u, v in read_kv(d.file("segments")).items()}
            keys = list(self.segments)
        else:
            keys = list(wavs)
        super().__init__(data_dir, keys, tokenizer, text_file, extra, arrays, utts)
        dur = read_kv(d.file("utt2dur")) if d.has("utt2dur") else {}
        self.lengths = [self._length(u, dur) for u in self.utts]

    def _length(self, utt: str, dur: Mapping[str, str]) -> int:
        if self.segments is not None:
            _, s, e = self.segments[utt][:3]
            if float(e) > 0:
                return int(round((float(e) - float(s)) * self.sample_rate))
        if utt in dur:
            return int(round(float(dur[utt]) * self.sample_rate))
        spec = self.wavs.get(utt, "")
        if spec and not spec.strip().endswith("|"):
            try:
                import soundfile as sf

                info = sf.info(spec)
                return int(round(info.frames * self.sample_rate / info.samplerate))
            except Exception:
                pass
        return int(self._load(utt).shape[0])

    def _load(self, utt: str) -> np.ndarray:
        from .audio import load_audio

        if self.segments is not None:
            rec, s, e = self.segments[utt][:3]
            if rec not in self.wavs:
                raise DataError(self.dir.file("segments"), None, f"recording '{rec}' of '{utt}' not in wav.scp")
            return load_audio(self.wavs[rec], self.sample_rate,
                              where=f"{self.wav_path}:{self.wav_line[rec]} ({rec})", start=float(s), end=float(e))
        if utt not in self.wavs:
            raise DataError(self.wav_path, None, f"utterance '{utt}' not found")
        return load_audio(self.wavs[utt], self.sample_rate, where=f"{self.wav_path}:{self.wav_line[utt]} ({utt})")

    def __getitem__(self, i: int) -> Dict:
        utt = self.utts[i]
        item = self._fields(utt)
        item["x"] = torch.from_numpy(self._load(utt))
        return item
