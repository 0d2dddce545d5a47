"""Feature extraction for a data dir into Kaldi ark/scp (via kaldiio), crash-safe, splittable into jobs.

One job writes ``<out_dir>/<name>.ark``, ``<name>.scp`` and ``<name>.utt2num_frames``; all three are
written to temporary names first and renamed at the end (ark first, then scp, then utt2num_frames), and the
scp already names the *final* ark path, so a killed job leaves nothing under the final names. The scp
is the commit marker: a job is complete iff its ``.scp`` exists.

Example::

    opts = {"num_mel_bins": 80}
    extract_features("data/train", "dump/fbank/train", "fbank", opts,
                     utts=read_utt_list("dump/fbank/train/split4/3"), name="feats.3")
    merge_feature_scps("data/train", "dump/fbank/train")   # -> data/train/feats.scp, utt2num_frames

Paths written into the scp are ``out_dir/<name>.ark`` as given (relative paths are relative to the
directory the recipe runs from, the Kaldi convention).
"""
from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import zlib
from pathlib import Path
from typing import Dict, Iterable, List, Optional

import numpy as np
import torch

from ..data.audio import iter_data_audio
from ..data.datadir import DataDir, read_kv, write_kv
from ..utils.errors import ConfigError, DataError
from . import kaldi

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_OPTS", "extract_features", "compute_utterance", "merge_feature_scps", "read_utt_list"]

FBANK_DEFAULTS = dict(sample_rate=16000, num_mel_bins=80, frame_length_ms=25.0, frame_shift_ms=10.0,
                      dither=0.0, preemphasis=0.97, window="povey", snip_edges=True, low_freq=20.0,
                      high_freq=0.0, use_energy=False)
MFCC_DEFAULTS = dict(FBANK_DEFAULTS, num_mel_bins=23, num_ceps=13, use_energy=True, cepstral_lifter=22.0)
DEFAULT_OPTS = {"fbank": FBANK_DEFAULTS, "mfcc": MFCC_DEFAULTS}


def _full_opts(kind: str, opts: Optional[dict]) -> dict:
    if kind not in DEFAULT_OPTS:
        raise ConfigError(f"unknown feature kind '{kind}' (fbank, mfcc)")
    full = dict(DEFAULT_OPTS[kind])
    for k, v in (opts or {}).items():
        if k not in full:
            raise ConfigError(f"unknown {kind} option '{k}'; known: {', '.join(sorted(full))}")
        full[k] = v
    return full


def compute_utterance(wav: np.ndarray, kind: str = "fbank", opts: Optional[dict] = None,
                      utt: str = "") -> np.ndarray:
    """Features (T, F) float32 for one float waveform (S,) in [-1, 1] at ``opts['sample_rate']``.

    With ``dither > 0`` the dither noise is seeded from the utterance id (reproducible).
    """
    o = _full_opts(kind, opts)
    gen = None
    if o["dither"]:
        gen = torch.Generator().manual_seed(zlib.crc32(utt.encode("utf-8")))
    fn = kaldi.fbank if kind == "fbank" else kaldi.mfcc
    x = torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32))
    with torch.no_grad():
        return fn(x, generator=gen, **o).numpy()


def read_utt_list(path) -> List[str]:
    """Utterance ids from a list file (first field of each non-empty line)."""
    path = Path(path)
    if not path.exists():
        raise DataError(path, None, "utterance list not found")
    return [ln.split()[0] for ln in open(path, encoding="utf-8") if ln.strip()]


def _tmp_name(path: Path, suffix: str = "") -> str:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + suffix, dir=path.parent)
    os.close(fd)
    return tmp


