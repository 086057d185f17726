"""Atomic writes honour the umask; progress follows one rule (a bar on a terminal, bounded lines otherwise)."""

import os
import stat

import pytest

from nlplab.io import LogProgress, atomic_write_text, progress


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_get_the_mode_the_umask_gives(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        path = atomic_write_text(tmp_path / "f.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == mode


def test_log_progress_writes_a_line_per_interval_and_nothing_when_disabled(capsys, monkeypatch):
    clock = iter(range(0, 1000, 10))  # each reading of the clock is 10 s later
    monkeypatch.setattr("nlplab.io.time.monotonic", lambda: next(clock))
    bar = LogProgress(range(7), None, "epoch 1/3", " steps", interval=30)
    bar.set_postfix(loss="0.5")
    assert list(bar) == list(range(7))
    lines = capsys.readouterr().err.splitlines()
    assert lines == ["epoch 1/3: 3/7 steps (43%), 30s loss 0.5", "epoch 1/3: 6/7 steps (86%), 60s loss 0.5"]
    assert list(progress(range(3), desc="x", enabled=False)) == [0, 1, 2]
    assert capsys.readouterr().err == ""


def test_output_that_is_not_a_terminal_gets_lines_not_bars(monkeypatch):
    monkeypatch.setattr("sys.stderr.isatty", lambda: False)
    assert isinstance(progress(range(3), desc="x"), LogProgress)
    assert isinstance(progress(total=3, desc="x", enabled=True), LogProgress)
