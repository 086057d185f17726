"""Lab `parallel`: the notes' claims about distributed training, measured on gloo processes of this machine.

1. ZeRO's memory: the model-state bytes one rank holds after an Adam step of a GPT, for stages 0 (plain data
   parallelism) to 3 and N ranks, hand-written (`Zero`) and PyTorch's (DDP, ZeroRedundancyOptimizer, FSDP
   SHARD_GRAD_OP / FULL_SHARD, through `build_strategy`), against the paper's accounting (float32: 16Ψ, 8Ψ + 8Ψ/N,
   4Ψ + 12Ψ/N, 16Ψ/N).
2. The ring all-reduce's bandwidth does not grow with p: the bytes one rank sends for an all-reduce of n bytes,
   counted, for p = 2 … 8 (ring 2(p−1)/p·n < 2n; the naive root 2(p−1)·n), and the time of each on this machine.
3. Tensor parallelism's communication per layer: all-reduces and bytes per transformer layer of a GPT split t ways,
   forward and backward: 2 + 2 all-reduces of the (B, T, d) activation, whatever t, d_ff or the number of heads.
4. The pipeline bubble shrinks with more micro-batches: the idle fraction of p stages running m micro-batches
   (1F1B and GPipe) beside (p−1)/(m+p−1), measured twice: on the wall clock (each stage's compute time against
   the step's), which on a machine with fewer free cores than stages mostly measures the stages waiting for a core;
   and replayed: each forward's and backward's measured CPU time laid on the schedule's dependencies (`replay`),
   the step p dedicated cores would take.
Every experiment runs its ranks with `spawn` (one thread each; more ranks than cores share them, which the timings
show and the byte counts do not).
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F

from nlplab.dist.collectives import Group, all_reduce, busiest_sent
from nlplab.dist.launch import spawn
from nlplab.dist.pipeline import GPTStage, Pipeline, replay
from nlplab.dist.strategy import build_strategy
from nlplab.dist.tensor_parallel import tensor_parallel_
from nlplab.dist.topology import Topology
from nlplab.dist.zero import expected_bytes, state_bytes
from nlplab.lab.base import Lab, LabContext, LabResult
from nlplab.models.gpt import GPT, GPTConfig

ZERO_ENGINES = {0: "ddp", 1: "zero1", 2: "zero2", 3: "zero3"}
TORCH_NAMES = {0: "DDP", 1: "ZeroRedundancyOptimizer", 2: "FSDP SHARD_GRAD_OP", 3: "FSDP FULL_SHARD"}


def gpt(vocab: int, d: int, layers: int, heads: int = 4, block: int = 64, seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=vocab, block_size=block, n_layer=layers, n_head=heads, n_embd=d))


def zero_state_bytes(cfg: dict[str, int], runs: list[tuple[int, str]]) -> list[int]:
    """(On every rank) for each (stage, impl) of `runs`, the model-state bytes this rank holds after one Adam step
    of the GPT `cfg` under ZeRO `stage` (0: plain data parallelism), impl "manual" (nlplab) or "fused" (PyTorch's
    engines), one after the other in this process group."""
    return [one_zero_step(cfg, stage, impl) for stage, impl in runs]


def one_zero_step(cfg: dict[str, int], stage: int, impl: str) -> int:
    strategy = build_strategy(ZERO_ENGINES[stage], impl)
    model = strategy.wrap(gpt(**cfg))
    optimizer = strategy.build_optimizer(lambda params: torch.optim.Adam(params, lr=1e-3))
    ids = torch.randint(0, cfg["vocab"], (2 * strategy.world_size, 17), generator=torch.Generator().manual_seed(0))

    def step(batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int, dict[str, float]]:
        logits, _ = model(batch["ids"])
        return F.cross_entropy(logits.flatten(0, 1), batch["targets"].flatten()), batch["targets"].numel(), {}

    strategy.zero_grad(optimizer)
    strategy.forward_backward(step, {"ids": ids[:, :-1], "targets": ids[:, 1:]})
    strategy.step(optimizer)
    return state_bytes(strategy.wrapped, optimizer)


def all_reduce_bytes(n: int, algorithms: tuple[str, ...]) -> dict[str, tuple[int, int]]:
    """(On every rank) {algorithm: (bytes sent, messages sent)} for one all-reduce of n float32."""
    group = Group()
    out = {}
    for algorithm in algorithms:
        group.reset_counts()
        all_reduce(torch.ones(n), group, algorithm)
        out[algorithm] = (group.bytes_sent, group.messages_sent)
    return out


def all_reduce_seconds(sizes: list[int], algorithms: tuple[str, ...], repeats: int, min_seconds: float = 0.0
                       ) -> dict[str, dict[str, list[float]]] | None:
    """(On every rank; rank 0 returns) {"min": {algorithm: [seconds for each n in sizes]}, "median": {...}}: the
    fastest and the median of the repetitions of an all-reduce of n float32, each started together (barrier) and
    timed on rank 0; at least `repeats` repetitions and `min_seconds` per point. On a machine shared with other
    jobs the minimum is the repetition least disturbed by them."""
    group = Group()
    out: dict[str, dict[str, list[float]]] = {"min": {a: [] for a in algorithms}, "median": {a: [] for a in algorithms}}
    for n in sizes:
        x = torch.randn(n, generator=torch.Generator().manual_seed(group.rank))
        for algorithm in algorithms:
            times: list[float] = []
            more = torch.ones(1)
            while more.item():
                dist.barrier()
                t0 = time.perf_counter()
                all_reduce(x, group, algorithm)
                times.append(time.perf_counter() - t0)
                more.fill_(len(times) < repeats or sum(times) < min_seconds)
                dist.broadcast(more, 0)  # rank 0's clock decides for all, or the ranks would part ways
            out["min"][algorithm].append(min(times))
            out["median"][algorithm].append(statistics.median(times))
    return out if group.rank == 0 else None


def tensor_parallel_traffic(cfg: dict[str, int], batch: int, seq: int) -> dict[str, int]:
    """(On every rank) messages and bytes this rank sends in the forward and in the backward of a GPT `cfg` made
    tensor-parallel over all ranks, on a (batch, seq) input."""
    group = Group()
    model = tensor_parallel_(gpt(**cfg), group)
    ids = torch.randint(0, cfg["vocab"], (batch, seq), generator=torch.Generator().manual_seed(0))
    group.reset_counts()
    logits, _ = model(ids)
    forward = (group.messages_sent, group.bytes_sent)
    group.reset_counts()
    logits.float().logsumexp(-1).mean().backward()
    return {"forward_messages": forward[0], "forward_bytes": forward[1], "backward_messages": group.messages_sent,
            "backward_bytes": group.bytes_sent}


def pipeline_bubble(cfg: dict[str, int], settings: list[tuple[int, str]], rows: int, seq: int, steps: int
                    ) -> list[list[dict[str, Any]]]:
    """(On every rank) for each (micro-batches, schedule) of `settings`, per pipeline step (after one warm-up step;
    each started together): this stage's compute and wall seconds and its timeline."""
    group = Group()
    stage = GPTStage(gpt(**cfg), group.rank, group.size)
    out = []
    for micro_batches, schedule in settings:
        pipeline = Pipeline(stage, group, lambda y, t: F.cross_entropy(y.flatten(0, 1), t.flatten()), cfg["d"],
                            schedule, stage.tied)
        ids = torch.randint(0, cfg["vocab"], (rows * micro_batches, seq + 1), generator=torch.Generator().manual_seed(0))
        reports = []
        for _ in range(steps + 1):
            dist.barrier()
            report = pipeline.train_step(ids[:, :-1], ids[:, 1:], micro_batches)
            stage.zero_grad(set_to_none=True)
            reports.append({"compute": report.compute, "wall": report.wall, "timeline": report.timeline})
        out.append(reports[1:])
    return out


