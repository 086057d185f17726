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
    moments = strategy.optimizer_state_dict(optimizer)       # one process's optimizer state; complete there too
    strategy.whole_model(weights)                            # the main rank's single-process model, for evaluation

Each rank takes its share of the global batch (`shard_batch`), and the loss is scaled so that the gradient is the
one of the global batch's mean: rank r's loss is multiplied by p·count_r/N (N the sum of the counts, e.g. tokens),
which the data-parallel average brings back to Σ_r count_r/N · ∇loss_r. So a recipe reaches the same weights, up to
float rounding, at any number of processes. (A rank whose share is empty — a last batch smaller than the ranks — runs
one example with weight 0: every rank must take part in backward.)

Saving and resuming go through one layout whatever the strategy: `state_dict()` is the whole model's, as one process
saves it, and `optimizer_state_dict()` the optimizer state one process would hold (`nlplab.dist.optimizer_state`);
`load_optimizer_state_dict` cuts it back into this rank's part. The model's weights are loaded before `wrap`, which
starts every rank from the main rank's. So a checkpoint written by N processes resumes in M processes or in one.
Evaluation runs in one process: `whole_model(weights)` is, on the main rank, a single-process model holding them —
the model itself where the strategy keeps it whole (ddp, zero1, the hand-written zero2), else a copy taken at
`wrap`, before the strategy split or sharded it.

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

