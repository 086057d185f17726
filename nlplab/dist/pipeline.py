"""Pipeline parallelism: consecutive layers of a model on consecutive ranks (stages), a batch cut into micro-batches
that flow through them (GPipe, Huang et al., 2019; 1F1B, PipeDream-Flush, Narayanan et al., 2021).

Stage s receives activations (B_m, T, d) from stage s−1, runs its layers and sends the result to stage s+1; in
backward the gradient of those activations travels the other way. With p stages and m micro-batches, stages wait
while the pipeline fills and drains. If a forward and a backward of one micro-batch take t_f and t_b on every
stage, the step lasts (m + p − 1)(t_f + t_b), of which each stage computes m(t_f + t_b): the idle ("bubble")
fraction is (p − 1)/(m + p − 1), shrinking as m grows.

Schedules (the list of "F i" / "B i" each stage runs in order):
- GPipe: every forward, then every backward; a stage holds the activations of all m micro-batches.
- 1F1B: stage s runs p − s − 1 warm-up forwards, then alternates one forward and one backward, then drains the
  backwards; same bubble, but at most p − s micro-batches in flight (activation memory bounded by p, not m).

The loss of the batch is the mean over micro-batches weighted by their size, so the gradients equal those of the
whole batch in one process. A GPT's token embedding is also its output layer (tied weights): the last stage keeps
a copy and, after backward, the first and last stage add their gradients of it (Megatron's embedding group).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from nlplab.dist.collectives import Group, all_reduce
from nlplab.errors import ConfigError
from nlplab.models.gpt import GPT
from nlplab.nn.positions import check_positions

SCHEDULES = ("gpipe", "1f1b")


def split_layers(n_layer: int, stages: int) -> list[range]:
    """n_layer layers in `stages` contiguous ranges of nearly equal length (the first ones one longer)."""
    if not 1 <= stages <= n_layer:
        raise ConfigError(f"a pipeline of {stages} stages needs at least {stages} layers, the model has {n_layer}; "
                          "use fewer stages (processes) or more layers (--layers)")
    sizes = [n_layer // stages + (i < n_layer % stages) for i in range(stages)]
    starts = [sum(sizes[:i]) for i in range(stages)]
    return [range(start, start + size) for start, size in zip(starts, sizes)]


class GPTStage(nn.Module):
    """Stage `stage` of `stages` of a GPT: the embeddings on the first, its share of the blocks, the final norm and
    the (tied) output layer on the last. forward: ids (B, T) on the first stage, else hidden states (B, T, d) ->
    hidden states, or logits (B, T, V) on the last. Parameter names are the GPT's (blocks keep their index), so
    the stages' state dicts together make the GPT's; the last stage's copy of tokens.weight is the tied one."""

    def __init__(self, gpt: GPT, stage: int, stages: int) -> None:
        super().__init__()
        self.first, self.last, self.cfg = stage == 0, stage == stages - 1, gpt.cfg
        layers = split_layers(gpt.cfg.n_layer, stages)[stage]
        self.blocks = nn.ModuleDict({str(i): gpt.blocks[i] for i in layers})
        if self.first:
            self.positions, self.drop = gpt.positions, gpt.drop
        if self.first or self.last:
            self.tokens = gpt.tokens
        if self.last:
            self.final_norm = gpt.final_norm

    @property
    def tied(self) -> nn.Parameter | None:
        """The token embedding, which the first and the last stage share (None on the stages between)."""
        return self.tokens.weight if self.first or self.last else None

    def forward(self, x: Tensor) -> Tensor:
        if self.first:
            check_positions(x.shape[1], self.cfg.block_size)
            x = self.drop(self.tokens(x) + self.positions(torch.arange(x.shape[1], device=x.device)))
        for block in self.blocks.values():
            x, _ = block(x, causal=True)
        return self.final_norm(x) @ self.tokens.weight.T if self.last else x


def gpipe_schedule(micro_batches: int, stage: int, stages: int) -> list[tuple[str, int]]:
    """All forwards, then all backwards (in the same order)."""
    return [("F", i) for i in range(micro_batches)] + [("B", i) for i in range(micro_batches)]


def one_f_one_b_schedule(micro_batches: int, stage: int, stages: int) -> list[tuple[str, int]]:
    """p − s − 1 warm-up forwards, then one forward and one backward in turn, then the remaining backwards."""
    warmup = min(stages - stage - 1, micro_batches)
    order = [("F", i) for i in range(warmup)]
    for i in range(micro_batches - warmup):
        order += [("F", warmup + i), ("B", i)]
    return order + [("B", i) for i in range(micro_batches - warmup, micro_batches)]


@dataclass
class StepReport:
    """What one pipeline step did on this stage: the loss of the batch (last stage only, else None), the wall time
    of the schedule, the wall time spent computing, each action's (kind, micro-batch, start, end, CPU seconds) —
    start and end in seconds from the start of the step — and the most micro-batches held at once."""

    loss: float | None
    wall: float
    compute: float
    timeline: list[tuple[str, int, float, float, float]] = field(default_factory=list)
    max_in_flight: int = 0

    @property
    def bubble(self) -> float:
        """Idle fraction of this stage: 1 − compute / wall."""
        return 1 - self.compute / self.wall


