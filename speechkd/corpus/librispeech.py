"""LibriSpeech (and the Libri-Light limited-resource fine-tuning split) -> Kaldi data dirs.

Real on-disk layout read here::

    LibriSpeech/<subset>/<spk>/<chapter>/<spk>-<chapter>.trans.txt     "<spk>-<chapter>-<utt> TEXT" lines
    LibriSpeech/<subset>/<spk>/<chapter>/<spk>-<chapter>-<utt>.flac
        subsets: train-clean-100 train-clean-360 train-other-500 dev-clean dev-other test-clean test-other
    librispeech_finetuning/1h/{0..5}/{clean,other}/<spk>/<chapter>/...  (same flac + trans.txt layout)
    librispeech_finetuning/9h/{clean,other}/<spk>/<chapter>/...

Usage::

    >>> from speechkd.corpus.librispeech import prepare
    >>> dirs = prepare("/data/LibriSpeech", "data", subsets=["train-clean-100", "dev-clean"],
    ...                finetune_src="/data/librispeech_finetuning")       # doctest: +SKIP
    >>> sorted(dirs)                                                      # doctest: +SKIP
    ['dev_clean', 'train_10h', 'train_10min', 'train_1h', 'train_clean_100']

Output ``<out>/<subset with _>/`` holds ``wav.scp`` (absolute flac path), ``text`` (upper case as
distributed; ``lowercase=True`` lower-cases it), ``utt2spk`` (speaker = the first id field), ``spk2utt``,
``utt2lang`` (``en``). The fine-tuning split gives ``train_10min`` (fold ``1h/0``), ``train_1h`` (all six
folds of ``1h``) and ``train_10h`` (``1h`` + ``9h``), each over both ``clean`` and ``other``.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Dict, Iterable, List, Sequence, Tuple

from ..data.datadir import DataDir
from ..utils.errors import DataError
from .prep_common import check_audio_exists, finish_datadir, new_entries, write_fake_audio

log = logging.getLogger("speechkd")

SUBSETS = ("train-clean-100", "train-clean-360", "train-other-500", "dev-clean", "dev-other",
           "test-clean", "test-other")
DEFAULT_SUBSETS = ("train-clean-100", "dev-clean", "test-clean")
FINETUNE_SPLITS = ("train_10min", "train_1h", "train_10h")


def _trans_files(root: Path) -> List[Path]:
    return sorted(root.rglob("*.trans.txt"))


def read_trans_dirs(roots: Iterable[Path], lowercase: bool = False, check_audio: bool = True,
                    desc: str = "librispeech") -> Dict[str, Dict[str, str]]:
    """Read every ``<spk>-<chapter>.trans.txt`` under ``roots`` into data-dir entries.

    Each line must be ``<spk>-<chapter>-<utt> TEXT`` with the id matching the file's name, non-empty
    text and (with ``check_audio``) an existing ``<id>.flac`` beside it; otherwise DataError(file, line).
    """
    from ..utils.progress import progress as progress_bar

    files = [f for r in roots for f in _trans_files(Path(r))]
    entries = new_entries("wav.scp", "text", "utt2spk", "utt2lang")
    for tf in progress_bar(files, desc=desc, unit="chapter", progress=len(files) >= 50):
        prefix = tf.name[: -len(".trans.txt")]
        chapter_dir = tf.parent.resolve()
        with open(tf, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                parts = line.strip().split(maxsplit=1)
                utt = parts[0]
                if len(parts) < 2:
                    raise DataError(tf, n, f"utterance '{utt}' has no transcript")
                fields = utt.split("-")
                if len(fields) != 3 or "-".join(fields[:2]) != prefix:
                    raise DataError(tf, n, f"utterance id '{utt}' does not match '{prefix}-<utt>'")
                if utt in entries["text"]:
                    raise DataError(tf, n, f"duplicate utterance '{utt}'")
                audio = chapter_dir / f"{utt}.flac"
                if check_audio:
                    check_audio_exists(audio, tf, n, utt)
                text = " ".join(parts[1].split())
                entries["wav.scp"][utt] = str(audio)
                entries["text"][utt] = text.lower() if lowercase else text
                entries["utt2spk"][utt] = fields[0]
                entries["utt2lang"][utt] = "en"
    return entries


def _find_subset(src: Path, subset: str) -> Path:
    for cand in (src / subset, src / "LibriSpeech" / subset):
        if cand.is_dir():
            return cand
    raise DataError(src / subset, None, f"LibriSpeech subset '{subset}' not found under {src}")


def finetune_roots(finetune_src) -> Dict[str, List[Path]]:
    """Folders of each Libri-Light split: ``{"train_10min": [...], "train_1h": [...], "train_10h": [...]}``."""
    ft = Path(finetune_src)
    one_h = [ft / "1h" / str(k) / kind for k in range(6) for kind in ("clean", "other")]
    nine_h = [ft / "9h" / kind for kind in ("clean", "other")]
    for d in one_h + nine_h:
        if not d.is_dir():
            raise DataError(d, None, "Libri-Light fine-tuning folder not found")
    return {"train_10min": one_h[:2], "train_1h": one_h, "train_10h": one_h + nine_h}


def prepare(src, out_dir, subsets: Sequence[str] = DEFAULT_SUBSETS, finetune_src=None,
            lowercase: bool = False, check_audio: bool = True, utt2dur: bool = False) -> Dict[str, DataDir]:
    """Write ``<out_dir>/<subset_with_underscores>`` for each subset (+ the Libri-Light split).

    ``src`` is the ``LibriSpeech`` folder (or its parent); ``finetune_src`` the ``librispeech_finetuning``
    folder (optional). Returns ``{name: DataDir}``.
    """
    src, out = Path(src), Path(out_dir)
    result: Dict[str, DataDir] = {}
    for subset in subsets:
        root = _find_subset(src, subset)
        name = subset.replace("-", "_")
        entries = read_trans_dirs([root], lowercase, check_audio, desc=subset)
        result[name] = finish_datadir(out / name, entries, what=str(root), utt2dur=utt2dur)
    if finetune_src:
        for name, roots in finetune_roots(finetune_src).items():
            entries = read_trans_dirs(roots, lowercase, check_audio, desc=name)
            result[name] = finish_datadir(out / name, entries, what=str(finetune_src), utt2dur=utt2dur)
    return result


# ---------------------------------------------------------------------------------------------- test tree
_WORDS = ["THE", "CAT", "SAT", "ON", "A", "MAT", "AND", "DOG", "RAN", "HOME"]


def _write_chapter(root: Path, spk: str, chapter: str, n_utts: int, seed: int) -> List[Tuple[str, str]]:
    d = root / spk / chapter
    d.mkdir(parents=True, exist_ok=True)
    lines = []
    for u in range(n_utts):
        utt = f"{spk}-{chapter}-{u:04d}"
        text = " ".join(_WORDS[(seed + u + j) % len(_WORDS)] for j in range(2 + u % 3))
        write_fake_audio(d / f"{utt}.flac", seed * 100 + u, seconds=0.2 + 0.05 * u)
        lines.append((utt, text))
    (d / f"{spk}-{chapter}.trans.txt").write_text("".join(f"{u} {t}\n" for u, t in lines))
    return lines


def make_fake_tree(root, subsets: Sequence[str] = ("train-clean-100", "dev-clean"), n_speakers: int = 2,
                   n_utts: int = 2, finetune: bool = True) -> Dict[str, Path]:
    """Write a tiny LibriSpeech (+ ``librispeech_finetuning``) tree under ``root``.

    Speakers of subset ``i`` are ``<100*(i+1)+s>``, chapter ``<speaker>0``; utterance ``u`` of a chapter
    has text ``_WORDS[(seed+u+j) % 10] for j < 2 + u % 3`` with ``seed = int(speaker)``. The fine-tuning
    tree has one speaker per folder (``1h/k/clean``: speaker ``9<k>0``, ``other``: ``9<k>1``,
    ``9h/clean``: ``980``, ``9h/other``: ``981``), one chapter, ``n_utts`` utterances.
    Returns ``{"librispeech": <root>/LibriSpeech, "finetune": <root>/librispeech_finetuning}``.
    """
    root = Path(root)
    ls = root / "LibriSpeech"
    for i, subset in enumerate(subsets):
        for s in range(n_speakers):
            spk = str(100 * (i + 1) + s)
            _write_chapter(ls / subset, spk, spk + "0", n_utts, int(spk))
    out = {"librispeech": ls}
    if finetune:
        ft = root / "librispeech_finetuning"
        for k in range(6):
            for j, kind in enumerate(("clean", "other")):
                spk = f"9{k}{j}"
                _write_chapter(ft / "1h" / str(k) / kind, spk, spk + "0", n_utts, int(spk))
        for j, kind in enumerate(("clean", "other")):
            spk = f"98{j}"
            _write_chapter(ft / "9h" / kind, spk, spk + "0", n_utts, int(spk))
        out["finetune"] = ft
    return out
