"""Atomic file writes (write to a temporary file in the same directory, then rename over the target, so an
interrupted process never leaves a half-written file behind) and progress reports for long loops."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from nlplab.errors import NlplabError


def atomic_write(path: str | Path, write: Callable[[str], None]) -> Path:
    """Call `write(tmp_path)` to produce the file, then atomically move it to `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def current_umask() -> int:
    """The process's file mode creation mask (files are created 0o666 & ~umask, as `open` creates them)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write `text` (UTF-8) to `path` atomically."""
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write `data` to `path` atomically."""
    return atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


def read_json_object(path: str | Path, error: type[NlplabError], fix: str) -> dict[str, Any]:
    """Parse the JSON object in `path`; a missing, undecodable or non-object file raises `error` ending with `fix`."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise error(f"{path}: not found; {fix}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise error(f"{path}: not a valid JSON file ({e}), it is corrupted; {fix}") from None
    if not isinstance(data, dict):
        raise error(f"{path}: expected a JSON object, found {type(data).__name__}; {fix}")
    return data


class LogProgress:
    """Progress as plain lines on stderr for output that is not a terminal (a log file, CI, nohup): one line when
    at least `interval` seconds have passed since the previous one, so a long loop shows signs of life without
    flooding the log. Has the part of tqdm's interface the project uses (iterate, update, set_postfix, close)."""

    def __init__(self, iterable: Iterable | None, total: int | None, desc: str, unit: str, interval: float = 30.0) -> None:
        if total is None and hasattr(iterable, "__len__"):
            total = len(iterable)
        self.iterable, self.total, self.desc, self.unit, self.interval = iterable, total, desc, unit, interval
        self.n, self.postfix = 0, ""
        self.start = self.last = time.monotonic()

    def __iter__(self) -> Iterator:
        for item in self.iterable:
            yield item
            self.update()

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self.last >= self.interval:
            self.last = now
            done = f"{self.n}/{self.total}{self.unit} ({self.n / self.total:.0%})" if self.total else f"{self.n}{self.unit}"
            print(f"{self.desc}: {done}, {now - self.start:.0f}s {self.postfix}".rstrip(), file=sys.stderr, flush=True)

    def set_postfix(self, **values: object) -> None:
        self.postfix = " ".join(f"{k} {v}" for k, v in values.items())

    def close(self) -> None:
        """Nothing to tidy: lines are complete when written."""

    def __enter__(self) -> LogProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def progress(iterable: Iterable | None = None, total: int | None = None, desc: str = "", unit: str = " it",
             enabled: bool | None = None) -> Any:
    """The one rule for progress: nothing when `enabled` is False; otherwise a tqdm bar when stderr is a
    terminal, else a line every 30 s (`LogProgress`). None and True mean the same: show it."""
    if enabled is False:
        return LogProgress(iterable, total, desc, unit, interval=float("inf"))
    if sys.stderr.isatty():
        from tqdm.auto import tqdm

        return tqdm(iterable, total=total, desc=desc, unit=unit, leave=False)
    return LogProgress(iterable, total, desc, unit)