def bubbles(stages: list[list[dict[str, Any]]]) -> tuple[float, float]:
    """(idle fraction on the wall clock, idle fraction replayed), each the mean over steps. Wall clock: 1 − mean
    compute of a stage / the longest stage's wall time. Replayed: each action's CPU seconds laid on the schedule
    (`replay`), what p dedicated cores would do."""
    wall, replayed = [], []
    for step in zip(*stages):
        wall.append(1 - statistics.mean(s["compute"] for s in step) / max(s["wall"] for s in step))
        makespan, busy = replay([[(kind, i, cpu) for kind, i, _, _, cpu in s["timeline"]] for s in step])
        replayed.append(1 - statistics.mean(busy) / makespan)
    return statistics.mean(wall), statistics.mean(replayed)


def run(ctx: LabContext) -> LabResult:
    rows: list[dict[str, Any]] = []
    figures: dict[str, Any] = {}
    checks: dict[str, bool] = {}

    # 1. ZeRO's memory per rank
    zero_cfg = dict(vocab=1000, d=64, layers=2) if ctx.quick else dict(vocab=4000, d=128, layers=4)
    psi = sum(p.numel() for p in gpt(**zero_cfg).parameters())
    zero_rows = []
    runs = [(stage, impl) for stage in range(4) for impl in ("manual", "fused")]
    for n in ctx.bar([2] if ctx.quick else [2, 4], desc="ZeRO memory"):
        per_rank = ctx.step(f"zero-{n}", lambda n=n: spawn(zero_state_bytes, n, zero_cfg, runs))
        measured = {run: [rank[i] for rank in per_rank] for i, run in enumerate(runs)}
        for stage in range(4):
            formula = expected_bytes(stage, psi, n)
            row = {"N": n, "stage": stage, "formula MB": formula / 1e6,
                   "nlplab MB": statistics.mean(measured[(stage, "manual")]) / 1e6,
                   "PyTorch MB": statistics.mean(measured[(stage, "fused")]) / 1e6, "PyTorch engine": TORCH_NAMES[stage]}
            zero_rows.append(row)
            rows.append({"claim": "ZeRO memory per rank", "setting": f"N={n}, stage {stage}",
                         "measured": row["nlplab MB"], "expected": row["formula MB"], "unit": "MB",
                         "PyTorch's": row["PyTorch MB"]})
    checks["zero"] = all(abs(r["nlplab MB"] / r["formula MB"] - 1) < 0.01 for r in zero_rows)
    figures["zero"] = {"params": psi, "rows": zero_rows}

    # 2. ring all-reduce: bytes per rank do not grow with p
    ranks = [2, 3, 4] if ctx.quick else [2, 3, 4, 6, 8]
    n = 3 * 2**15  # divisible by every p below: equal chunks
    ring_rows = []
    for p in ctx.bar(ranks, desc="all-reduce bytes"):
        sent = ctx.step(f"bytes-{p}", lambda p=p: spawn(all_reduce_bytes, p, n, ("ring", "halving_doubling", "naive")))
        for algorithm in ("ring", "halving_doubling", "naive"):
            heaviest = max(rank[algorithm][0] for rank in sent) / (4 * n)
            ring_rows.append({"p": p, "algorithm": algorithm, "bytes sent / n (busiest rank)": heaviest,
                              "formula": busiest_sent(algorithm, p)})
            rows.append({"claim": "all-reduce: bytes the busiest rank sends ÷ n", "setting": f"p={p}, {algorithm}",
                         "measured": heaviest, "expected": busiest_sent(algorithm, p), "unit": "×n", "PyTorch's": ""})
    timed = [2, 4] if ctx.quick else [2, 3, 4]
    size = 2**20 if ctx.quick else 2**22
    seconds = {p: ctx.step(f"seconds-{p}", lambda p=p: spawn(all_reduce_seconds, p, [size], ("ring", "naive", "torch"),
                                                             5 if ctx.quick else 20)[0]) for p in ctx.bar(timed, desc="all-reduce time")}
    time_rows = [{"p": p, "algorithm": a, "MB": 4 * size / 1e6, "ms": seconds[p]["min"][a][0] * 1e3,
                  "median ms": seconds[p]["median"][a][0] * 1e3} for p in timed for a in ("ring", "naive", "torch")]
    ring = {r["p"]: r["bytes sent / n (busiest rank)"] for r in ring_rows if r["algorithm"] == "ring"}
    naive = {r["p"]: r["bytes sent / n (busiest rank)"] for r in ring_rows if r["algorithm"] == "naive"}
    checks["ring"] = all(v < 2 for v in ring.values()) and all(
        abs(r["bytes sent / n (busiest rank)"] - r["formula"]) < 1e-9 for r in ring_rows)
    figures["all_reduce"] = {"n_float32": n, "bytes": ring_rows, "time": time_rows}

    # 3. tensor parallelism's communication per layer
    tp_cfg = dict(vocab=256, d=64, layers=2, heads=8)
    batch, seq = 4, 32
    tp_rows = []
    for t in ctx.bar([1, 2, 4] if ctx.quick else [1, 2, 4, 8], desc="tensor parallel"):
        traffic = ctx.step(f"tp-{t}", lambda t=t: spawn(tensor_parallel_traffic, t, tp_cfg, batch, seq)[0])
        per_all_reduce = max(2 * (t - 1), 1)
        activation = batch * seq * tp_cfg["d"] * 4
        row = {"t": t, "all-reduces forward / layer": traffic["forward_messages"] / per_all_reduce / tp_cfg["layers"],
               "all-reduces backward / layer": traffic["backward_messages"] / per_all_reduce / tp_cfg["layers"],
               "KB sent / layer": (traffic["forward_bytes"] + traffic["backward_bytes"]) / tp_cfg["layers"] / 1e3,
               "formula KB": 4 * 2 * (t - 1) / t * activation / 1e3}
        tp_rows.append(row)
        rows.append({"claim": "tensor-parallel traffic per layer", "setting": f"t={t}, (B,T,d)=({batch},{seq},"
                     f"{tp_cfg['d']})", "measured": row["KB sent / layer"], "expected": row["formula KB"],
                     "unit": "KB", "PyTorch's": ""})
    checks["tp"] = all(r["t"] == 1 or (r["all-reduces forward / layer"] == 2 and r["all-reduces backward / layer"] == 2
                                        and abs(r["KB sent / layer"] - r["formula KB"]) < 1e-9) for r in tp_rows)
    figures["tensor_parallel"] = {"config": tp_cfg, "batch": batch, "seq": seq, "rows": tp_rows}

    # 4. the pipeline bubble
    pipe_cfg = dict(vocab=128, d=128, heads=4, block=64)
    bubble_rows, timelines, shown = [], {}, 2 if ctx.quick else 4
    micro = (1, 2, 8) if ctx.quick else (1, 2, 4, 8, 16)
    settings = [(m, schedule) for m in micro for schedule in ("1f1b", "gpipe")]
    for p in ctx.bar([2] if ctx.quick else [2, 4], desc="pipeline bubble"):
        per_rank = ctx.step(f"bubble-{p}", lambda p=p: spawn(pipeline_bubble, p, {**pipe_cfg, "layers": 2 * p},
                                                             settings, 4, 48, 2 if ctx.quick else 4))
        for i, (m, schedule) in enumerate(settings):
            stages = [rank[i] for rank in per_rank]
            wall, replayed = bubbles(stages)
            formula = (p - 1) / (m + p - 1)
            bubble_rows.append({"p": p, "m": m, "schedule": schedule, "idle, wall clock": wall,
                                "idle, replayed": replayed, "(p−1)/(m+p−1)": formula})
            rows.append({"claim": "pipeline bubble (replayed; wall clock in PyTorch's column)",
                         "setting": f"p={p}, m={m}, {schedule}", "measured": replayed, "expected": formula,
                         "unit": "fraction idle", "PyTorch's": f"wall {wall:.2f}"})
            if m == shown:
                timelines[f"p={p} {schedule}, m={m}"] = [s[-1]["timeline"] for s in stages]
    two = [r for r in bubble_rows if r["p"] == 2 and r["schedule"] == "1f1b"]
    checks["bubble"] = all(a["idle, replayed"] > b["idle, replayed"] for a, b in zip(two, two[1:])) and \
        all(abs(r["idle, replayed"] - r["(p−1)/(m+p−1)"]) < 0.08 for r in bubble_rows)
    figures["pipeline"] = {"config": pipe_cfg, "rows": bubble_rows}
    figures["topology"] = {"2x2x1": Topology(dp=2, pp=1, tp=2).describe(), "2x1x2": Topology(dp=2, pp=2, tp=1).describe()}
    figures["checks"] = checks

    plot(ctx, zero_rows, ring_rows, time_rows, tp_rows, bubble_rows, timelines)
    ring_p = ", ".join(f"{ring[p]:.2f}" for p in ranks)
    zero_gap = max(abs(r["nlplab MB"] / r["formula MB"] - 1) for r in zero_rows)
    zero_two = ", ".join(f"stage {r['stage']} {r['nlplab MB']:.2f}" for r in zero_rows if r["N"] == 2)
    replayed = {r["m"]: r["idle, replayed"] for r in two}
    walls = {r["m"]: r["idle, wall clock"] for r in two}
    summary = (f"ZeRO model states per rank match the formula within {zero_gap:.1%} (N=2, MB: {zero_two}); the ring "
               f"sends {ring_p} × n per rank for p = {', '.join(map(str, ranks))} (the naive root "
               f"{naive[ranks[-1]]:.0f} × n at p={ranks[-1]}); a tensor-parallel layer all-reduces 2 + 2 times; the "
               f"1F1B bubble on 2 stages, replayed from the measured op times, falls "
               f"{' → '.join(f'{v:.2f}' for v in replayed.values())} for m = {', '.join(map(str, replayed))} (formula "
               f"{' → '.join(f'{1 / (m + 1):.2f}' for m in replayed)}; on this shared machine's wall clock "
               f"{' → '.join(f'{v:.2f}' for v in walls.values())})")
    return LabResult(rows, summary, all(checks.values()), figures)


