"""Lab `sorting`: how the sorts of `nlplab.classic.sorting` grow with n, which are stable, and where insertion sort
stops beating merge sort.

Random integer keys in [0, 2¹⁶) (two base-256 digits for radix sort; 65,536 buckets for counting sort, whose
time is dominated by them at these n). For each algorithm and n: the key comparisons counted (counting and radix
sort compare nothing: the keys or digits they read) and the best wall time of a few repeats, the garbage
collector paused as `timeit` pauses it. The growth exponent is the slope of log(count) and log(seconds) against
log(n) — about 2 for insertion, bubble and selection, a little over 1 for merge, quick and heap (n log n), 1 for
counting and radix (n·k, k fixed). The crossover: for each small n, the median time of insertion and merge sort
on fresh random lists; the first n from which merge sort stays faster.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np

from nlplab.classic.sorting import SORTS, STABLE, Counter, stability_counterexample
from nlplab.lab.base import Lab, LabContext, LabResult

QUADRATIC, LOGLINEAR, LINEAR = ("insertion", "bubble", "selection"), ("merge", "quick", "heap"), ("counting", "radix")
KEY_RANGE = 2**16


@contextmanager
def no_gc() -> Iterator[None]:
    """The garbage collector off inside the block, as `timeit` does: a full collection walks every object of the
    process (torch, SciPy...) and would land in whichever sort happens to trigger it."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def timed(sort: Callable[[list[int]], list[int]], keys: list[int]) -> float:
    with no_gc():
        t0 = time.perf_counter()
        sort(keys)
        return time.perf_counter() - t0


def measure(name: str, keys: list[int], repeats: int) -> tuple[int, float]:
    """(comparisons or key reads, best seconds of `repeats` runs) of sort `name` on `keys`."""
    counter = Counter()
    out = SORTS[name](keys, counter=counter)
    assert out == sorted(keys)
    return counter.comparisons or counter.key_reads, min(timed(SORTS[name], keys) for _ in range(repeats))


def slope(n: list[int], values: list[float]) -> float:
    """Least-squares slope of log(values) against log(n): the growth exponent."""
    return float(np.polyfit(np.log(n), np.log(values), 1)[0])


def crossover(ctx: LabContext, sizes: list[int], trials: int, rng: np.random.Generator) -> tuple[int | None, dict[str, list[float]]]:
    """Median seconds of insertion and merge sort per size; the first size from which merge sort stays faster."""
    times: dict[str, list[float]] = {"insertion": [], "merge": []}
    for n in ctx.bar(sizes, desc="crossover"):
        runs = {name: [] for name in times}
        for _ in range(trials):
            keys = rng.integers(0, KEY_RANGE, n).tolist()
            for name in times:
                runs[name].append(timed(SORTS[name], keys))
        for name in times:
            times[name].append(float(np.median(runs[name])))
    faster = [m < i for m, i in zip(times["merge"], times["insertion"])]
    first = next((sizes[j] for j in range(len(sizes)) if all(faster[j:])), None)
    return first, times


def run(ctx: LabContext) -> LabResult:
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(ctx.seed)
    sizes = [64, 128, 256, 512] if ctx.quick else [250, 500, 1000, 2000, 4000]
    repeats = 2 if ctx.quick else 3
    counts: dict[str, list[int]] = {name: [] for name in SORTS}
    seconds: dict[str, list[float]] = {name: [] for name in SORTS}
    for n in ctx.bar(sizes, desc="n"):
        keys = rng.integers(0, KEY_RANGE, n).tolist()
        for name in SORTS:
            c, s = measure(name, keys, repeats)
            counts[name].append(c)
            seconds[name].append(s)
    small = list(range(4, 97, 8)) if ctx.quick else list(range(2, 41, 2)) + list(range(50, 201, 25))
    cross, cross_times = crossover(ctx, small, 5 if ctx.quick else 30, rng)

    rows = []
    for name in SORTS:
        example = None if STABLE[name] else stability_counterexample(SORTS[name])
        rows.append({"algorithm": name, "stable": STABLE[name],
                     "counterexample (keys → sorted (position, key))": f"{example[0]} → {example[1]}" if example else "–",
                     "counted": "key reads" if name in LINEAR else "comparisons", f"count at n={sizes[-1]}": counts[name][-1],
                     f"seconds at n={sizes[-1]}": seconds[name][-1],
                     "exponent of count": slope(sizes, counts[name]), "exponent of time": slope(sizes, seconds[name])})

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    for name in SORTS:
        style = "-" if name in QUADRATIC else "--" if name in LOGLINEAR else ":"
        axes[0].loglog(sizes, counts[name], "o" + style, ms=3, label=name)
        axes[1].loglog(sizes, seconds[name], "o" + style, ms=3, label=name)
    axes[0].set_ylabel("comparisons (key reads for counting, radix)")
    axes[1].set_ylabel("seconds")
    for ax in axes[:2]:
        ax.set_xlabel("n")
        ax.set_xticks(sizes, [str(n) for n in sizes], minor=False)
        ax.set_xticks([], minor=True)
        ax.legend(fontsize=8)
    for name, t in cross_times.items():
        axes[2].plot(small, np.array(t) * 1e6, "o-", ms=3, label=name)
    if cross is not None:
        axes[2].axvline(cross, color="k", ls="--", lw=0.8, label=f"merge faster from n = {cross}")
    axes[2].set_xlabel("n")
    axes[2].set_ylabel("median µs")
    axes[2].legend()
    fig.suptitle("growth of the sorts (random integers) and the insertion / merge crossover")
    ctx.save_plot(fig, "growth")

    exponent = {row["algorithm"]: row["exponent of count"] for row in rows}
    holds = (all(exponent[n] > 1.8 for n in QUADRATIC) and all(1.0 < exponent[n] < 1.35 for n in LOGLINEAR)
             and all(abs(exponent[n] - 1) < 0.05 for n in LINEAR) and cross is not None and cross < small[-1]
             and all(row["counterexample (keys → sorted (position, key))"] != "–" for row in rows if not row["stable"]))
    summary = ("growth exponents of the counted comparisons: "
               + ", ".join(f"{n} {exponent[n]:.2f}" for n in SORTS)
               + " (time: " + ", ".join(f"{r['algorithm']} {r['exponent of time']:.2f}" for r in rows) + "); "
               + (f"merge sort beats insertion sort from n = {cross} on" if cross else "no crossover found")
               + "; selection, quick and heap sort are unstable (smallest counterexamples in the table); counting sort's "
               f"time is ruled by its {KEY_RANGE:,} buckets at these n")
    return LabResult(rows, summary, holds, {"sizes": sizes, "counts": counts, "sort_seconds": seconds,
                                            "crossover": {"sizes": small, "seconds": cross_times, "first_n": cross}})


LAB = Lab("sorting", "Insertion, bubble and selection sort need ~n² comparisons, merge, quick and heap sort ~n log n, "
          "counting and radix sort ~n·k key reads; insertion sort wins on small inputs until a crossover; selection, "
          "quick and heap sort are unstable.", run)
