"""Strategies: how one training loop runs on several processes without knowing which parallelism it runs under.

    strategy = build_strategy("zero2", impl="fused")        # after the process group is up (init_from_env)
    model = strategy.wrap(model)                             # once, after building the model (on its device)
    optimizer = strategy.build_optimizer(make_optimizer)     # once: a torch Optimizer, LR schedulers plug in
    for batch in batches:                                    # the global batch, the same on every rank
        strategy.zero_grad(optimizer)
        loss, count, extra = strategy.forward_backward(step, batch)   # step(local batch) -> (loss, count, extra)
        strategy.clip_grad_norm(max_norm)                    # optional
        strategy.step(optimizer)
    weights = strategy.state_dict()                          # the whole model's; complete on the main rank

Each rank takes its share of the global batch (`shard_batch`), and the loss is scaled so that the gradient is the
one of the global batch's mean: rank r's loss is multiplied by p·count_r/N (N the sum of the counts, e.g. tokens),
which the data-parallel average brings back to Σ_r count_r/N · ∇loss_r. So a recipe reaches the same weights, up to
float rounding, at any number of processes.

    name    what each rank holds                                 impl "fused" (PyTorch)               "manual"
    single  everything (one process)                             –                                    –
    ddp     the whole model; gradients all-reduced               DistributedDataParallel              DataParallel
    zero1   + its 1/N of the optimizer states                    DDP + ZeroRedundancyOptimizer        Zero(stage=1)
    zero2   + its 1/N of the gradients                           FSDP SHARD_GRAD_OP                   Zero(stage=2)
    zero3   + its 1/N of the parameters                          FSDP FULL_SHARD                      Zero(stage=3)
    fsdp    the same as zero3                                    FSDP FULL_SHARD                      Zero(stage=3)
    tp      1/N of each attention and MLP layer (GPT blocks)     (hand-written)                       tensor_parallel_
    pp      1/N of a GPT's layers, micro-batches in 1F1B         (hand-written)                       Pipeline

tp and pp always use the hand-written engines: PyTorch's DTensor tensor parallelism would split the keys/values
matrix of `MultiHeadAttention` (stored [W_k; W_v]) by rows, giving one rank the keys and the other the values, and
its pipelining API owns the training step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from nlplab.dist.collectives import Group, broadcast
from nlplab.dist.data_parallel import DataParallel, clip_grad_norm_, replicate_, shard_batch
from nlplab.dist.pipeline import GPTStage, Pipeline
from nlplab.dist.tensor_parallel import ColumnParallelLinear, RowParallelLinear, full_state_dict, tensor_parallel_
from nlplab.dist.zero import Zero
from nlplab.errors import ConfigError
from nlplab.models.gpt import GPT
from nlplab.nn.layers import check_impl
from nlplab.nn.transformer import TransformerBlock

STRATEGIES = ("single", "ddp", "zero1", "zero2", "zero3", "fsdp", "tp", "pp")
MakeOptimizer = Callable[[list[nn.Parameter]], torch.optim.Optimizer]
StepFn = Callable[[Any], tuple[Tensor, int, dict[str, float]]]


class Strategy:
    """One process, nothing distributed; the base every strategy extends. See the module docstring for the loop."""

    name = "single"

    def __init__(self, impl: str = "fused") -> None:
        self.impl = check_impl(impl)
        self.rank = dist.get_rank() if dist.is_initialized() else 0
        self.world_size = dist.get_world_size() if dist.is_initialized() else 1
        self.model: nn.Module | None = None
        self.wrapped: nn.Module | None = None

    @property
    def is_main(self) -> bool:
        """True on the rank that logs and writes (rank 0)."""
        return self.rank == 0

    def wrap(self, model: nn.Module) -> nn.Module:
        """The module the loop calls forward on; `model` itself stays reachable as `self.model`."""
        self.model = self.wrapped = model
        return model

    def build_optimizer(self, make_optimizer: MakeOptimizer) -> torch.optim.Optimizer:
        return make_optimizer([p for p in self.model.parameters() if p.requires_grad])

    def shard(self, batch: Any) -> Any:
        """This rank's share of the global batch."""
        return shard_batch(batch, self.rank, self.world_size)

    def forward_backward(self, step: StepFn, batch: Any,
                         objective: Callable[[Tensor], Tensor] | None = None) -> tuple[Tensor, int, dict[str, float]]:
        """step(this rank's share) -> (loss, count, extra); backward of objective(loss) (default: loss), scaled as the
        module docstring says. Returns step's (loss, count, extra), all of this rank: `reduce_sum` of
        loss × count, count and the extra sums gives the global batch's figures."""
        loss, count, extra = step(self.shard(batch))
        ((objective or (lambda x: x))(loss) * self.loss_scale(count)).backward()
        self.after_backward()
        return loss, count, extra

    def loss_scale(self, count: int) -> float:
        """p · count / Σ counts: the factor that turns the ranks' average into the global batch's mean."""
        if self.world_size == 1:
            return 1.0
        return self.world_size * count / self.reduce_sum({"count": float(count)})["count"]

    def after_backward(self) -> None:
        """What has to follow backward before the gradients are complete (nothing here)."""

    def clip_grad_norm(self, max_norm: float) -> Tensor:
        """Scale the gradients to a global L2 norm of at most max_norm; returns the norm before clipping."""
        return torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm)

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        optimizer.step()

    def zero_grad(self, optimizer: torch.optim.Optimizer) -> None:
        optimizer.zero_grad(set_to_none=True)

    def state_dict(self) -> dict[str, Tensor]:
        """The whole model's state dict, as one process would save it; complete on the main rank (call on all)."""
        return self.model.state_dict()

    def reduce_sum(self, values: dict[str, float]) -> dict[str, float]:
        """Each value summed over the ranks (figures for the log: losses × counts, counts)."""
        if self.world_size == 1:
            return values
        total = torch.tensor(list(values.values()), dtype=torch.float64)
        dist.all_reduce(total)
        return dict(zip(values, total.tolist()))

    def barrier(self) -> None:
        if self.world_size > 1:
            dist.barrier()


