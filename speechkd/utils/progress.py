"""Progress bars for terminals only.

tqdm redraws its bar with carriage returns; in a log file (``train.log`` of a job, ``utils/run.py`` or
slurm output) every redraw stays as a frame and floods the log. :func:`progress` is tqdm with the bar
shown only when asked for (``progress=True``) *and* its stream is a terminal; in files the periodic INFO
log lines of the caller are the record. Every progress bar in speechkd goes through it::

    for utt, wav in progress(items, desc="fbank", progress=not args.no_progress):
        ...
    bar = progress(total=n, desc="train")   # bar.update(1), bar.set_postfix(...), bar.close()
"""
from __future__ import annotations

import sys
from typing import IO, Iterable, Optional


def is_terminal(stream: Optional[IO] = None) -> bool:
    """True when ``stream`` (default: ``sys.stderr``) is an open terminal."""
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or closed
        return False


def progress(iterable: Optional[Iterable] = None, *, progress: bool = True, file: Optional[IO] = None, **kw):
    """``tqdm(iterable, **kw)``, disabled unless ``progress`` and the output stream is a terminal.

    ``file`` is tqdm's output stream (default ``sys.stderr``); a ``disable=True`` in ``kw`` also disables.
    A disabled bar still iterates and accepts ``update``/``set_postfix``/``close`` (no output).
    """
    from tqdm import tqdm

    disable = bool(kw.pop("disable", False)) or not progress or not is_terminal(file)
    if file is not None:
        kw["file"] = file
    return tqdm(iterable, disable=disable, **kw)
