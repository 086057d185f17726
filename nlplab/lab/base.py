"""The lab runner: what every lab shares (seed, quick mode, progress bars, plots, result files)."""

from __future__ import annotations

import importlib
import json
import shlex
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from threadpoolctl import threadpool_limits

from nlplab.errors import ConfigError
from nlplab.io import atomic_write, atomic_write_text, progress
from nlplab.provenance import git_commit, machine

# lab name -> module that defines LAB
LABS = {
    "nielsen": "nlplab.lab.nielsen",
    "regularization": "nlplab.lab.regularization",
    "cost": "nlplab.lab.cost",
    "init": "nlplab.lab.init",
    "vanishing": "nlplab.lab.vanishing",
    "hyperparams": "nlplab.lab.hyperparams",
    "attention-scale": "nlplab.lab.attention_scale",
    "norm": "nlplab.lab.norm",
    "dropout-bn": "nlplab.lab.dropout_bn",
    "imbalance": "nlplab.lab.imbalance",
    "optimizers": "nlplab.lab.optimizers",
    "parallel": "nlplab.lab.parallel",
    "mutual-info": "nlplab.lab.mutual_info",
    "boundaries": "nlplab.lab.boundaries",
    "sorting": "nlplab.lab.sorting",
    "search": "nlplab.lab.search",
    "pretraining": "nlplab.lab.pretraining",
    "lora-rank": "nlplab.lab.lora_rank",
}


@dataclass
class LabContext:
    """What a lab run gets: where to write, quick or full, the seed, and whether to show progress bars."""

    name: str
    out: Path
    quick: bool = False
    seed: int = 0
    progress: bool | None = None
    plots: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)

    @property
    def partial(self) -> Path:
        """Where finished steps wait until the lab ends: out/NAME.partial.json."""
        return self.out / f"{self.name}.partial.json"

    def step(self, key: str, compute: Callable[[], Any]) -> Any:
        """The JSON value `compute()` returns, computed once: finished steps are kept in `partial` until the lab ends,
        so running the same lab again (same --quick and --seed) after an interruption skips them."""
        run = f"quick={self.quick} seed={self.seed}"
        saved = json.loads(self.partial.read_text(encoding="utf-8")) if self.partial.exists() else {}
        steps = saved.get("steps", {}) if saved.get("run") == run else {}
        if key in steps:
            self.reused.append(key)
            return steps[key]
        steps[key] = json.loads(json.dumps(compute()))
        atomic_write_text(self.partial, json.dumps({"run": run, "steps": steps}, ensure_ascii=False))
        return steps[key]

    def bar(self, iterable: Iterable[Any] | None = None, total: int | None = None, desc: str = "") -> Any:
        """Progress over `iterable` (`nlplab.io.progress`: hidden when progress is False)."""
        return progress(iterable, total=total, desc=f"{self.name}: {desc}" if desc else self.name, enabled=self.progress)

    def save_plot(self, fig: Any, stem: str) -> Path:
        """Write a matplotlib figure to `out/NAME_stem.png` atomically, close it, and list it in the report."""
        import matplotlib.pyplot as plt

        path = self.out / f"{self.name}_{stem}.png"
        try:
            atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight"))
        finally:
            plt.close(fig)
        self.plots.append(path.name)
        return path


@dataclass
class LabResult:
    """A lab's outcome: the table (one dict per row, same keys), one line of what was measured, whether the
    claim's direction held, and any further figures for the JSON file."""

    rows: list[dict[str, Any]]
    summary: str
    holds: bool
    figures: dict[str, Any] = field(default_factory=dict)


@dataclass
class Lab:
    name: str
    claim: str
    run: Callable[[LabContext], LabResult]


def get_lab(name: str) -> Lab:
    if name not in LABS:
        raise ConfigError(f"unknown lab {name!r}; `nlplab lab list` shows them: {', '.join(LABS)}")
    return importlib.import_module(LABS[name]).LAB


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """A Markdown table with the keys of the first row as columns; floats to 4 significant digits."""
    if not rows:
        return "(no rows)\n"
    columns = list(rows[0])

    def cell(value: Any) -> str:
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c, "")) for c in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def run_lab(name: str, out: str | Path, quick: bool = False, seed: int = 0, progress: bool | None = None) -> LabResult:
    """Run lab `name` on one thread (torch and BLAS: timings in the tables compare like with like, and small
    matrices gain nothing from more) and write out/NAME.md, out/NAME.json and its plots (all atomically)."""
    lab = get_lab(name)
    ctx = LabContext(name, Path(out), quick, seed, progress)
    ctx.out.mkdir(parents=True, exist_ok=True)
    plt_backend()
    started, t0 = datetime.now(timezone.utc), time.perf_counter()
    import scipy.linalg  # noqa: F401  (SciPy brings its own BLAS: loaded now, the limit below covers it too)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            result = lab.run(ctx)
            machine_now = machine()
    finally:
        torch.set_num_threads(threads)
    seconds = time.perf_counter() - t0
    command = "nlplab " + shlex.join(sys.argv[1:]) if Path(sys.argv[0]).name == "nlplab" else f"run_lab({name!r}, quick={quick}, seed={seed})"
    meta = {"lab": name, "claim": lab.claim, "summary": result.summary, "holds": result.holds, "quick": quick, "seed": seed,
            "command": command, "date": started.isoformat(timespec="seconds"), "seconds": round(seconds, 2),
            "machine": machine_now, "commit": git_commit(), "plots": ctx.plots, "steps_reused": ctx.reused}
    atomic_write_text(ctx.out / f"{name}.json", json.dumps({**meta, "rows": result.rows, **result.figures},
                                                            ensure_ascii=False, indent=2) + "\n")
    plots = "".join(f"![{p}]({p})\n" for p in ctx.plots)
    atomic_write_text(ctx.out / f"{name}.md", f"# Lab `{name}`{' (quick)' if quick else ''}\n\n"
                      f"**Claim.** {lab.claim}\n\n**Measured.** {result.summary} "
                      f"({'holds' if result.holds else 'does NOT hold'})\n\n" + markdown_table(result.rows) + "\n" + plots
                      + f"\n`{command}` — {started:%Y-%m-%d}, {seconds:.1f} s, {meta['machine']['cpu']}, "
                      f"{meta['machine']['cores']} cores, torch threads {meta['machine']['torch_threads']}, BLAS threads "
                      f"{meta['machine']['blas_threads']}, seed {seed}"
                      + (f"; steps from an interrupted run: {', '.join(ctx.reused)}" if ctx.reused else "") + ".\n")
    ctx.partial.unlink(missing_ok=True)
    return result


def plt_backend() -> None:
    import matplotlib

    matplotlib.use("Agg")
