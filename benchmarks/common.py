"""What every benchmark records beside its figures: the machine, the commit, and the result files.

    from common import git_commit, machine, write_result   # benchmarks/ is on sys.path when a script runs
"""

from __future__ import annotations

import json
from pathlib import Path

from nlplab.io import atomic_write_text
from nlplab.provenance import git_commit, machine

__all__ = ["RESULTS", "footer", "git_commit", "machine", "write_result"]

RESULTS = Path(__file__).parent / "results"


def footer(result: dict, note: str = "") -> str:
    """The Markdown lines under a table: the command, then the machine, date and wall time of `result` (a payload
    with command, machine, date and wall_seconds), with `note` after the total."""
    m = result["machine"]
    return (f"Command: `{result['command']}`  \n"
            f"Machine: {m['cpu']}, {m['cores']} cores, {m['platform']}, torch {m['torch']} ({m['torch_threads']} threads); "
            f"{result['date']}; total {result['wall_seconds']:.0f} s{note}\n")


def write_result(name: str, payload: dict[str, object], markdown: str, out: Path = RESULTS) -> None:
    """Write out/name.json (payload, indented) and out/name.md (the Markdown table), each atomically."""
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / f"{name}.json", json.dumps(payload, indent=2) + "\n")
    atomic_write_text(out / f"{name}.md", markdown)
