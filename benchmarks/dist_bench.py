"""Distributed training on this machine: collectives against message size, ZeRO memory per rank, DDP throughput, and
1-bit Adam against Adam. Every rank is a gloo process on 127.0.0.1 started by `nlplab.dist.spawn`, one thread each.

1. Collectives: the time of one all-reduce of 1 KB … 64 MB (float32) for p = 2 and 4, hand-written ring,
   halving-doubling and naive against `torch.distributed.all_reduce`: the fastest of repetitions started together
   and timed on rank 0 (at least 5 and 1 s per point; the median is kept in the JSON file) — on a machine shared
   with other jobs the fastest repetition is the least disturbed. The α–β model T(n) = a + b·n is fitted per algorithm and p (least squares of the relative
   residuals, so that 1 KB weighs as much as 64 MB); dividing a by the
   number of messages and b by the bytes coefficient of the notes' formula (`cost_terms`) gives the latency α and
   bandwidth 1/β each algorithm implies: if the model holds they agree across algorithms.
2. Memory per rank of a GPT of a few million parameters after an Adam step under ZeRO 0/1/2/3, N = 2 and 4:
   model-state bytes counted (`state_bytes`), nlplab's engines and PyTorch's, against the formula.
3. Throughput of a GPT training step: 1 process (1 and 2 threads) against DDP and the hand-written data parallelism
   on 2 processes of 1 thread, same global batch.
4. 1-bit Adam against Adam on scikit-learn's digits (an MLP, 2 ranks): loss curves and bytes sent per step.

    python benchmarks/dist_bench.py
    python benchmarks/dist_bench.py --quick --out /tmp/dist
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from common import footer, git_commit, machine, write_result
from torch import nn

from nlplab.dist.collectives import Group, cost_terms
from nlplab.dist.data_parallel import DataParallel, shard_batch
from nlplab.dist.launch import spawn
from nlplab.dist.onebit_adam import OneBitAdam
from nlplab.dist.strategy import build_strategy
from nlplab.dist.zero import expected_bytes
from nlplab.io import atomic_write
from nlplab.lab.parallel import TORCH_NAMES, all_reduce_seconds, gpt, zero_state_bytes

ALGORITHMS = ("ring", "halving_doubling", "naive", "torch")
MODEL = dict(vocab=8000, d=256, layers=4, heads=4, block=64)


def collectives(sizes: list[int], ranks: list[int], repeats: int, min_seconds: float) -> list[dict]:
    rows = []
    for p in ranks:
        times = spawn(all_reduce_seconds, p, sizes, ALGORITHMS, repeats, min_seconds, timeout=3600)[0]
        for algorithm in ALGORITHMS:
            seconds = times["min"][algorithm]
            nbytes = np.array([4.0 * n for n in sizes])
            b, a = np.polyfit(nbytes, np.array(seconds), 1, w=1 / np.array(seconds))  # relative residuals
            row = {"p": p, "algorithm": algorithm, "bytes": nbytes.tolist(), "seconds": seconds,
                   "median_seconds": times["median"][algorithm], "fit_latency_s": float(a), "fit_s_per_byte": float(b)}
            if algorithm != "torch":
                messages, factor = cost_terms(algorithm, p)
                row |= {"messages": messages, "bytes_factor": factor, "alpha_s": float(a) / messages,
                        "bandwidth_bytes_per_s": factor / float(b)}
            rows.append(row)
            print(f"p={p} {algorithm:16s} " + " ".join(f"{s * 1e3:8.2f}" for s in seconds) + " ms", flush=True)
    return rows


def train_step_throughput(name: str, impl: str, threads: int, steps: int, batch: int, seq: int) -> float | None:
    """(On every rank; rank 0 returns) tokens per second of GPT training steps under strategy `name`, after two
    warm-up steps."""
    torch.set_num_threads(threads)
    strategy = build_strategy(name, impl)
    model = strategy.wrap(gpt(**MODEL))
    optimizer = strategy.build_optimizer(lambda params: torch.optim.Adam(params, lr=1e-4))
    ids = torch.randint(0, MODEL["vocab"], (batch, seq + 1), generator=torch.Generator().manual_seed(0))

    def step(local: dict) -> tuple[torch.Tensor, int, dict]:
        logits, _ = model(local["ids"])
        return F.cross_entropy(logits.flatten(0, 1), local["targets"].flatten()), local["targets"].numel(), {}

    for i in range(steps + 2):
        if i == 2:
            strategy.barrier()
            start = time.perf_counter()
        strategy.zero_grad(optimizer)
        strategy.forward_backward(step, {"ids": ids[:, :-1], "targets": ids[:, 1:]})
        strategy.step(optimizer)
    strategy.barrier()
    return batch * seq * steps / (time.perf_counter() - start) if strategy.is_main else None


def throughput(steps: int, batch: int, seq: int) -> list[dict]:
    runs = [("1 process, 1 thread", "single", "fused", 1, 1), ("1 process, 2 threads", "single", "fused", 1, 2),
            ("DDP, 2 processes × 1 thread", "ddp", "fused", 2, 1),
            ("nlplab DataParallel, 2 processes × 1 thread", "ddp", "manual", 2, 1)]
    rows = []
    for label, name, impl, processes, threads in runs:
        tokens = spawn(train_step_throughput, processes, name, impl, threads, steps, batch, seq, timeout=3600)[0]
        rows.append({"run": label, "processes": processes, "threads": threads, "tokens_per_second": tokens})
        print(f"{label:45s} {tokens:10.0f} tokens/s", flush=True)
    return rows


def memory(ranks: list[int]) -> dict:
    psi = sum(p.numel() for p in gpt(**MODEL).parameters())
    rows = []
    for n in ranks:
        for stage in range(4):
            ours, theirs = zip(*spawn(zero_state_bytes, n, MODEL, [(stage, "manual"), (stage, "fused")], timeout=3600))
            rows.append({"N": n, "stage": stage, "formula_bytes": expected_bytes(stage, psi, n), "nlplab_bytes": ours,
                         "torch_engine": TORCH_NAMES[stage], "torch_bytes": theirs})
            print(f"N={n} stage {stage}: formula {rows[-1]['formula_bytes'] / 1e6:.2f} MB, nlplab "
                  f"{statistics.mean(ours) / 1e6:.2f} MB, {TORCH_NAMES[stage]} {statistics.mean(theirs) / 1e6:.2f} MB",
                  flush=True)
    return {"params": psi, "rows": rows}


def digits_run(optimizer_name: str, steps: int, freeze: int) -> dict | None:
    """(On every rank) an MLP on scikit-learn's digits, each rank half of every batch of 64, trained by Adam over
    the hand-written data parallelism (ring all-reduce) or by 1-bit Adam; rank 0 returns the loss on the whole
    training set after every step, the bytes it sent per step and the test accuracy."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.tensor(digits.data / 16.0, dtype=torch.float32)
    y = torch.tensor(digits.target)
    train, test = slice(0, 1500), slice(1500, None)
    group = Group()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    replicas = DataParallel(model, group) if optimizer_name == "adam" else None
    optimizer = (torch.optim.Adam(model.parameters(), lr=3e-3) if replicas is not None
                 else OneBitAdam(model.parameters(), group, freeze_step=freeze, lr=3e-3))
    order = torch.Generator().manual_seed(1)
    losses, sent = [], []
    for _ in range(steps):
        rows = torch.randint(0, 1500, (64,), generator=order)
        xb, yb = shard_batch((x[rows], y[rows]), group.rank, group.size)
        optimizer.zero_grad()
        F.cross_entropy(model(xb), yb).backward()
        group.reset_counts()
        if replicas is not None:
            replicas.sync_gradients()
        optimizer.step()
        sent.append(group.bytes_sent)
        with torch.no_grad():
            losses.append(F.cross_entropy(model(x[train]), y[train]).item())
    with torch.no_grad():
        accuracy = (model(x[test]).argmax(1) == y[test]).float().mean().item()
    return {"losses": losses, "bytes": sent, "accuracy": accuracy} if group.rank == 0 else None


