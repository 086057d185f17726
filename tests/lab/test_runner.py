import json

import pytest

from nlplab.cli import main
from nlplab.errors import ConfigError
from nlplab.lab import get_lab, run_lab
from nlplab.lab.base import markdown_table


def test_quick_optimizers_lab_writes_table_json_and_plot(tmp_path):
    result = run_lab("optimizers", tmp_path, quick=True, progress=False)
    assert result.holds
    data = json.loads((tmp_path / "optimizers.json").read_text())
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
