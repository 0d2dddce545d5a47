"""Shared plumbing for the thin CLIs in :mod:`speechkd.bin`.

Every CLI: logs its command line, accepts ``--config x.yaml`` plus dotted overrides
(``--optim.lr 1e-3``), and turns :class:`~speechkd.utils.errors.SpeechkdError` into a one-line message
on stderr with exit status 1 (no traceback for bad input).
"""
from __future__ import annotations

import argparse
import logging
import shlex
import sys
from typing import Callable, Sequence

from .errors import SpeechkdError

log = logging.getLogger("speechkd")


def setup_logging(verbose: int = 1) -> None:
    level = logging.DEBUG if verbose > 1 else logging.INFO if verbose == 1 else logging.WARNING
    logging.basicConfig(level=level, stream=sys.stderr,
                        format="%(asctime)s (%(module)s:%(lineno)d) %(levelname)s: %(message)s")


def log_command_line(argv: Sequence[str] | None = None) -> None:
    argv = sys.argv if argv is None else [sys.argv[0], *argv]
    log.info("# %s", " ".join(shlex.quote(a) for a in argv))


def split_overrides(rest: Sequence[str]) -> list[str]:
    """Turn leftover ``--a.b 3`` / ``--a.b=3`` arguments into ``["a.b=3"]`` overrides."""
    out, i = [], 0
    rest = list(rest)
    while i < len(rest):
        arg = rest[i]
        if not arg.startswith("--"):
            raise SpeechkdError(f"unexpected argument '{arg}'")
        key = arg[2:]
        if "=" in key:
            out.append(key)
            i += 1
        elif i + 1 < len(rest):
            out.append(f"{key}={rest[i + 1]}")
            i += 2
        else:
            raise SpeechkdError(f"option '{arg}' needs a value")
    return out


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None,
               allow_overrides: bool = True):
    """Parse known args; with ``allow_overrides`` the rest become ``args.overrides`` (list of k=v)."""
    if allow_overrides:
        args, rest = parser.parse_known_args(argv)
        args.overrides = split_overrides(rest)
    else:
        args = parser.parse_args(argv)
        args.overrides = []
    return args


def run_main(fn: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None) -> int:
    """Run a CLI body, mapping SpeechkdError to a one-line error and exit code 1."""
    setup_logging()
    log_command_line(argv)
    try:
        rc = fn(argv)
    except SpeechkdError as e:
        print(f"ERROR: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("ERROR: interrupted", file=sys.stderr)
        return 130
    return int(rc or 0)