def one_bit(steps: int, freeze: int) -> dict:
    runs = {name: spawn(digits_run, 2, name, steps, freeze, timeout=3600)[0] for name in ("adam", "onebit")}
    for name, run in runs.items():
        print(f"{name}: final loss {run['losses'][-1]:.4f}, test accuracy {run['accuracy']:.4f}, bytes/step "
              f"warm-up {run['bytes'][0]:.0f}, last {run['bytes'][-1]:.0f}", flush=True)
    return {"steps": steps, "freeze_step": freeze, "runs": runs}


def plot(result: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ranks = sorted({r["p"] for r in result["collectives"]})
    fig, axes = plt.subplots(1, len(ranks), figsize=(6.5 * len(ranks), 4.5), squeeze=False)
    for ax, p in zip(axes[0], ranks):
        for row in (r for r in result["collectives"] if r["p"] == p):
            ax.loglog(row["bytes"], row["seconds"], "o-", label=row["algorithm"])
        ax.set_xlabel("message size (bytes)")
        ax.set_ylabel("seconds per all-reduce")
        ax.set_title(f"all-reduce on loopback, p = {p}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.tight_layout()
    atomic_write(out / "dist_allreduce.png", lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4))
    freeze = result["one_bit"]["freeze_step"]
    for name, run in result["one_bit"]["runs"].items():
        left.plot(run["losses"], label=f"{name} (test accuracy {run['accuracy']:.3f})")
        right.plot(run["bytes"], label=name)
    for ax in (left, right):
        ax.axvline(freeze, color="grey", linestyle=":")
        ax.set_xlabel("step")
        ax.legend()
    left.set_yscale("log")
    left.set_ylabel("training loss (whole training set)")
    left.set_title("1-bit Adam vs Adam, digits MLP, 2 ranks")
    right.set_yscale("log")
    right.set_ylabel("bytes sent per rank per step")
    right.set_title(f"communication (dotted: freeze step {freeze})")
    fig.tight_layout()
    atomic_write(out / "dist_onebit.png", lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)


def markdown(result: dict) -> str:
    lines = [f"# Distributed training on this machine ({result['date'][:10]})", "",
             "## All-reduce on loopback (float32, gloo, one thread per rank; fastest of ≥ 5 repetitions and ≥ 1 s)", "",
             "| p | algorithm | notes' model T(n) | " + " | ".join(f"{b / 1024:.0f} KB" if b < 2**20 else f"{b / 2**20:.0f} MB"
                                                         for b in result["collectives"][0]["bytes"]) + " |",
             "|---|---|---|" + "---:|" * len(result["collectives"][0]["bytes"])]
    models = {"ring": "2(p−1)α + 2(p−1)/p·nβ", "halving_doubling": "2log₂p·α + 2(p−1)/p·nβ (+2α+2nβ if p ≠ 2^k)",
              "naive": "2(p−1)α + 2(p−1)·nβ", "torch": "(gloo's own)"}
    for row in result["collectives"]:
        lines.append(f"| {row['p']} | {row['algorithm']} | {models[row['algorithm']]} | "
                     + " | ".join(f"{s * 1e3:.2f} ms" for s in row["seconds"]) + " |")
    lines += ["", "Fitted T(n) = a + b·n (least squares of the relative residuals) and the α, β each algorithm implies "
              "(α = a / messages, 1/β = bytes coefficient / b):", "",
              "| p | algorithm | messages | bytes coefficient | a (µs) | 1/b (MB/s) | implied α (µs) | implied 1/β (MB/s) |",
              "|---|---|---:|---:|---:|---:|---:|---:|"]
    for row in result["collectives"]:
        implied = (f"{row['alpha_s'] * 1e6:.0f} | {row['bandwidth_bytes_per_s'] / 1e6:.0f}" if "alpha_s" in row
                   else "– | –")
        lines.append(f"| {row['p']} | {row['algorithm']} | {row.get('messages', '–')} | "
                     f"{row.get('bytes_factor', float('nan')):.3g} | {row['fit_latency_s'] * 1e6:.0f} | "
                     f"{1 / row['fit_s_per_byte'] / 1e6:.0f} | {implied} |")
    mem = result["memory"]
    lines += ["", f"## Model states per rank, GPT of {mem['params'] / 1e6:.2f} M parameters (float32, Adam)", "",
              "| N | stage | formula (MB) | nlplab (MB, mean of ranks) | PyTorch engine | PyTorch (MB) |",
              "|---:|---:|---:|---:|---|---:|"]
    for row in mem["rows"]:
        lines.append(f"| {row['N']} | {row['stage']} | {row['formula_bytes'] / 1e6:.2f} | "
                     f"{statistics.mean(row['nlplab_bytes']) / 1e6:.2f} | {row['torch_engine']} | "
                     f"{statistics.mean(row['torch_bytes']) / 1e6:.2f} |")
    lines += ["", f"## Training throughput, GPT {mem['params'] / 1e6:.2f} M, global batch "
              f"{result['throughput_batch']} × {result['throughput_seq']} tokens", "",
              "| run | tokens/s | vs 1 process, 1 thread |", "|---|---:|---:|"]
    base = result["throughput"][0]["tokens_per_second"]
    for row in result["throughput"]:
        lines.append(f"| {row['run']} | {row['tokens_per_second']:.0f} | {row['tokens_per_second'] / base:.2f}× |")
    ob = result["one_bit"]
    adam, onebit = ob["runs"]["adam"], ob["runs"]["onebit"]
    lines += ["", f"## 1-bit Adam vs Adam (digits MLP, 2 ranks, freeze step {ob['freeze_step']} of {ob['steps']})", "",
              "| optimizer | final training loss | test accuracy | bytes/rank/step, warm-up | after freeze |",
              "|---|---:|---:|---:|---:|"]
    for name, run in (("Adam", adam), ("1-bit Adam", onebit)):
        lines.append(f"| {name} | {run['losses'][-1]:.4f} | {run['accuracy']:.4f} | {run['bytes'][0]:.0f} | "
                     f"{run['bytes'][-1]:.0f} |")
    lines += ["", footer(result, f"; load average {result['load_average']['start']:.1f} → "
                                 f"{result['load_average']['end']:.1f} (a shared machine)")]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes and few repetitions (a smoke run)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)
    command = " ".join(["python", "benchmarks/dist_bench.py", *(sys.argv[1:] if argv is None else argv)])
    torch.set_num_threads(1)
    start, load_start = time.perf_counter(), os.getloadavg()[0]
    sizes = [256 * 4**i for i in range(5 if args.quick else 9)]  # 1 KB … 64 MB of float32
    batch, seq = (4, 32) if args.quick else (16, 64)
    result = {"command": command, "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "commit": git_commit(), "machine": machine(), "model": MODEL,
              "collectives": collectives(sizes, [2, 4], 3 if args.quick else 5, 0.0 if args.quick else 1.0),
              "memory": memory([2] if args.quick else [2, 4]),
              "throughput": throughput(2 if args.quick else 10, batch, seq), "throughput_batch": batch,
              "throughput_seq": seq, "one_bit": one_bit(100 if args.quick else 600, 20 if args.quick else 100)}
    result |= {"wall_seconds": time.perf_counter() - start,
               "load_average": {"start": load_start, "end": os.getloadavg()[0]}}
    args.out.mkdir(parents=True, exist_ok=True)
    write_result("dist", result, markdown(result), args.out)
    plot(result, args.out)
    print(markdown(result))


if __name__ == "__main__":
    main()