def replay(durations: list[list[tuple[str, int, float]]]) -> tuple[float, list[float]]:
    """Lay each stage's actions (kind, micro-batch, seconds), in its schedule's order, on the schedule's
    dependencies, as p dedicated processors with free communication would run them: an action starts when the
    stage's previous action has ended and, for "F i", when stage s−1 has finished "F i", for "B i" when stage s+1
    has finished "B i". Returns (makespan, busy seconds of each stage); idle fraction = 1 − mean busy / makespan."""
    stages = len(durations)
    done: dict[tuple[str, int, int], float] = {}
    clock, position = [0.0] * stages, [0] * stages
    while any(position[s] < len(durations[s]) for s in range(stages)):
        progressed = False
        for s in range(stages):
            if position[s] == len(durations[s]):
                continue
            kind, i, seconds = durations[s][position[s]]
            needed = (kind, i, s - 1) if kind == "F" and s > 0 else (kind, i, s + 1) if kind == "B" and s < stages - 1 \
                else None
            if needed is not None and needed not in done:
                continue
            clock[s] = max(clock[s], done.get(needed, 0.0)) + seconds
            done[(kind, i, s)] = clock[s]
            position[s] += 1
            progressed = True
        if not progressed:
            raise ValueError("the schedules deadlock: an action waits for one that never comes")
    return max(clock), [sum(seconds for _, _, seconds in stage) for stage in durations]


class Pipeline:
    """Runs a stage module on each rank of `group` (stage = group.rank) under a schedule ("gpipe" or "1f1b").

    loss_fn(output, targets) -> mean loss of a micro-batch, on the last stage. `hidden` is the size of the last
    dimension of the activations passed between stages. `tied`: the parameter the first and last stage share (a
    GPT's tokens.weight), whose gradients they add after backward.
    """

    def __init__(self, stage_module: nn.Module, group: Group, loss_fn: Callable[[Tensor, Tensor], Tensor],
                 hidden: int, schedule: str = "1f1b", tied: nn.Parameter | None = None) -> None:
        if schedule not in SCHEDULES:
            raise ConfigError(f"unknown pipeline schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}")
        self.module, self.group, self.loss_fn, self.hidden, self.tied = stage_module, group, loss_fn, hidden, tied
        self.schedule = gpipe_schedule if schedule == "gpipe" else one_f_one_b_schedule
        self.stage, self.stages = group.rank, group.size
        self.first, self.last = self.stage == 0, self.stage == self.stages - 1

    def train_step(self, inputs: Tensor, targets: Tensor, micro_batches: int) -> StepReport:
        """Forward and backward of the batch (inputs, targets (B, …), the same on every stage) in micro_batches
        pieces; the stage's parameters receive the gradient of the batch's loss (accumulated into .grad)."""
        ins, outs = inputs.tensor_split(micro_batches), targets.tensor_split(micro_batches)
        like = next(self.module.parameters())
        held: dict[int, tuple[Tensor, Tensor]] = {}
        sends: list[tuple[Tensor, object]] = []
        timeline, total, max_in_flight = [], 0.0, 0
        start = time.perf_counter()
        for kind, i in self.schedule(micro_batches, self.stage, self.stages):
            if kind == "F":
                x = ins[i] if self.first else self._receive((*ins[i].shape, self.hidden), like, self.stage - 1)
                t0, cpu = time.perf_counter(), time.thread_time()
                out = self.module(x)
                if self.last:
                    out = self.loss_fn(out, outs[i]) * (outs[i].numel() / targets.numel())
                    total += out.item()
                t1 = time.perf_counter()
                if not self.last:
                    sends.append(self._send(out.detach(), self.stage + 1))
                held[i] = (x, out)
                max_in_flight = max(max_in_flight, len(held))
            else:
                x, out = held.pop(i)
                grad = None if self.last else self._receive(out.shape, like, self.stage + 1)
                t0, cpu = time.perf_counter(), time.thread_time()
                out.backward(grad)
                t1 = time.perf_counter()
                if not self.first:
                    sends.append(self._send(x.grad, self.stage - 1))
            timeline.append((kind, i, t0 - start, t1 - start, time.thread_time() - cpu))
        for _, request in sends:
            request.wait()
        wall = time.perf_counter() - start
        self._sync_tied()
        return StepReport(total if self.last else None, wall, sum(e - s for _, _, s, e, _ in timeline), timeline,
                          max_in_flight)

    def _receive(self, shape: tuple[int, ...], like: Tensor, source: int) -> Tensor:
        x = torch.empty(shape, dtype=like.dtype, device=like.device)
        self.group.exchange(recv=x, source=source)
        return x.requires_grad_()

    def _send(self, x: Tensor, to: int) -> tuple[Tensor, object]:
        """Start sending x without waiting (the receiver may still be busy); the caller waits at the end of the
        step, keeping x alive until then."""
        x = x.contiguous()
        return x, self.group.isend(x, to)

    def _sync_tied(self) -> None:
        """The first and the last stage add up their gradients of the tied parameter."""
        if self.tied is None or self.stages == 1 or not (self.first or self.last):
            return
        pair = Group([self.group.ranks[0], self.group.ranks[-1]])
        grad = self.tied.grad if self.tied.grad is not None else torch.zeros_like(self.tied)
        self.tied.grad = all_reduce(grad, pair)
