"""Cost of full vs block-sparse attention as the sequence grows: forward + backward time and peak memory.

For n = 256, 512, ..., 8192 (B = 1, H = 4, d = 64, float32, one thread), three ways compute the same causal
pattern's attention and its gradients with respect to q, k and v:
- full: dense softmax(Q Kᵀ/√d + M) V with M from `pattern_mask` (the n × n scores are formed);
- local: `sparse_attention(kind="local", window=128)`, block-sparse;
- strided: `sparse_attention(kind="strided", window=128, stride=128)`, block-sparse plus n/128 summary columns.
Full and local give the same result (local window); strided sees more keys. Each point is the median of repeated
forward + backward passes (at least --repeats, and at least --min-seconds in all), as wall time and as CPU time
of the process (less sensitive to other jobs on a shared machine). Memory is reported twice:
- measured: peak resident set growth of the process during one pass, VmHWM − VmRSS before it, with the peak reset
  through /proc/self/clear_refs (Linux) before the pass (tracemalloc does not see torch's CPU allocations). glibc's
  mmap threshold is pinned to 64 KiB (mallopt), so every buffer above it is mapped on allocation and unmapped on
  free, and RSS follows the live tensors instead of a heap that keeps freed pages;
- analytic: bytes of the largest intermediate, the float32 score tensor, B·H·n·n·4 for full and
  B·H·n_blocks·b·(keys per block)·4 for block-sparse.
Full attention stops once the next size would exceed --full-max-gb (analytic scores × 3: the n × n scores,
probabilities and their gradient) or --full-max-seconds. The growth exponent is the slope of a least-squares line of
log(cost) on log(n), over the sizes n ≥ 1024 (below that fixed overheads dominate).

    python benchmarks/sparse_attention_bench.py
    python benchmarks/sparse_attention_bench.py --sizes 256 512 1024 --out /tmp/sparse
"""

from __future__ import annotations

import argparse
import ctypes
import datetime
import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from common import git_commit, machine, write_result
from torch import Tensor

from nlplab.io import atomic_write
from nlplab.nn.sparse_attention import pattern_mask, sparse_attention

METHODS = ("full", "local", "strided")
B, H, D, WINDOW, STRIDE = 1, 4, 64, 128, 128
FIT_FROM = 1024
COSTS = ("seconds", "cpu_seconds", "peak_rss_growth_bytes", "score_bytes")
M_MMAP_THRESHOLD = -3


def full_attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor) -> Tensor:
    """Dense masked attention, softmax(Q Kᵀ/√d + M) V; (B, H, n, d) with a (n, n) boolean mask."""
    scores = (q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])).masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


def attention_fn(method: str, n: int) -> Callable[[Tensor, Tensor, Tensor], Tensor]:
    if method == "full":
        mask = pattern_mask(n, "local", WINDOW, causal=True)
        return lambda q, k, v: full_attention(q, k, v, mask)
    stride = STRIDE if method == "strided" else None
    return lambda q, k, v: sparse_attention(q, k, v, method, WINDOW, stride, causal=True)


def score_bytes(method: str, n: int) -> int:
    """Size of the float32 score tensor: (B, H, n, n) for full, (B, H, blocks, b, keys) for block-sparse."""
    if method == "full":
        return B * H * n * n * 4
    b = min(WINDOW, n)
    blocks, reach = math.ceil(n / b), math.ceil((WINDOW - 1) / b)
    keys = (reach + 1) * b + (len(range(STRIDE - 1, n, STRIDE)) if method == "strided" else 0)
    return B * H * blocks * b * keys * 4


def resident_kb(field: str) -> int:
    """VmRSS or VmHWM (peak) of this process in kB, from /proc/self/status."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field + ":"))


def one_pass(fn: Callable[[Tensor, Tensor, Tensor], Tensor], n: int) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds and peak RSS growth (bytes) of forward + backward on fresh q, k, v (B, H, n, d)."""
    q, k, v = (torch.randn(B, H, n, D, requires_grad=True) for _ in range(3))
    probe = torch.randn(B, H, n, D)
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")
    before = resident_kb("VmRSS")
    start, cpu_start = time.perf_counter(), time.process_time()
    (fn(q, k, v) * probe).sum().backward()
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    return seconds, cpu_seconds, (resident_kb("VmHWM") - before) * 1024


def measure(method: str, n: int, repeats: int, min_seconds: float) -> dict[str, float]:
    fn = attention_fn(method, n)
    one_pass(fn, n)
    passes = []
    while len(passes) < repeats or sum(p[0] for p in passes) < min_seconds:
        passes.append(one_pass(fn, n))
    seconds, cpu_seconds, peaks = zip(*passes)
    return {"n": n, "seconds": statistics.median(seconds), "cpu_seconds": statistics.median(cpu_seconds),
            "passes": len(passes), "peak_rss_growth_bytes": max(peaks), "score_bytes": score_bytes(method, n)}


def exponent(points: list[dict[str, float]], key: str) -> float | None:
    """Slope of log(key) against log(n) over the points with n >= FIT_FROM (None with fewer than two)."""
    used = [p for p in points if p["n"] >= FIT_FROM and p[key] > 0]
    if len(used) < 2:
        return None
    return float(np.polyfit(np.log([p["n"] for p in used]), np.log([p[key] for p in used]), 1)[0])