def plot(ctx: LabContext, zero_rows: list[dict], ring_rows: list[dict], time_rows: list[dict], tp_rows: list[dict],
         bubble_rows: list[dict], timelines: dict[str, list]) -> None:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len({r["N"] for r in zero_rows}), figsize=(12, 4), squeeze=False)
    for ax, n in zip(axes[0], sorted({r["N"] for r in zero_rows})):
        part = [r for r in zero_rows if r["N"] == n]
        x = range(len(part))
        ax.bar([i - 0.27 for i in x], [r["formula MB"] for r in part], 0.27, label="formula (float32)")
        ax.bar(list(x), [r["nlplab MB"] for r in part], 0.27, label="nlplab")
        ax.bar([i + 0.27 for i in x], [r["PyTorch MB"] for r in part], 0.27, label="PyTorch")
        ax.set_xticks(list(x), [f"stage {r['stage']}" for r in part])
        ax.set_ylabel("model states per rank (MB)")
        ax.set_title(f"ZeRO, N = {n}")
        ax.legend()
    ctx.save_plot(fig, "zero_memory")

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4))
    for algorithm in ("ring", "halving_doubling", "naive"):
        part = [r for r in ring_rows if r["algorithm"] == algorithm]
        left.plot([r["p"] for r in part], [r["bytes sent / n (busiest rank)"] for r in part], marker="o", label=algorithm)
    left.axhline(2, color="grey", linestyle=":", label="2n")
    left.set_xlabel("ranks p")
    left.set_ylabel("bytes sent by the busiest rank / n")
    left.legend()
    left.set_title("all-reduce traffic per rank")
    for algorithm in ("ring", "naive", "torch"):
        part = [r for r in time_rows if r["algorithm"] == algorithm]
        right.plot([r["p"] for r in part], [r["ms"] for r in part], marker="o", label=algorithm)
    right.set_xlabel("ranks p (2 cores)")
    right.set_ylabel(f"ms per all-reduce of {time_rows[0]['MB']:.0f} MB (fastest repetition)")
    right.legend()
    right.set_title("time on this machine")
    ctx.save_plot(fig, "all_reduce")

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([r["t"] for r in tp_rows], [r["KB sent / layer"] for r in tp_rows], marker="o", label="measured")
    ax.plot([r["t"] for r in tp_rows], [r["formula KB"] for r in tp_rows], linestyle="--", label="4 × 2(t−1)/t × BTd")
    ax.set_xlabel("tensor-parallel size t")
    ax.set_ylabel("KB sent per rank per layer (fwd + bwd)")
    ax.legend()
    ax.set_title("tensor parallelism: traffic per layer")
    ctx.save_plot(fig, "tensor_parallel")

    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4))
    for p in sorted({r["p"] for r in bubble_rows}):
        for schedule, marker in (("1f1b", "o"), ("gpipe", "s")):
            part = [r for r in bubble_rows if r["p"] == p and r["schedule"] == schedule]
            left.plot([r["m"] for r in part], [r["idle, replayed"] for r in part], marker=marker,
                      label=f"p={p} {schedule}, replayed")
            left.plot([r["m"] for r in part], [r["idle, wall clock"] for r in part], marker=marker, alpha=0.4,
                      linestyle=":", label=f"p={p} {schedule}, wall clock")
        part = [r for r in bubble_rows if r["p"] == p and r["schedule"] == "1f1b"]
        left.plot([r["m"] for r in part], [r["(p−1)/(m+p−1)"] for r in part], linestyle="--", color="grey")
    left.set_xscale("log", base=2)
    left.set_xlabel("micro-batches m")
    left.set_ylabel("idle fraction (dashed: (p−1)/(m+p−1))")
    left.legend(fontsize=7, ncol=2, loc="upper right")
    left.set_title("pipeline bubble")
    name = list(timelines)[-2]
    for stage, timeline in enumerate(timelines[name]):
        for kind, i, start, end, _ in timeline:
            right.barh(stage, end - start, left=start, color="tab:blue" if kind == "F" else "tab:orange",
                       edgecolor="white")
            right.text((start + end) / 2, stage, f"{kind}{i}", ha="center", va="center", fontsize=7, color="white")
    right.set_yticks(range(len(timelines[name])))
    right.set_ylabel("stage")
    right.invert_yaxis()
    right.set_xlabel("seconds")
    right.set_title(f"timeline of one step, {name} (blue forward, orange backward)")
    ctx.save_plot(fig, "pipeline")


LAB = Lab("parallel", "ZeRO stages 1, 2, 3 cut the model states a rank holds from 16Ψ bytes to 4Ψ+12Ψ/N, 2Ψ+14Ψ/N "
          "and 16Ψ/N (float32: 8Ψ+8Ψ/N, 4Ψ+12Ψ/N, 16Ψ/N); the ring all-reduce sends under 2n bytes per rank whatever "
          "p; a tensor-parallel transformer layer costs 2 all-reduces forward and 2 backward; the pipeline bubble "
          "(p−1)/(m+p−1) shrinks as the micro-batches m grow.", run)
