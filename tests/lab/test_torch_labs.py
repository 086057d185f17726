"""Each quick torch lab runs end to end, its claim holds, and one or two of its figures point the claim's way."""

import json

import pytest

from nlplab.lab import run_lab


def check_attention_scale(data: dict) -> None:
    rows = {(r["d_k"], r["scale"]): r for r in data["rows"]}
    assert rows[(1024, "none")]["mean max weight"] > 0.9 > 0.3 > rows[(1024, "1/√d_k")]["mean max weight"]
    assert rows[(1024, "none")]["median ‖∂L/∂s‖"] < rows[(16, "none")]["median ‖∂L/∂s‖"] / 100
    assert 0.9 < rows[(1024, "1/√d_k")]["score std"] < 1.1


CHECKS = {"attention-scale": check_attention_scale}


@pytest.mark.parametrize("name", list(CHECKS))
def test_quick_lab_holds(name, tmp_path):
    result = run_lab(name, tmp_path, quick=True, progress=False)
    assert result.holds, result.summary
    data = json.loads((tmp_path / f"{name}.json").read_text())
    assert data["holds"] and data["quick"] and data["plots"]
    assert all((tmp_path / plot).stat().st_size > 0 for plot in data["plots"])
    CHECKS[name](data)
