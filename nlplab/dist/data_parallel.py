"""Data parallelism by hand: every rank holds the whole model and a shard of each batch.

The five steps, per training step, on p ranks:
1. same initial weights on every rank: rank 0's parameters and buffers are broadcast once, at wrapping;
2. each rank takes its shard of the global batch (`shard_batch`: B examples cut into p nearly equal parts);
3. each rank runs forward and backward on its shard alone;
4. the gradients are averaged, g = (1/p) Σ_r g_r, by all-reduce, a bucket at a time (`sync_gradients`);
5. every rank applies the same optimizer step to the same weights with the same gradient, so they stay equal.

With equal shards and a loss that is a mean over examples, the average of the shards' gradients is the gradient of
the whole batch, so p ranks take exactly the step one process takes on the whole batch. Buckets: the gradients are
flattened into buckets of about `bucket_bytes` (parameters taken in reverse order, roughly the order backward
produces them, as `DistributedDataParallel` does) so that a few large messages replace many small ones: an
all-reduce pays its latency α per message, 2(p−1)·α for the ring.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor, nn

from nlplab.dist.collectives import Group, all_reduce, broadcast


def shard_batch(batch: Any, rank: int, world_size: int) -> Any:
    """This rank's share of a batch: every tensor (in a tensor, dict, list or tuple) cut along dim 0 into
    world_size nearly equal parts (`torch.tensor_split`, the first B mod p parts one longer); other values kept."""
    if isinstance(batch, Tensor):
        return batch.tensor_split(world_size)[rank]
    if isinstance(batch, dict):
        return {key: shard_batch(value, rank, world_size) for key, value in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(shard_batch(value, rank, world_size) for value in batch)
    return batch


def batch_rows(batch: Any) -> int:
    """The number of examples in a batch: the length of its first tensor (0 when it holds none)."""
    if isinstance(batch, Tensor):
        return len(batch)
    values = batch.values() if isinstance(batch, dict) else batch if isinstance(batch, (list, tuple)) else ()
    return next((rows for rows in map(batch_rows, values) if rows), 0)


def replicate_(module: nn.Module, group: Group, root: int = 0) -> None:
    """Step 1: overwrite every rank's parameters and buffers with the root's (binomial-tree broadcast)."""
    with torch.no_grad():
        for tensor in [*module.parameters(), *module.buffers()]:
            tensor.copy_(broadcast(tensor, group, root))


def buckets(params: list[nn.Parameter], bucket_bytes: int) -> list[list[nn.Parameter]]:
    """params in reverse order, cut into consecutive groups of at most bucket_bytes (a larger tensor alone)."""
    out: list[list[nn.Parameter]] = [[]]
    size = 0
    for p in reversed(params):
        nbytes = p.numel() * p.element_size()
        if out[-1] and size + nbytes > bucket_bytes:
            out.append([])
            size = 0
        out[-1].append(p)
        size += nbytes
    return [bucket for bucket in out if bucket]


class DataParallel(nn.Module):
    """A model replicated on every rank of `group`; call `sync_gradients()` between backward and the step.

    forward passes straight to the wrapped `module`. `algorithm` is the all-reduce's ("ring", "halving_doubling",
    "naive" or "torch"); `bucket_bytes` the bucket size (DDP's default, 25 MiB).
    """

    def __init__(self, module: nn.Module, group: Group | None = None, bucket_bytes: int = 25 * 2**20,
                 algorithm: str = "ring") -> None:
        super().__init__()
        self.module = module
        self.group = group or Group()
        self.algorithm = algorithm
        replicate_(module, self.group)
        self.buckets = buckets([p for p in module.parameters() if p.requires_grad], bucket_bytes)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.module(*args, **kwargs)

    def parameters(self, recurse: bool = True) -> Iterator[nn.Parameter]:
        return self.module.parameters(recurse)

    @torch.no_grad()
    def sync_gradients(self) -> None:
        """Step 4: every gradient becomes the mean over ranks; a parameter without a gradient counts as zeros."""
        for bucket in self.buckets:
            flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten() for p in bucket])
            flat = all_reduce(flat, self.group, self.algorithm) / self.group.size
            for p, g in zip(bucket, flat.split([p.numel() for p in bucket])):
                p.grad = g.view_as(p)


@torch.no_grad()
def clip_grad_norm_(grads: list[Tensor], max_norm: float, group: Group, shares: list[float] | None = None,
                    algorithm: str = "ring") -> Tensor:
    """Scale `grads` (this rank's, in place) so that the L2 norm of all of them on all ranks of `group` is at most
    max_norm, as `torch.nn.utils.clip_grad_norm_` does in one process; returns the norm before clipping.
    shares[i]: the fraction of grads[i]'s squares this rank counts, 1/k for a gradient that k ranks hold alike
    (replicated), so that it enters the norm once (default: all 1, every gradient held by one rank). `algorithm`:
    the all-reduce's, see `nlplab.dist.collectives.all_reduce`."""
    shares = shares or [1.0] * len(grads)
    squares = sum((g.double().pow(2).sum() * share for g, share in zip(grads, shares)),
                  torch.zeros((), dtype=torch.float64))
    norm = all_reduce(squares.reshape(1), group, algorithm)[0].sqrt()
    scale = (max_norm / (norm + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(scale.to(g.dtype))
    return norm