def plot(result: dict[str, object], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = ("forward + backward, wall (s)", "forward + backward, CPU (s)", "peak RSS growth (bytes)",
              "largest intermediate: scores (bytes)")
    fig, axes = plt.subplots(1, 4, figsize=(20, 4.5))
    for ax, key, label in zip(axes, COSTS, labels):
        for method, r in result["methods"].items():
            points = r["points"]
            slope = r["exponents"][key]
            ax.loglog([p["n"] for p in points], [p[key] for p in points], "o-", base=2,
                      label=f"{method} (slope {slope:.2f})" if slope is not None else method)
        ax.set_xlabel("sequence length n")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.suptitle(f"Full vs block-sparse attention, B={B}, H={H}, d={D}, window {WINDOW}, stride {STRIDE}, "
                 f"{result['threads']} thread; slopes fitted over n ≥ {FIT_FROM}")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)


def markdown(result: dict[str, object]) -> str:
    m = result["machine"]
    lines = [f"# Full vs block-sparse attention ({result['date'][:10]})", "", f"`{result['command']}`", "",
             (f"{m['cpu']}, {m['cores']} cores (shared), {result['threads']} torch thread, torch {m['torch']}; "
             f"B={B}, H={H}, d={D}, float32, causal, window {WINDOW}, stride {STRIDE}; forward + backward, median "
             f"of repeated passes; wall time {result['wall_seconds']:.0f} s. Peak RSS growth is measured "
             "(VmHWM − VmRSS, peak reset before each pass, glibc mmap threshold pinned to 64 KiB so freed buffers "
             "leave RSS); scores is the analytic size of the largest intermediate."),
             "", "| n | method | wall time (ms) | CPU time (ms) | peak RSS growth (MiB) | scores (MiB) |",
             "|---:|---|---:|---:|---:|---:|"]
    rows = sorted((p["n"], method, p) for method, r in result["methods"].items() for p in r["points"])
    lines += [f"| {n} | {method} | {p['seconds'] * 1e3:.1f} | {p['cpu_seconds'] * 1e3:.1f} "
              f"| {p['peak_rss_growth_bytes'] / 2**20:.1f} "
              f"| {p['score_bytes'] / 2**20:.1f} |" for n, method, p in rows]
    lines += ["", f"Growth exponents (slope of log cost on log n, n ≥ {FIT_FROM}):", "",
              "| method | wall time | CPU time | peak RSS growth | scores |", "|---|---:|---:|---:|---:|"]
    for method, r in result["methods"].items():
        slopes = [r["exponents"][key] for key in COSTS]
        lines.append(f"| {method} | " + " | ".join("–" if x is None else f"{x:.2f}" for x in slopes) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256 * 2**i for i in range(6)])
    parser.add_argument("--repeats", type=int, default=3, help="at least this many timed passes per point")
    parser.add_argument("--min-seconds", type=float, default=3.0, help="and at least this much timed work")
    parser.add_argument("--full-max-gb", type=float, default=6.0, help="skip full attention above this estimate")
    parser.add_argument("--full-max-seconds", type=float, default=30.0, help="stop full attention after a pass "
                        "this long would be exceeded at the next size (time × 4)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)
    command = " ".join(["python", "benchmarks/sparse_attention_bench.py", *(sys.argv[1:] if argv is None else argv)])

    ctypes.CDLL("libc.so.6").mallopt(M_MMAP_THRESHOLD, 64 * 1024)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    start, load_start = time.perf_counter(), os.getloadavg()[0]
    methods: dict[str, dict[str, object]] = {}
    for method in METHODS:
        points: list[dict[str, float]] = []
        for n in sorted(args.sizes):
            too_big = method == "full" and 3 * score_bytes(method, n) > args.full_max_gb * 2**30
            too_slow = method == "full" and points and 4 * points[-1]["seconds"] > args.full_max_seconds
            if too_big or too_slow:
                break
            points.append(measure(method, n, args.repeats, args.min_seconds))
            p = points[-1]
            print(f"{method:8s} n={n:5d} {p['seconds'] * 1e3:9.1f} ms (CPU {p['cpu_seconds'] * 1e3:9.1f} ms)  peak +{p['peak_rss_growth_bytes'] / 2**20:8.1f}"
                  f" MiB  scores {p['score_bytes'] / 2**20:8.1f} MiB", flush=True)
        methods[method] = {"points": points, "exponents": {key: exponent(points, key) for key in COSTS}}
    result = {"command": command, "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "commit": git_commit(), "machine": machine(), "threads": 1,
              "load_average_1min": {"start": load_start, "end": os.getloadavg()[0]},
              "shape": {"batch": B, "heads": H, "head_dim": D, "dtype": "float32"},
              "pattern": {"causal": True, "window": WINDOW, "stride": STRIDE},
              "memory_measure": "peak RSS growth: VmHWM - VmRSS before the pass, peak reset via /proc/self/clear_refs, "
                                "glibc mmap threshold pinned to 64 KiB; score_bytes: analytic size of the float32 "
                                "score tensor",
              "fit": f"least squares of log(cost) on log(n) over n >= {FIT_FROM}",
              "wall_seconds": time.perf_counter() - start, "methods": methods}
    write_result("sparse_attention", result, markdown(result), args.out)
    plot(result, args.out / "sparse_attention.png")
    print(markdown(result))


if __name__ == "__main__":
    main()
