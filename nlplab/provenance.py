"""Where a figure came from: the machine, the software and the commit it was measured with."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

import torch
from threadpoolctl import threadpool_info


def machine() -> dict[str, object]:
    """Platform, Python version, CPU model (from /proc/cpuinfo), core count, torch version and threads, the BLAS
    threads NumPy uses, and the load average now (other processes skew timings)."""
    cpuinfo = Path("/proc/cpuinfo")
    models = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
              if line.startswith("model name")] if cpuinfo.exists() else []
    return {"platform": platform.platform(), "python": platform.python_version(),
            "cpu": models[0] if models else platform.processor(), "cores": os.cpu_count(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "blas_threads": max((pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"), default=None),
            "load_average": os.getloadavg()}


def git_commit(where: Path = Path(__file__).parent) -> str | None:
    """The checked-out commit, with '+dirty' when tracked files other than benchmarks/results/ differ from it (result
    files written by the run being recorded do not make the code dirty) for the checkout holding `where` (by
    default nlplab's own); None outside a git checkout."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=where, capture_output=True, text=True,
                              check=True).stdout.strip()
    try:
        changed = git("status", "--porcelain", "--untracked-files=no", "--", ":(top)", ":(top,exclude)benchmarks/results")
        return git("rev-parse", "HEAD") + ("+dirty" if changed else "")
    except (OSError, subprocess.CalledProcessError):
        return None