class DataParallelStrategy(Strategy):
    """ddp: DistributedDataParallel (fused) or the hand-written `DataParallel` (manual)."""

    name = "ddp"

    def wrap(self, model: nn.Module) -> nn.Module:
        self.model = model
        if self.impl == "fused":
            self.wrapped = nn.parallel.DistributedDataParallel(model, gradient_as_bucket_view=True)
        else:
            self.wrapped = DataParallel(model, Group())
        return self.wrapped

    def after_backward(self) -> None:
        if self.impl == "manual":
            self.wrapped.sync_gradients()


def wrap_units(model: nn.Module) -> set[type[nn.Module]]:
    """The classes of the modules held in the model's nn.ModuleLists (e.g. TransformerBlock): FSDP's wrapping
    units, as the hand-written ZeRO-3's."""
    return {type(m) for lst in model.modules() if isinstance(lst, nn.ModuleList) for m in lst}


class ZeroStrategy(Strategy):
    """zero1/zero2/zero3/fsdp. fused: DDP + ZeroRedundancyOptimizer (stage 1), FSDP SHARD_GRAD_OP (2) or
    FULL_SHARD (3), each block of a ModuleList its own FSDP unit; manual: `Zero(stage)`."""

    def __init__(self, stage: int, impl: str = "fused", name: str | None = None) -> None:
        super().__init__(impl)
        self.stage, self.name = stage, name or f"zero{stage}"
        self.zero: Zero | None = None

    def wrap(self, model: nn.Module) -> nn.Module:
        self.model = self.wrapped = model
        if self.impl == "manual":
            return model
        if self.stage == 1:
            self.wrapped = nn.parallel.DistributedDataParallel(model, gradient_as_bucket_view=True)
            return self.wrapped
        from torch.distributed.fsdp import FullyShardedDataParallel, ShardingStrategy
        from torch.distributed.fsdp.wrap import ModuleWrapPolicy

        sharding = ShardingStrategy.SHARD_GRAD_OP if self.stage == 2 else ShardingStrategy.FULL_SHARD
        replicate_(model, Group())  # FSDP's own sync_module_states works on GPUs only
        self.wrapped = FullyShardedDataParallel(model, sharding_strategy=sharding,
                                                auto_wrap_policy=ModuleWrapPolicy(wrap_units(model)),
                                                device_id=next(model.parameters()).device)
        return self.wrapped

    def build_optimizer(self, make_optimizer: MakeOptimizer) -> torch.optim.Optimizer:
        if self.impl == "manual":
            self.zero = Zero(self.model, make_optimizer, self.stage, Group())
            return self.zero.optimizer
        if self.stage == 1:
            from torch.distributed.optim import ZeroRedundancyOptimizer

            probe = make_optimizer([nn.Parameter(torch.zeros(1))])
            return ZeroRedundancyOptimizer(list(self.model.parameters()), optimizer_class=type(probe), **probe.defaults)
        return make_optimizer(list(self.wrapped.parameters()))

    def clip_grad_norm(self, max_norm: float) -> Tensor:
        if self.zero is not None:
            return self.zero.clip_grad_norm(max_norm)
        if self.stage == 1:
            return super().clip_grad_norm(max_norm)
        # FSDP's own clip_grad_norm_ refuses float64; its gradients are shards held once each, like ours
        grads = [p.grad for p in self.wrapped.parameters() if p.grad is not None]
        return clip_grad_norm_(grads, max_norm, Group(), algorithm="torch")

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.zero is not None:
            self.zero.step()
        else:
            optimizer.step()

    def zero_grad(self, optimizer: torch.optim.Optimizer) -> None:
        if self.zero is not None:
            self.zero.zero_grad()
        else:
            optimizer.zero_grad(set_to_none=True)

    def state_dict(self) -> dict[str, Tensor]:
        if self.zero is not None:
            return self.zero.full_state_dict()
        if self.stage == 1:
            return self.model.state_dict()
        from torch.distributed.fsdp import FullStateDictConfig, FullyShardedDataParallel, StateDictType

        config = FullStateDictConfig(offload_to_cpu=self.wrapped.compute_device.type == "cuda", rank0_only=True)
        with FullyShardedDataParallel.state_dict_type(self.wrapped, StateDictType.FULL_STATE_DICT, config):
            return self.wrapped.state_dict()


