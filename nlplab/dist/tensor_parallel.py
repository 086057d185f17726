"""Tensor parallelism as Megatron-LM does it (Shoeybi et al., 2019): a layer's weight matrices are split across the
t ranks of a tensor-parallel group, so each rank stores and multiplies 1/t of them.

    column-parallel:  Y = X A,  A = [A_1 … A_t] split by output columns; rank i computes Y_i = X A_i
    row-parallel:     Z = Y B,  B = [B_1; …; B_t] split by input rows;   rank i computes Y_i B_i, Z = Σ_i Y_i B_i

A column-parallel layer followed by a row-parallel one needs nothing in between, since an element-wise activation
commutes with the column split; the MLP is  Z = GeLU(X A) B = Σ_i GeLU(X A_i) B_i. Two conjugate operators place
the communication:

    f: forward identity,   backward all-reduce  (X feeds every rank: its gradient is the sum of theirs)
    g: forward all-reduce, backward identity    (Z is the sum of the ranks' partial products)

MLP: f → A_i → GeLU → B_i → g: one all-reduce forward, one backward. Self-attention splits by heads: rank i keeps
H/t heads, i.e. the columns of W_q, W_k, W_v for them (column-parallel) and the matching rows of W_o
(row-parallel): f → attention over its heads → W_o rows → g. A transformer layer thus all-reduces a (B, T, d)
activation twice forward and twice backward, whatever t. A column-parallel bias is split with its columns; a
row-parallel bias is added once, after g. LayerNorms and embeddings stay whole on every rank: their inputs and the
gradients reaching them are the same on every rank, so they stay equal without communication.

`tensor_parallel_(model, group)` rebuilds every self-attention `TransformerBlock` of a model (e.g. a GPT) this way
from its dense weights, so the parallel model starts from exactly the dense one; `full_state_dict` gathers the
pieces back into the dense layout.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nlplab.dist.collectives import Group, all_gather, all_reduce
from nlplab.errors import ConfigError
from nlplab.nn.attention import MultiHeadAttention
from nlplab.nn.layers import Linear
from nlplab.nn.transformer import FeedForward, TransformerBlock


class CopyToParallel(torch.autograd.Function):
    """f: identity forward, all-reduce of the gradient backward."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, group: Group, algorithm: str) -> Tensor:
        ctx.group, ctx.algorithm = group, algorithm
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:
        return all_reduce(grad.contiguous(), ctx.group, ctx.algorithm), None, None


class ReduceFromParallel(torch.autograd.Function):
    """g: all-reduce forward, identity backward."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, group: Group, algorithm: str) -> Tensor:
        return all_reduce(x.contiguous(), group, algorithm)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:
        return grad, None, None


def copy_to_parallel(x: Tensor, group: Group, algorithm: str = "ring") -> Tensor:
    return CopyToParallel.apply(x, group, algorithm)


def reduce_from_parallel(x: Tensor, group: Group, algorithm: str = "ring") -> Tensor:
    return ReduceFromParallel.apply(x, group, algorithm)


def check_divisible(what: str, value: int, size: int) -> None:
    if value % size:
        raise ConfigError(f"{what} = {value} is not divisible by the tensor-parallel size {size}; choose a size "
                          f"that divides it")


def column_piece(weight: Tensor, group: Group, parts: int = 1) -> Tensor:
    """This rank's rows of a weight (out, …) split by output: with `parts` blocks stacked along dim 0 (e.g. keys
    and values side by side), rank i takes slice i of each block."""
    return torch.cat([block.chunk(group.size)[group.rank] for block in weight.chunk(parts)]).detach().clone()


class ColumnParallelLinear(nn.Module):
    """Y_i = X A_iᵀ + b_i: this rank's out_features / t outputs; x (…, in) -> (…, out / t). copy_input applies f
    to x first (False when the caller already did, e.g. attention sharing one f between W_q and W_kv)."""

    def __init__(self, weight: Tensor, bias: Tensor | None, group: Group, copy_input: bool = True,
                 parts: int = 1, algorithm: str = "ring") -> None:
        super().__init__()
        self.group, self.copy_input, self.parts, self.algorithm = group, copy_input, parts, algorithm
        self.weight = nn.Parameter(self.piece(weight))
        self.bias = None if bias is None else nn.Parameter(self.piece(bias))

    @classmethod
    def from_dense(cls, linear: Linear | nn.Linear, group: Group, copy_input: bool = True, parts: int = 1,
                   algorithm: str = "ring") -> ColumnParallelLinear:
        check_divisible("out_features", linear.weight.shape[0] // parts, group.size)
        return cls(linear.weight, linear.bias, group, copy_input, parts, algorithm)

    def forward(self, x: Tensor) -> Tensor:
        if self.copy_input:
            x = copy_to_parallel(x, self.group, self.algorithm)
        return F.linear(x, self.weight, self.bias)

    def piece(self, whole: Tensor) -> Tensor:
        """This rank's piece of a dense weight or bias (or of a tensor shaped like one, e.g. its Adam moments)."""
        return column_piece(whole, self.group, self.parts)

    def full(self, tensor: Tensor) -> Tensor:
        """The dense weight or bias from every rank's piece of it."""
        t = self.group.size
        pieces = all_gather(tensor.detach().contiguous(), self.group).view(t, self.parts, -1, *tensor.shape[1:])
        return pieces.transpose(0, 1).reshape(-1, *tensor.shape[1:])