import copy
import json
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from nlplab.dist.collectives import Group, broadcast
from nlplab.dist.data_parallel import DataParallel, batch_rows, clip_grad_norm_, replicate_, shard_batch
from nlplab.dist.optimizer_state import gathered_state, per_element, state_pieces
from nlplab.dist.pipeline import GPTStage, Pipeline
from nlplab.dist.tensor_parallel import (
    ColumnParallelLinear,
    RowParallelLinear,
    full_state_dict,
    split_parameters,
    tensor_parallel_,
)
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
        nccl = dist.is_initialized() and dist.get_backend() == "nccl"
        self.device = torch.device("cuda", torch.cuda.current_device()) if nccl else torch.device("cpu")
        """Where this rank's own collectives (figures, messages) put their tensors: NCCL's GPU, or the CPU."""
        self.model: nn.Module | None = None
        self.wrapped: nn.Module | None = None
        self.whole: nn.Module | None = None
        self.names: list[str] = []
        self.shapes: list[torch.Size] = []

    @property
    def is_main(self) -> bool:
        """True on the rank that logs and writes (rank 0)."""
        return self.rank == 0

    def wrap(self, model: nn.Module) -> nn.Module:
        """The module the loop calls forward on; `model` itself stays reachable as `self.model`."""
        self.keep_whole(model, split=False)
        self.model = self.wrapped = model
        return model

    def keep_whole(self, model: nn.Module, split: bool) -> None:
        """At wrapping: note the trainable parameters' names and shapes (the order of the consolidated optimizer
        state) and, on the main rank, the single-process model for evaluation — `model` itself, or a copy taken now
        when the strategy is about to `split` or shard it."""
        trainable = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
        self.names, self.shapes = [name for name, _ in trainable], [p.shape for _, p in trainable]
        self.whole = (copy.deepcopy(model) if split else model) if self.is_main else None

    def whole_model(self, weights: dict[str, Tensor]) -> nn.Module | None:
        """On the main rank, the single-process model holding `weights` (from `state_dict()`); None elsewhere."""
        if self.whole is not None and self.whole is not self.model:
            self.whole.load_state_dict(weights)
        return self.whole

    def build_optimizer(self, make_optimizer: MakeOptimizer) -> torch.optim.Optimizer:
        return make_optimizer([p for p in self.model.parameters() if p.requires_grad])

    def shard(self, batch: Any) -> Any:
        """This rank's share of the global batch."""
        return batch if self.world_size == 1 else shard_batch(batch, self.rank, self.world_size)

    def forward_backward(self, step: StepFn, batch: Any,
                         objective: Callable[[Tensor], Tensor] | None = None) -> tuple[Tensor, int, dict[str, float]]:
        """step(this rank's share) -> (loss, count, extra); backward of objective(loss) (default: loss), scaled as the
        module docstring says. Returns step's (loss, count, extra), all of this rank: `reduce_sum` of
        loss × count, count and the extra sums gives the global batch's figures."""
        shard = self.shard(batch)
        empty = batch_rows(shard) == 0
        loss, count, extra = step(shard_batch(batch, 0, batch_rows(batch)) if empty else shard)
        if empty:
            count, extra = 0, dict.fromkeys(extra, 0.0)
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

    def optimizer_state_dict(self, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
        """The optimizer state one process training the whole model would hold (`nlplab.dist.optimizer_state`);
        complete on the main rank (call on all)."""
        return optimizer.state_dict()

    def load_optimizer_state_dict(self, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
        """Take an `optimizer_state_dict()` saved by any number of processes (call on all, each with all of it)."""
        optimizer.load_state_dict(state)

    def reduce_sum(self, values: dict[str, float]) -> dict[str, float]:
        """Each value summed over the ranks (figures for the log: losses × counts, counts)."""
        if self.world_size == 1:
            return values
        total = torch.tensor(list(values.values()), dtype=torch.float64, device=self.device)
        dist.all_reduce(total)
        return dict(zip(values, total.tolist()))

    def broadcast_json(self, value: Any = None) -> Any:
        """The main rank's `value` (what JSON holds: numbers, texts, lists, dicts with text keys) on every rank."""
        if self.world_size == 1:
            return value
        data = json.dumps(value).encode() if self.is_main else b""
        size = torch.tensor([len(data)], device=self.device)
        dist.broadcast(size, 0)
        buffer = torch.tensor(list(data), dtype=torch.uint8, device=self.device) if self.is_main else \
            torch.empty(int(size), dtype=torch.uint8, device=self.device)
        dist.broadcast(buffer, 0)
        return value if self.is_main else json.loads(buffer.cpu().numpy().tobytes())

    def all_gather(self, tensor: Tensor) -> list[Tensor]:
        """Every rank's `tensor` (the same shape on all), in rank order, on this rank's device for it."""
        if self.world_size == 1:
            return [tensor]
        out = [torch.empty_like(tensor, device=self.device) for _ in range(self.world_size)]
        dist.all_gather(out, tensor.to(self.device))
        return [t.to(tensor.device) for t in out]

    def barrier(self) -> None:
        if self.world_size > 1:
            dist.barrier()


class DataParallelStrategy(Strategy):
    """ddp: DistributedDataParallel (fused) or the hand-written `DataParallel` (manual)."""

    name = "ddp"

    def wrap(self, model: nn.Module) -> nn.Module:
        self.keep_whole(model, split=False)
        self.model = model
        if self.impl == "fused":
            self.wrapped = nn.parallel.DistributedDataParallel(model, gradient_as_bucket_view=True, static_graph=True)
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
        self.keep_whole(model, split=self.stage == 3 or (self.stage == 2 and self.impl == "fused"))
        self.model = self.wrapped = model
        if self.impl == "manual":
            return model
        if self.stage == 1:
            self.wrapped = nn.parallel.DistributedDataParallel(model, gradient_as_bucket_view=True, static_graph=True)
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
            trainable = [p for p in self.model.parameters() if p.requires_grad]
            return ZeroRedundancyOptimizer(trainable, optimizer_class=type(probe), **probe.defaults)
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
        with self.full_state():
            return self.wrapped.state_dict()

    @contextmanager
    def full_state(self, rank0_only: bool = True) -> Iterator[None]:
        """FSDP's whole (unsharded) state dicts of the model and the optimizer inside the block, by FQN."""
        from torch.distributed.fsdp import (
            FullOptimStateDictConfig,
            FullStateDictConfig,
            FullyShardedDataParallel,
            StateDictType,
        )

        offload = self.wrapped.compute_device.type == "cuda"
        with warnings.catch_warnings():
            # at every save: gloo serves CPU and CUDA tensors alike (FSDP notes that it picked the CPU), and FSDP's
            # state-dict API is to give way to torch.distributed.checkpoint's, which fails here on sharded CPU models
            for message in ("Multiple backends are registered", "FSDP.state_dict_type", "`_get_pg_default_device`"):
                warnings.filterwarnings("ignore", message)
            with FullyShardedDataParallel.state_dict_type(
                    self.wrapped, StateDictType.FULL_STATE_DICT, FullStateDictConfig(offload, rank0_only),
                    FullOptimStateDictConfig(offload, rank0_only)):
                yield

    def optimizer_state_dict(self, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
        if self.zero is not None:
            return self.zero.optimizer_state_dict()
        if self.stage == 1:
            optimizer.consolidate_state_dict(to=0)
            return optimizer.state_dict() if self.is_main else {}
        from torch.distributed.fsdp import FullyShardedDataParallel

        with self.full_state():
            by_name = FullyShardedDataParallel.optim_state_dict(self.wrapped, optimizer)
        if not self.is_main:
            return {}
        # copies: FSDP's tensors share storage (e.g. one step counter per flat parameter), which a checkpoint refuses
        index = {name: i for i, name in enumerate(self.names)}
        return {"state": {index[name]: {key: value.clone() if isinstance(value, Tensor) else value
                                        for key, value in values.items()} for name, values in by_name["state"].items()},
                "param_groups": [{**group, "params": sorted(index[name] for name in group["params"])}  # model order
                                 for group in by_name["param_groups"]]}

    def load_optimizer_state_dict(self, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
        if self.zero is not None:
            self.zero.load_optimizer_state_dict(state)
        elif self.stage == 1:  # ZeroRedundancyOptimizer keeps its own part and clears the rest of what it is given
            optimizer.load_state_dict({"state": dict(state["state"]), "param_groups": state["param_groups"]})
        else:
            from torch.distributed.fsdp import FullyShardedDataParallel

            by_name = {"state": {self.names[i]: values for i, values in state["state"].items()},
                       "param_groups": [{**group, "params": [self.names[i] for i in group["params"]]}
                                        for group in state["param_groups"]]}
            with self.full_state(rank0_only=False):
                flat = FullyShardedDataParallel.optim_state_dict_to_load(self.wrapped, optimizer, by_name)
            optimizer.load_state_dict(flat)


class TensorParallelStrategy(Strategy):
    """tp: every TransformerBlock split across all ranks (Megatron) from rank 0's weights; every rank sees the whole
    batch."""

    name = "tp"

    def wrap(self, model: nn.Module) -> nn.Module:
        blocks = [m for m in model.modules() if isinstance(m, TransformerBlock)]
        if not blocks:
            raise ConfigError("--strategy tp splits transformer blocks; this model has none (use a transformer or "
                              "gpt model, or --strategy ddp)")
        n = self.world_size
        for block in blocks:
            if block.attn.num_heads % n or block.attn.d_model % n:
                raise ConfigError(f"--strategy tp splits every attention layer's {block.attn.num_heads} heads and "
                                  f"{block.attn.d_model} hidden units over the {n} processes: --heads and --hidden-size "
                                  f"must be divisible by {n}")
        self.group = Group()
        replicate_(model, self.group)
        self.keep_whole(model, split=True)
        self.model = self.wrapped = tensor_parallel_(model, self.group)
        self.layers = [split_parameters(self.model).get(name) for name in self.names]
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

    def optimizer_state_dict(self, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
        pieces = [p for p in self.model.parameters() if p.requires_grad]
        return gathered_state(optimizer.state_dict(), pieces, lambda indices, tensors: [
            t if self.layers[i] is None else self.layers[i].full(t) for i, t in zip(indices, tensors)])

    def load_optimizer_state_dict(self, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
        optimizer.load_state_dict(state_pieces(state, self.shapes, lambda i, whole: whole if self.layers[i] is None
                                               else self.layers[i].piece(whole)))


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
        self.keep_whole(model, split=True)
        self.tensors = {name: (t.shape, t.dtype) for name, t in model.state_dict().items()}
        self.owners: dict[str, int] = {}
        for stage in range(self.world_size):
            for name in GPTStage(model, stage, self.world_size).state_dict():
                self.owners.setdefault(name, stage)
        self.model = self.wrapped = GPTStage(model, self.rank, self.world_size)
        self.stage_names = [name for name, p in self.model.named_parameters() if p.requires_grad]
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
        report = self.pipeline.train_step(batch["ids"], batch["targets"], min(self.micro_batches, len(batch["ids"])))
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

    def state_dict(self) -> dict[str, Tensor]:
        """Every stage sends the tensors it holds first (the tied embedding from the first stage) to rank 0."""
        return self.to_root(self.model.state_dict(), list(self.tensors))

    @torch.no_grad()
    def to_root(self, mine: dict[str, Tensor], names: list[str]) -> dict[str, Tensor]:
        """{name: tensor} for `names` on rank 0, each sent by the stage that owns it (`mine`: this stage's, shaped
        and typed like the GPT's tensor of that name); {} on the other ranks."""
        state = {}
        for name in names:
            owner, (shape, dtype) = self.owners[name], self.tensors[name]
            if self.rank == 0:
                state[name] = mine[name].clone() if owner == 0 else torch.empty(shape, dtype=dtype, device=self.device)
                self.group.exchange(recv=None if owner == 0 else state[name], source=owner)
            elif self.rank == owner:
                self.group.exchange(send=mine[name], to=0)
        return state

    def optimizer_state_dict(self, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
        """Each state tensor (one value per element) goes to rank 0 from the stage owning its parameter; the other
        values (step counts) are rank 0's: every stage steps all its parameters at every step."""
        local = optimizer.state_dict()
        mine = {self.stage_names[j]: values for j, values in local["state"].items()}
        name, values = next(iter(mine.items()), (None, {}))
        keys = [key for key, value in values.items() if per_element(value, self.tensors[name][0])]
        gathered = {key: self.to_root({name: values[key] for name, values in mine.items()}, self.names) for key in keys}
        if not self.is_main:
            return {}
        rest = {key: value for key, value in values.items() if key not in keys}
        state = {i: {**{key: copy.deepcopy(value) for key, value in rest.items()}, **{key: gathered[key][name] for key in keys}}
                 for i, name in enumerate(self.names)} if mine else {}
        return {"state": state, "param_groups": [{**group, "params": list(range(len(self.names)))}
                                                 for group in local["param_groups"]]}

    def load_optimizer_state_dict(self, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
        index = {name: i for i, name in enumerate(self.names)}
        mine = {j: state["state"][index[name]] for j, name in enumerate(self.stage_names) if index[name] in state["state"]}
        optimizer.load_state_dict({"state": mine, "param_groups": [{**group, "params": list(range(len(self.stage_names)))}
                                                                   for group in state["param_groups"]]})


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
