"""ZeRO, the Zero Redundancy Optimizer (Rajbhandari et al., 2020): data parallelism that stops keeping the model
states N times.

Training with Adam keeps, per parameter, its weight, its gradient and Adam's two moments. The paper counts Ψ
parameters in mixed precision: 2Ψ bytes of fp16 weights + 2Ψ of fp16 gradients + 12Ψ of fp32 master weights,
momentum and variance = 16Ψ. In float32, as here, it is 4Ψ + 4Ψ + 8Ψ: also 16Ψ. Plain data parallelism holds all
of it on every rank; ZeRO cuts it across the N ranks:

    stage   partitioned                        bytes per rank, mixed precision    float32 (here)
    0 (DP)  nothing                            16Ψ                                16Ψ
    1       optimizer states                   4Ψ + 12Ψ/N                         8Ψ + 8Ψ/N
    2       + gradients                        2Ψ + 14Ψ/N                         4Ψ + 12Ψ/N
    3       + parameters                       16Ψ/N                              16Ψ/N

How, here: every parameter is cut into N pieces (`chunk_sizes`), and rank r owns piece r of each: its "shard"
(a view into the parameter in stages 1–2, the only copy in stage 3), the shard's gradient and its optimizer state.
The optimizer only ever sees the shards. A collective over several tensors lays their pieces out by owner
(rank 0's pieces of every tensor, then rank 1's, …) so that one reduce-scatter or all-gather moves them all.
- Stage 1: backward fills full gradients as usual; the step reduce-scatters them (rank r receives the sum of its
  pieces), averages and writes them into its pieces of the gradients.
- Stage 2: a hook on each parameter reduce-scatters its gradient as soon as backward has accumulated it, and frees
  the full gradient; only the shard's gradient stays.
- Stages 1 and 2, after the optimizer has moved the shards: all-gather every parameter from its pieces.
- Stage 3: the parameters are freed too. A unit (by default every module of an nn.ModuleList, e.g. GPT's blocks)
  all-gathers its parameters just before its forward and frees them right after; the gradient of its output
  arriving in backward gathers them again, and each parameter is freed once its gradient has been reduce-scattered.
  The parameters outside the units (embeddings, final norm) are gathered when the model's forward starts and freed
  after their backward. A unit must not share a parameter with another unit or with the rest.

Every rank must produce a gradient for the same parameters in the same order (as DistributedDataParallel without
find_unused_parameters). Communication per step: stages 1 and 2 send what an all-reduce sends (reduce-scatter +
all-gather, 2(N−1)/N·Ψ elements per rank); stage 3 gathers the parameters twice and reduce-scatters once, 1.5×.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor, nn

from nlplab.dist.collectives import Group, all_gather, chunk_sizes, reduce_scatter
from nlplab.dist.data_parallel import clip_grad_norm_, replicate_
from nlplab.dist.optimizer_state import gathered_state, state_pieces
from nlplab.errors import ConfigError

STAGES = (1, 2, 3)


def expected_bytes(stage: int, numel: int, world_size: int, element_size: int = 4) -> float:
    """Model-state bytes per rank of Ψ = numel parameters trained with Adam in one precision (weights, gradients,
    two moments, `element_size` bytes each) under ZeRO `stage` (0: plain data parallelism) over N = world_size."""
    psi, n = numel * element_size, world_size
    return {0: 4 * psi, 1: 2 * psi + 2 * psi / n, 2: psi + 3 * psi / n, 3: 4 * psi / n}[stage]


def state_bytes(model: nn.Module, optimizer: torch.optim.Optimizer) -> int:
    """Bytes of model states this process holds now: the storages behind the model's parameters and their
    gradients, the optimizer's parameters, their gradients and its state tensors, each storage counted once.
    (torch's ZeroRedundancyOptimizer keeps its states in an inner optimizer, `optim`: those are counted.)"""
    states = getattr(optimizer, "optim", optimizer).state
    tensors = [*model.parameters(), *(p for group in optimizer.param_groups for p in group["params"])]
    tensors += [p.grad for p in tensors if p.grad is not None]
    tensors += [value for state in states.values() for value in state.values() if isinstance(value, Tensor)]
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tensors}
    return sum(storages.values())