class RowParallelLinear(nn.Module):
    """Z = g(Y_i B_iᵀ) + b: y (…, in / t), this rank's slice of the input features -> (…, out), the same on every
    rank. The bias is whole and added after the all-reduce."""

    def __init__(self, weight: Tensor, bias: Tensor | None, group: Group, algorithm: str = "ring") -> None:
        super().__init__()
        self.group, self.algorithm = group, algorithm
        self.weight = nn.Parameter(self.piece(weight))
        self.bias = None if bias is None else nn.Parameter(self.piece(bias))

    @classmethod
    def from_dense(cls, linear: Linear | nn.Linear, group: Group, algorithm: str = "ring") -> RowParallelLinear:
        check_divisible("in_features", linear.weight.shape[1], group.size)
        return cls(linear.weight, linear.bias, group, algorithm)

    def forward(self, y: Tensor) -> Tensor:
        z = reduce_from_parallel(F.linear(y, self.weight), self.group, self.algorithm)
        return z if self.bias is None else z + self.bias

    def piece(self, whole: Tensor) -> Tensor:
        """This rank's columns of a dense weight (its input features); the bias is whole on every rank."""
        if whole.dim() == 1:
            return whole.detach().clone()
        return whole.detach().chunk(self.group.size, dim=1)[self.group.rank].clone()

    def full(self, tensor: Tensor) -> Tensor:
        if tensor.dim() == 1:
            return tensor.detach().clone()
        t = self.group.size
        pieces = all_gather(tensor.detach().contiguous(), self.group).view(t, *tensor.shape)
        return pieces.permute(1, 0, 2).reshape(tensor.shape[0], -1)


def parallel_feed_forward(ffn: FeedForward, group: Group, algorithm: str = "ring") -> FeedForward:
    """The MLP made parallel in place: fc1 column-parallel (with f), fc2 row-parallel (with g)."""
    ffn.fc1 = ColumnParallelLinear.from_dense(ffn.fc1, group, algorithm=algorithm)
    ffn.fc2 = RowParallelLinear.from_dense(ffn.fc2, group, algorithm=algorithm)
    return ffn


class ParallelSelfAttention(MultiHeadAttention):
    """`MultiHeadAttention` (self-attention only) over this rank's H/t heads: f once on x, then W_q and W_kv
    column-parallel (keys and values split alike), attention, W_o row-parallel with g. Same forward signature,
    KV cache included (the cache holds this rank's heads)."""

    def __init__(self, dense: MultiHeadAttention, group: Group, algorithm: str = "ring") -> None:
        check_divisible("the number of attention heads", dense.num_heads, group.size)
        nn.Module.__init__(self)
        self.d_model, self.dropout, self.impl = dense.d_model, dense.dropout, dense.impl
        self.num_heads, self.group, self.algorithm = dense.num_heads // group.size, group, algorithm
        self.q = ColumnParallelLinear.from_dense(dense.q, group, copy_input=False, algorithm=algorithm)
        self.kv = ColumnParallelLinear.from_dense(dense.kv, group, copy_input=False, parts=2, algorithm=algorithm)
        self.out = RowParallelLinear.from_dense(dense.out, group, algorithm)

    def forward(self, x: Tensor, context: Tensor | None = None, key_padding_mask: Tensor | None = None,
                causal: bool = False, cache: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        if context is not None:
            raise ConfigError("tensor-parallel attention supports self-attention only (no cross-attention context)")
        return super().forward(copy_to_parallel(x, self.group, self.algorithm), key_padding_mask=key_padding_mask,
                               causal=causal, cache=cache)


def tensor_parallel_(model: nn.Module, group: Group, algorithm: str = "ring") -> nn.Module:
    """Make every TransformerBlock of `model` tensor-parallel over `group` in place, from its current (dense, and
    equal on every rank) weights; returns the model. Blocks with cross-attention or mixture-of-experts FFNs are
    refused."""
    for block in [m for m in model.modules() if isinstance(m, TransformerBlock)]:
        if block.cross_attn is not None or not isinstance(block.ffn, FeedForward):
            raise ConfigError("tensor parallelism covers self-attention blocks with a dense feed-forward network "
                              "(no cross-attention, no mixture of experts)")
        block.attn = ParallelSelfAttention(block.attn, group, algorithm)
        parallel_feed_forward(block.ffn, group, algorithm)
    return model


def split_parameters(model: nn.Module) -> dict[str, ColumnParallelLinear | RowParallelLinear]:
    """{parameter name: the parallel layer it is a piece of} for the split layers of a tensor-parallel model."""
    return {f"{name}.{key}": module for name, module in model.named_modules()
            if isinstance(module, (ColumnParallelLinear, RowParallelLinear))
            for key, tensor in (("weight", module.weight), ("bias", module.bias)) if tensor is not None}


@torch.no_grad()
def full_state_dict(model: nn.Module) -> dict[str, Tensor]:
    """The dense state dict of a tensor-parallel model (every piece gathered, on every rank): it loads into the
    model before `tensor_parallel_`."""
    layers = split_parameters(model)
    return {name: layers[name].full(t) if name in layers else t.detach().clone() for name, t in model.state_dict().items()}