class TensorParallelStrategy(Strategy):
    """tp: every TransformerBlock split across all ranks (Megatron) from rank 0's weights; every rank sees the whole
    batch."""

    name = "tp"

    def wrap(self, model: nn.Module) -> nn.Module:
        if not any(isinstance(m, TransformerBlock) for m in model.modules()):
            raise ConfigError("--strategy tp splits transformer blocks; this model has none (use a transformer or "
                              "gpt model, or --strategy ddp)")
        self.group = Group()
        replicate_(model, self.group)
        self.model = self.wrapped = tensor_parallel_(model, self.group)
        return model

    def shard(self, batch: Any) -> Any:
        return batch

    def loss_scale(self, count: int) -> float:
        return 1.0

    def clip_grad_norm(self, max_norm: float) -> Tensor:
        """Pieces of split layers count once each; whole tensors (norms, embeddings) are on every rank: 1/N each."""
        split = {id(p) for m in self.model.modules() if isinstance(m, ColumnParallelLinear) for p in m.parameters()}
        split |= {id(m.weight) for m in self.model.modules() if isinstance(m, RowParallelLinear)}
        params = [p for p in self.model.parameters() if p.grad is not None]
        shares = [1.0 if id(p) in split else 1 / self.world_size for p in params]
        return clip_grad_norm_([p.grad for p in params], max_norm, self.group, shares)

    def state_dict(self) -> dict[str, Tensor]:
        return full_state_dict(self.model)


