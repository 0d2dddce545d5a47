"""Errors that name the file and line at fault, so a user can fix bad input without a traceback hunt."""
from __future__ import annotations


class SpeechkdError(Exception):
    """Base class for errors that the CLIs print as one line (no traceback)."""


class DataError(SpeechkdError):
    """Bad input data: ``DataError(path, line_no, message)`` prints as ``path:line: message``."""

    def __init__(self, path, line: int | None, message: str):
        self.path, self.line, self.message = str(path), line, message
        where = f"{path}:{line}" if line is not None else f"{path}"
        super().__init__(f"{where}: {message}")


class ConfigError(SpeechkdError):
    """Bad or mismatched configuration (unknown key, checkpoint/config mismatch)."""
