"""Distributed training by hand, proven equal to PyTorch's engines, and the strategies a training loop runs under.

Submodules: launch (spawn a gloo group on this machine, or join torchrun's), collectives (ring, halving-doubling
and naive all-reduce, reduce-scatter, all-gather, broadcast over send/recv, with byte counts), data_parallel (the
five steps, bucketed all-reduce), zero (stages 1, 2, 3), tensor_parallel (Megatron column/row-parallel layers,
MLP, attention), pipeline (GPT stages, GPipe and 1F1B), onebit_adam, topology (the 3D rank grid), strategy (ddp,
zero1-3, fsdp, tp, pp behind one interface, PyTorch's engine or the hand-written one), optimizer_state (one
optimizer state for any number of processes)."""

from nlplab.dist.collectives import Group, all_gather, all_reduce, broadcast, reduce_scatter
from nlplab.dist.data_parallel import DataParallel, shard_batch
from nlplab.dist.launch import RankError, init_from_env, joined, launched, spawn
from nlplab.dist.onebit_adam import OneBitAdam
from nlplab.dist.pipeline import GPTStage, Pipeline
from nlplab.dist.strategy import STRATEGIES, Strategy, build_strategy
from nlplab.dist.tensor_parallel import ColumnParallelLinear, RowParallelLinear, tensor_parallel_
from nlplab.dist.topology import Topology, process_groups
from nlplab.dist.zero import Zero

__all__ = [
    "STRATEGIES", "ColumnParallelLinear", "DataParallel", "GPTStage", "Group", "OneBitAdam", "Pipeline", "RankError",
    "RowParallelLinear", "Strategy", "Topology", "Zero", "all_gather", "all_reduce", "broadcast", "build_strategy",
    "init_from_env", "joined", "launched", "process_groups", "reduce_scatter", "shard_batch", "spawn", "tensor_parallel_",
]