class PipelineStrategy(Strategy):
    """pp: a GPT's blocks split into world_size stages (embeddings on the first, final norm and output layer on the
    last), the global batch cut into `micro_batches` (default 2 × stages) run under the "1f1b" or "gpipe" schedule.
    Batches are dicts with "ids" and "targets" (B, T), as the lm task's; the loss is the mean cross-entropy."""

    name = "pp"

    def __init__(self, impl: str = "fused", micro_batches: int | None = None, schedule: str = "1f1b") -> None:
        super().__init__(impl)
        self.micro_batches, self.schedule = micro_batches or 2 * self.world_size, schedule

    def wrap(self, model: nn.Module) -> nn.Module:
        if not isinstance(model, GPT):
            raise ConfigError("--strategy pp splits a GPT into stages; use --task lm --model gpt, or --strategy ddp")
        self.group = Group()
        replicate_(model, self.group)
        self.shapes = {name: (t.shape, t.dtype) for name, t in model.state_dict().items()}
        self.owners: dict[str, int] = {}
        for stage in range(self.world_size):
            for name in GPTStage(model, stage, self.world_size).state_dict():
                self.owners.setdefault(name, stage)
        self.model = self.wrapped = GPTStage(model, self.rank, self.world_size)
        self.pipeline = Pipeline(self.model, self.group, self.cross_entropy, model.cfg.n_embd, self.schedule,
                                 self.model.tied)
        return self.model

    @staticmethod
    def cross_entropy(logits: Tensor, targets: Tensor) -> Tensor:
        """Mean next-token cross-entropy, computed in at least float32 (logits may come from bf16 autocast)."""
        logits = logits.flatten(0, 1).to(torch.promote_types(logits.dtype, torch.float32))
        return F.cross_entropy(logits, targets.flatten(), ignore_index=-100)

    def forward_backward(self, step: StepFn, batch: Any,
                         objective: Callable[[Tensor], Tensor] | None = None) -> tuple[Tensor, int, dict[str, float]]:
        """The pipeline step on the whole batch; step and objective are not used (the loss is the pipeline's).
        The loss is the last stage's, broadcast to every rank; the count is the batch's on the last stage and 0 on
        the others, so that `reduce_sum` of loss × count and count gives the batch's figures as for the others."""
        report = self.pipeline.train_step(batch["ids"], batch["targets"], self.micro_batches)
        loss = torch.tensor([report.loss or 0.0], dtype=torch.float64)
        count = batch["targets"].numel() if self.pipeline.last else 0
        return broadcast(loss, self.group, root=self.world_size - 1)[0], count, {}

    def shard(self, batch: Any) -> Any:
        return batch

    def clip_grad_norm(self, max_norm: float) -> Tensor:
        """The tied embedding is on the first and the last stage alike: half of it counts on each."""
        named = [(name, p) for name, p in self.model.named_parameters() if p.grad is not None]
        tied = self.world_size > 1 and (self.model.first or self.model.last)
        shares = [0.5 if tied and name == "tokens.weight" else 1.0 for name, _ in named]
        return clip_grad_norm_([p.grad for _, p in named], max_norm, self.group, shares)

    @torch.no_grad()
    def state_dict(self) -> dict[str, Tensor]:
        """Every stage sends the tensors it holds first (the tied embedding from the first stage) to rank 0."""
        mine, state = self.model.state_dict(), {}
        for name, (shape, dtype) in self.shapes.items():
            owner = self.owners[name]
            if self.rank == 0:
                state[name] = mine[name].clone() if owner == 0 else torch.empty(shape, dtype=dtype)
                self.group.exchange(recv=None if owner == 0 else state[name], source=owner)
            elif self.rank == owner:
                self.group.exchange(send=mine[name], to=0)
        return state


def build_strategy(name: str, impl: str = "fused", **options: Any) -> Strategy:
    """The strategy `name` (see STRATEGIES and the module docstring). Every one but "single" needs the process group
    to be up (`init_from_env` under torchrun, or `spawn`). options: micro_batches and schedule for "pp"."""
    if name not in STRATEGIES:
        raise ConfigError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}")
    if name != "single" and not dist.is_initialized():
        raise ConfigError(f"--strategy {name} runs on several processes; start it with "
                          "`torchrun --nproc-per-node N -m nlplab train ...`")
    if name == "single":
        return Strategy(impl)
    if name == "ddp":
        return DataParallelStrategy(impl)
    if name in ("zero1", "zero2", "zero3", "fsdp"):
        return ZeroStrategy(3 if name == "fsdp" else int(name[-1]), impl, name)
    if name == "tp":
        return TensorParallelStrategy(impl)
    return PipelineStrategy(impl, **options)
