import json

import pytest
import torch

from nlplab.cli import main
from nlplab.errors import ConfigError
from nlplab.lab import base, get_lab, run_lab
from nlplab.lab.base import Lab, LabContext, LabResult, markdown_table


def test_quick_optimizers_lab_writes_table_json_and_plot(tmp_path):
    threads = torch.get_num_threads()
    result = run_lab("optimizers", tmp_path, quick=True, progress=False)
    assert result.holds
    data = json.loads((tmp_path / "optimizers.json").read_text())
    assert data["machine"]["torch_threads"] == 1 and data["machine"]["blas_threads"] == 1
    assert torch.get_num_threads() == threads
    assert data["lab"] == "optimizers" and data["quick"] and data["rows"] == result.rows
    assert {"machine", "date", "seconds", "command", "claim"} <= set(data)
    newton = next(r for r in data["rows"] if r["method"] == "newton")
    assert newton["updates"] == 1
    assert (tmp_path / "optimizers_loss.png").stat().st_size > 0
    assert "| newton | 1 |" in (tmp_path / "optimizers.md").read_text()


def test_unknown_lab_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(ConfigError, match="unknown lab"):
        get_lab("nope")
    assert main(["lab", "nope", "--out", str(tmp_path)]) == 2
    assert "nlplab lab list" in capsys.readouterr().err


def test_markdown_table_formats_floats():
    assert markdown_table([{"a": 1, "b": 0.123456}]) == "| a | b |\n|---|---|\n| 1 | 0.1235 |\n"


def test_a_step_is_computed_once_per_quick_and_seed(tmp_path):
    calls = []
    first = LabContext("demo", tmp_path, seed=1)
    assert first.step("a", lambda: calls.append("a") or {"x": (1, 2)}) == {"x": [1, 2]} and first.reused == []
    again = LabContext("demo", tmp_path, seed=1)
    assert again.step("a", lambda: calls.append("again") or 0) == {"x": [1, 2]} and again.reused == ["a"]
    other_seed = LabContext("demo", tmp_path, seed=2)
    assert other_seed.step("a", lambda: 5) == 5 and other_seed.reused == []
    assert calls == ["a"]


def test_an_interrupted_lab_continues_after_its_finished_steps(tmp_path, monkeypatch):
    calls, crash = [], [True]

    def run(ctx):
        a = ctx.step("a", lambda: calls.append("a") or 1.5)
        if crash:
            crash.pop()
            raise KeyboardInterrupt
        b = ctx.step("b", lambda: calls.append("b") or 2)
        return LabResult([{"a": a, "b": b}], "ok", True)

    monkeypatch.setattr(base, "get_lab", lambda name: Lab(name, "a claim", run))
    with pytest.raises(KeyboardInterrupt):
        run_lab("demo", tmp_path, progress=False)
    assert (tmp_path / "demo.partial.json").exists() and not (tmp_path / "demo.json").exists()
    result = run_lab("demo", tmp_path, progress=False)
    assert calls == ["a", "b"] and result.rows == [{"a": 1.5, "b": 2}]
    assert json.loads((tmp_path / "demo.json").read_text())["steps_reused"] == ["a"]
    assert "steps from an interrupted run: a" in (tmp_path / "demo.md").read_text()
    assert not (tmp_path / "demo.partial.json").exists()