def extract_features(data_dir, out_dir, kind: str = "fbank", opts: Optional[dict] = None,
                     utts: Optional[Iterable[str]] = None, compress: bool = False, name: str = "feats",
                     progress: bool = True) -> Path:
    """Compute ``kind`` ("fbank" | "mfcc") features for ``data_dir`` (or only ``utts``) into ``out_dir``.

    Writes ``out_dir/name.ark``, ``name.scp`` and ``name.utt2num_frames`` atomically; returns the scp path.
    ``compress=True`` uses Kaldi's compressed matrix format (``compression_method=2``).
    Raises DataError naming the utterance for unreadable audio, audio shorter than one frame, or
    non-finite features.
    """
    import kaldiio
    from ..utils.progress import progress as progress_bar

    o = _full_opts(kind, opts)
    d = DataDir(data_dir)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ark, scp, u2nf = out_dir / f"{name}.ark", out_dir / f"{name}.scp", out_dir / f"{name}.utt2num_frames"
    if utts is not None:
        utts = list(utts)
        total = len(utts)
    else:
        total = len(d.read("segments") if d.has("segments") else d.read("wav.scp"))
    where = d.file("segments") if d.has("segments") else d.file("wav.scp")
    line_of = {k: n for n, k in enumerate(read_kv(where), 1)}  # so errors name the file *and* line
    tmps = [_tmp_name(ark, ".ark"), _tmp_name(scp), _tmp_name(u2nf)]
    try:
        scp_lines, nf_lines = [], []
        with open(tmps[0], "wb") as f:
            it = iter_data_audio(d.path, target_sr=int(o["sample_rate"]), utts=utts)
            for utt, wav in progress_bar(it, total=total, desc=f"{kind} {name}", progress=progress):
                feats = compute_utterance(wav, kind, o, utt)
                if feats.shape[0] == 0:
                    raise DataError(where, line_of.get(utt), f"utterance '{utt}': {len(wav)} samples is shorter than one "
                                    f"frame ({o['frame_length_ms']} ms)")
                if not np.all(np.isfinite(feats)):
                    raise DataError(where, line_of.get(utt), f"utterance '{utt}': features contain NaN/inf")
                key = (utt + " ").encode("utf-8")
                offset = f.tell() + len(key)
                kaldiio.save_ark(f, {utt: feats}, compression_method=2 if compress else None)
                scp_lines.append(f"{utt} {ark}:{offset}\n")
                nf_lines.append(f"{utt} {feats.shape[0]}\n")
            f.flush()
            os.fsync(f.fileno())
        for tmp, lines in ((tmps[1], scp_lines), (tmps[2], nf_lines)):
            with open(tmp, "w", encoding="utf-8") as g:
                g.writelines(lines)
                g.flush()
                os.fsync(g.fileno())
        # commit: ark first, then the scp that points at it, then the frame counts
        os.replace(tmps[0], ark)
        os.replace(tmps[1], scp)
        os.replace(tmps[2], u2nf)
    except BaseException:
        for tmp in tmps:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        raise
    log.info("wrote %d utterances of %s to %s", len(scp_lines), kind, scp)
    return scp


def merge_feature_scps(data_dir, out_dir, pattern: str = "feats.*.scp", require_all: bool = True) -> Path:
    """Merge per-job ``out_dir/feats.<job>.scp`` (and ``.utt2num_frames``) into ``data_dir/feats.scp``.

    Falls back to ``out_dir/feats.scp`` when no job files exist. The result is sorted by utterance id;
    duplicates are an error, and with ``require_all`` so is any utterance of ``utt2spk`` left without
    features. Returns the path of the merged scp.
    """
    d, out_dir = DataDir(data_dir), Path(out_dir)
    scps = sorted(out_dir.glob(pattern)) or ([out_dir / "feats.scp"] if (out_dir / "feats.scp").exists() else [])
    if not scps:
        raise DataError(out_dir, None, f"no feature scp files ({pattern}) to merge")
    feats: Dict[str, str] = {}
    frames: Dict[str, str] = {}
    for scp in scps:
        entries = read_kv(scp)
        for n, (utt, val) in enumerate(entries.items(), 1):
            if utt in feats:
                raise DataError(scp, n, f"utterance '{utt}' also appears in another job's scp")
            feats[utt] = val
        nf = scp.with_name(scp.name[: -len(".scp")] + ".utt2num_frames")
        if nf.exists():
            frames.update(read_kv(nf))
    if require_all and d.has("utt2spk"):
        missing = sorted(set(d.read("utt2spk")) - set(feats))
        if missing:
            raise DataError(d.file("utt2spk"), None, f"{len(missing)} utterances have no features "
                            f"(e.g. {' '.join(missing[:3])}); did a job fail?")
    write_kv(d.file("feats.scp"), feats)
    if frames:
        write_kv(d.file("utt2num_frames"), {u: frames[u] for u in feats if u in frames})
    log.info("merged %d scp files (%d utterances) into %s", len(scps), len(feats), d.file("feats.scp"))
    return d.file("feats.scp")
