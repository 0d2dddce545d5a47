"""Atomic file output: write to a temporary name beside the target, rename on success.

A stage killed half-way therefore never leaves a truncated file under the final name.

Example::

    with atomic_open("data/train/text", "w") as f:
        f.write("utt1 hello\n")

    with atomic_path("exp/model.pt") as tmp:   # for libraries that want a path (torch.save, kaldiio)
        torch.save(state, tmp)

    with atomic_dir("exp/text_lm") as tmp:     # a whole directory (save_pretrained), replaced on success
        model.save_pretrained(tmp)
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import IO, Iterator, Union

PathLike = Union[str, os.PathLike]


@contextlib.contextmanager
def atomic_path(path: PathLike, suffix: str = "") -> Iterator[str]:
    """Yield a temporary path in the same directory; rename it to ``path`` if the block succeeds.

    ``suffix`` is appended to the temporary name (some writers look at the extension).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + suffix, dir=path.parent)
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_open(path: PathLike, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temporary file for writing; on success fsync it and rename it to ``path``."""
    if "b" in mode:
        encoding = None
    with atomic_path(path) as tmp:
        with open(tmp, mode, encoding=encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())


def atomic_write_text(path: PathLike, text: str) -> None:
    with atomic_open(path, "w") as f:
        f.write(text)


@contextlib.contextmanager
def atomic_dir(path: PathLike) -> Iterator[Path]:
    """Yield a temporary directory beside ``path``; on success it replaces ``path``, on an exception it is
    removed and ``path`` is left as it was. An existing ``path`` is renamed aside (``.name.old``) before the
    new one is renamed in and removed after, so a kill in between leaves a whole old or new directory."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
