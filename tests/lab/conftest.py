import json

import pytest

from nlplab.lab import run_lab


@pytest.fixture
def quick_lab(tmp_path):
    """Run a lab's --quick variant; check its claim held and its files were written; give back its JSON data."""
    def run(name: str) -> dict:
        result = run_lab(name, tmp_path, quick=True, progress=False)
        assert result.holds, result.summary
        data = json.loads((tmp_path / f"{name}.json").read_text())
        assert data["holds"] and data["quick"] and data["plots"]
        assert all((tmp_path / plot).stat().st_size > 0 for plot in data["plots"])
        return data
    return run
