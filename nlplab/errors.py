"""Errors a user can act on. The CLI prints them as one line and exits with status 2."""

from __future__ import annotations

from pathlib import Path


class NlplabError(Exception):
    """Base of every error caused by bad input: data, options, files. The message says what and how to fix it."""


class DataError(NlplabError):
    """A data file or data set that cannot be read as asked."""

    def __init__(self, message: str, path: str | Path | None = None, line: int | None = None) -> None:
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(where + message)
        self.path = path
        self.line = line


class ConfigError(NlplabError):
    """An option, flag or config file value that is not valid."""


class TokenizerError(NlplabError):
    """A tokenizer that cannot be trained, saved or loaded as asked."""


class RunError(NlplabError):
    """A run directory that is missing, incomplete or of the wrong kind."""