def output_tensors(output: Any) -> list[Tensor]:
    """The tensors requiring a gradient in a module's output (a tensor, or tuples and lists of them, nested)."""
    if isinstance(output, Tensor):
        return [output] if output.requires_grad else []
    if isinstance(output, (tuple, list)):
        return [t for item in output for t in output_tensors(item)]
    return []


class Zero:
    """ZeRO stage 1, 2 or 3 for `model` (replicated from rank 0 at wrapping) on the ranks of `group`.

    make_optimizer(shards) builds the optimizer over this rank's shards (1-D tensors), e.g.
    `lambda params: Adam(params, lr=1e-3)`. Train with the model as usual and call `step()` where the optimizer's
    step would go and `zero_grad()` where its zero_grad would; each rank's loss is the mean over its shard of the
    batch (gradients are averaged over ranks). `units`: stage 3's gather/free units (see the module docstring).
    """

    def __init__(self, model: nn.Module, make_optimizer: Callable[[list[nn.Parameter]], torch.optim.Optimizer],
                 stage: int, group: Group | None = None, units: Iterable[nn.Module] | None = None) -> None:
        if stage not in STAGES:
            raise ConfigError(f"ZeRO stage must be one of {STAGES}, got {stage}")
        self.model, self.stage, self.group = model, stage, group or Group()
        replicate_(model, self.group)
        n, r = self.group.size, self.group.rank
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.sizes = {p: chunk_sizes(p.numel(), n) for p in self.params}
        self.shapes = {p: p.shape for p in self.params}
        self.shards: dict[nn.Parameter, nn.Parameter] = {}
        for p in self.params:
            lo = sum(self.sizes[p][:r])
            piece = p.detach().view(-1)[lo:lo + self.sizes[p][r]]
            self.shards[p] = nn.Parameter(piece.clone() if stage == 3 else piece)
        self.optimizer = make_optimizer(list(self.shards.values()))
        self.reduced = False
        if stage >= 2:
            for p in self.params:
                p.register_post_accumulate_grad_hook(self._reduce_gradient)
        self.gathered: set[nn.Parameter] = set(self.params)
        if stage == 3:
            self._install_units(list(units) if units is not None else
                                [m for lst in model.modules() if isinstance(lst, nn.ModuleList) for m in lst])

    # stage 3: gather before use, free after
    def _install_units(self, units: list[nn.Module]) -> None:
        owned = {p for unit in units for p in unit.parameters() if p.requires_grad}
        root = [p for p in self.params if p not in owned]
        self.model.register_forward_pre_hook(lambda module, inputs: self._gather(root))
        self.model.register_forward_hook(lambda module, inputs, output: None if torch.is_grad_enabled()
                                         else self._free(root))
        for unit in units:
            params = [p for p in unit.parameters() if p.requires_grad]
            unit.register_forward_pre_hook(lambda module, inputs, params=params: self._gather(params))
            unit.register_forward_hook(lambda module, inputs, output, params=params: self._after_unit(params, output))
        self._free(self.params)

    def _after_unit(self, params: list[nn.Parameter], output: Any) -> None:
        """Free the unit's parameters; the first output gradient of this forward gathers them again (outputs such
        as a KV cache are also used inside the unit: their gradients arrive later and must not gather again)."""
        self._free(params)
        if not torch.is_grad_enabled():
            return
        pending = [params]

        def gather_once(grad: Tensor) -> None:
            if pending:
                self._gather(pending.pop())

        for t in output_tensors(output):
            t.register_hook(gather_once)

    def _gather(self, params: list[nn.Parameter]) -> None:
        missing = [p for p in params if p not in self.gathered]
        for p, full in zip(missing, self.gathered_tensors(missing)):
            p.data = full
            self.gathered.add(p)

    def _free(self, params: list[nn.Parameter]) -> None:
        for p in params:
            if p in self.gathered:
                p.data = p.data.new_empty(0)
                self.gathered.discard(p)

    # one collective for many tensors: lay their pieces out by owner, so that rank r's pieces make chunk r
    def owner_sizes(self, params: list[nn.Parameter]) -> list[int]:
        return [sum(self.sizes[p][r] for p in params) for r in range(self.group.size)]

    def gathered_tensors(self, params: list[nn.Parameter], pieces: list[Tensor] | None = None) -> list[Tensor]:
        """The whole tensors of `params`, from one all-gather of every rank's shards laid end to end (or of
        `pieces`, tensors shaped like this rank's shards of them, e.g. their Adam moments)."""
        if not params:
            return []
        sizes = self.owner_sizes(params)
        pieces = pieces if pieces is not None else [self.shards[p].detach() for p in params]
        flat = all_gather(torch.cat([piece.flatten() for piece in pieces]), self.group, sizes)
        blocks = [block.split([self.sizes[p][r] for p in params]) for r, block in enumerate(flat.split(sizes))]
        return [torch.cat([block[i] for block in blocks]).view(self.shapes[p]) for i, p in enumerate(params)]

    def reduced_pieces(self, params: list[nn.Parameter]) -> list[Tensor]:
        """This rank's piece of the mean over ranks of each parameter's gradient, from one reduce-scatter."""
        layout = torch.cat([p.grad.flatten().split(self.sizes[p])[r] for r in range(self.group.size) for p in params])
        mine = reduce_scatter(layout, self.group, self.owner_sizes(params)) / self.group.size
        return list(mine.split([self.sizes[p][self.group.rank] for p in params]))

    # gradients
    @torch.no_grad()
    def _reduce_gradient(self, p: nn.Parameter) -> None:
        """Stages 2–3, as soon as p's gradient is accumulated: keep the average of this rank's piece, free the rest."""
        (piece,) = self.reduced_pieces([p])
        shard = self.shards[p]
        shard.grad = piece if shard.grad is None else shard.grad + piece
        p.grad = None
        if self.stage == 3:
            self._free([p])

    @torch.no_grad()
    def reduce_gradients(self) -> None:
        """Stage 1: average each full gradient's piece of this rank into place (once per step; stages 2–3 did it in
        backward). A parameter without a gradient counts as zeros."""
        if self.stage > 1 or self.reduced:
            return
        for p in self.params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        for (p, shard), reduced in zip(self.shards.items(), self.reduced_pieces(self.params)):
            lo = sum(self.sizes[p][: self.group.rank])
            shard.grad = p.grad.view(-1)[lo:lo + shard.numel()].copy_(reduced)
        self.reduced = True

    def clip_grad_norm(self, max_norm: float) -> Tensor:
        """Scale the gradients so that their global L2 norm (over all pieces on all ranks) is at most max_norm, as
        `torch.nn.utils.clip_grad_norm_`; returns the norm before clipping."""
        self.reduce_gradients()
        return clip_grad_norm_([s.grad for s in self.shards.values() if s.grad is not None], max_norm, self.group)

    @torch.no_grad()
    def step(self) -> None:
        """The optimizer step on this rank's shards, then (stages 1–2) every parameter gathered from its pieces."""
        self.reduce_gradients()
        self.optimizer.step()
        if self.stage < 3:
            for p, full in zip(self.params, self.gathered_tensors(self.params)):
                p.copy_(full)
        self.reduced = False

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None
            self.shards[p].grad = None

    @torch.no_grad()
    def full_state_dict(self) -> dict[str, Tensor]:
        """The whole model's state dict (every parameter gathered, on every rank), for saving."""
        names = {p: name for name, p in self.model.named_parameters()}
        state = {name: t.detach().clone() for name, t in self.model.state_dict().items()}
        for p, full in zip(self.params, self.gathered_tensors(self.params)):
            state[names[p]] = full
        return state

    def optimizer_state_dict(self) -> dict[str, Any]:
        """The optimizer's state as one process's optimizer over the model's trainable parameters would hold it
        (`nlplab.dist.optimizer_state`), on every rank."""
        shards = [self.shards[p] for p in self.params]
        return gathered_state(self.optimizer.state_dict(), shards,
                              lambda indices, pieces: self.gathered_tensors([self.params[i] for i in indices], pieces))

    def load_optimizer_state_dict(self, state: dict[str, Any]) -> None:
        """Take an `optimizer_state_dict()` (saved by any number of ranks, or by one process): each rank keeps the
        pieces of its shards."""
        def cut(i: int, whole: Tensor) -> Tensor:
            p = self.params[i]
            lo = sum(self.sizes[p][: self.group.rank])
            return whole.reshape(-1)[lo:lo + self.sizes[p][self.group.rank]].clone()

        self.optimizer.load_state_dict(state_pieces(state, [self.shapes[p] for p in self.params], cut))

    def state_bytes(self) -> int:
        """Model-state bytes this rank holds now (see `state_bytes`)."""
        return state_bytes(self.model, self.optimizer)

