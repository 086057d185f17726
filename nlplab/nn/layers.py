"""Basic layers written from their formulas: Linear, Embedding, Dropout, BatchNorm1d, LayerNorm.

Each takes impl="fused" (torch's functional kernel, the default) or impl="manual" (the formula in its docstring,
written out); both hold the same parameters and buffers. Their names and shapes are torch's, so a state_dict
moves between these, either impl, and torch.nn freely.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nlplab.errors import ConfigError
from nlplab.nn import init

IMPLS = ("fused", "manual")


def check_impl(impl: str) -> str:
    """Validate the implementation switch: 'fused' (torch kernel, default) or 'manual' (hand-written loop)."""
    if impl not in IMPLS:
        raise ConfigError(f"impl must be one of {IMPLS}, got {impl!r}")
    return impl


def check_dropout(p: float) -> float:
    """Validate a dropout probability: 0 <= p < 1 (p = 1 would drop everything and divide by zero)."""
    if not 0.0 <= p < 1.0:
        raise ConfigError(f"dropout probability must be in [0, 1), got {p}")
    return float(p)


class Linear(nn.Module):
    """y = x Wᵀ + b; x (..., in_features) -> y (..., out_features), W (out, in), b (out,).

    Init as torch: W ~ kaiming_uniform(a=√5), i.e. U(±1/√in); b ~ U(±1/√in).
    impl="fused": F.linear; impl="manual": the matmul and the bias add.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, impl: str = "fused") -> None:
        super().__init__()
        self.in_features, self.out_features, self.impl = in_features, out_features, check_impl(impl)
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.bias = nn.Parameter(torch.empty(out_features)) if bias else None
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            init.uniform_(self.bias, 1 / math.sqrt(in_features))

    def forward(self, x: Tensor) -> Tensor:
        if self.impl == "fused":
            return F.linear(x, self.weight, self.bias)
        y = x @ self.weight.T
        return y + self.bias if self.bias is not None else y


class Embedding(nn.Module):
    """Lookup table: ids (...) -> weight[ids] (..., embedding_dim), weight (num_embeddings, embedding_dim) ~ N(0, 1).

    The padding row starts at zero and never receives a gradient, so it stays what it is.
    impl="fused": F.embedding; impl="manual": indexing, with the padding rows detached.
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None,
                 impl: str = "fused") -> None:
        super().__init__()
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ConfigError(f"padding_idx {padding_idx} is outside a vocabulary of {num_embeddings} ids")
            padding_idx %= num_embeddings
        self.num_embeddings, self.embedding_dim, self.padding_idx = num_embeddings, embedding_dim, padding_idx
        self.impl = check_impl(impl)
        self.weight = nn.Parameter(torch.empty(num_embeddings, embedding_dim))
        init.normal_(self.weight)
        if padding_idx is not None:
            with torch.no_grad():
                self.weight[padding_idx].zero_()

    def forward(self, ids: Tensor) -> Tensor:
        if self.impl == "fused":
            return F.embedding(ids, self.weight, self.padding_idx)
        rows = self.weight[ids]
        if self.padding_idx is None:
            return rows
        return torch.where((ids == self.padding_idx).unsqueeze(-1), rows.detach(), rows)


def dropout(x: Tensor, p: float, training: bool = True) -> Tensor:
    """Inverted dropout: y = x · m / (1 - p), m ~ Bernoulli(1 - p), so E[y] = x; identity when not training."""
    if not training or p == 0.0:
        return x
    keep = torch.rand_like(x) >= p
    return torch.where(keep, x / (1 - p), 0.0)


class Dropout(nn.Module):
    """Module form of inverted dropout: drops in train mode, identity in eval mode; x (...) -> y (...).

    impl="fused": F.dropout; impl="manual": `dropout` above. Both draw their mask from torch's global generator,
    but not the same mask for the same seed.
    """

    def __init__(self, p: float = 0.5, impl: str = "fused") -> None:
        super().__init__()
        self.p, self.impl = check_dropout(p), check_impl(impl)

    def forward(self, x: Tensor) -> Tensor:
        if self.impl == "fused":
            return F.dropout(x, self.p, self.training)
        return dropout(x, self.p, self.training)


def _standardize(x: Tensor, mean: Tensor, var: Tensor, eps: float) -> Tensor:
    """x̂ = (x - mean) / √(var + eps)."""
    return (x - mean) * torch.rsqrt(var + eps)


class BatchNorm1d(nn.Module):
    """y = γ · (x - μ_B) / √(σ²_B + eps) + β per channel; x (N, C) or (N, C, L), statistics over N (and L).

    Train: μ_B and the biased σ²_B of the batch; running stats move by r ← (1 - momentum)·r + momentum·stat,
    using the unbiased variance (× n/(n-1)). Eval: running_mean and running_var instead of batch statistics.
    impl="fused": F.batch_norm (which also moves the running stats); impl="manual": the statistics written out.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1, impl: str = "fused") -> None:
        super().__init__()
        self.num_features, self.eps, self.momentum, self.impl = num_features, eps, momentum, check_impl(impl)
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() not in (2, 3) or x.shape[1] != self.num_features:
            c = self.num_features
            raise ValueError(f"BatchNorm1d expects (N, {c}) or (N, {c}, L), got {tuple(x.shape)}")
        n = x.numel() // self.num_features
        if self.training:
            if n < 2:
                raise ValueError("BatchNorm1d in train mode needs more than one value per channel")
            self.num_batches_tracked += 1
        if self.impl == "fused":
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, self.training,
                                self.momentum, self.eps)
        dims = (0,) if x.dim() == 2 else (0, 2)
        shape = (1, -1) if x.dim() == 2 else (1, -1, 1)
        if self.training:
            mean, var = x.mean(dims), x.var(dims, unbiased=False)
            with torch.no_grad():
                self.running_mean.lerp_(mean, self.momentum)
                self.running_var.lerp_(var * n / (n - 1), self.momentum)
        else:
            mean, var = self.running_mean, self.running_var
        x_hat = _standardize(x, mean.view(shape), var.view(shape), self.eps)
        return x_hat * self.weight.view(shape) + self.bias.view(shape)


class LayerNorm(nn.Module):
    """y = γ · (x - μ) / √(σ² + eps) + β; x (..., *normalized_shape), γ and β of shape normalized_shape.

    μ and the biased σ² are taken over the last len(normalized_shape) dims of each sample.
    impl="fused": F.layer_norm; impl="manual": the statistics written out.
    """

    def __init__(self, normalized_shape: int | tuple[int, ...], eps: float = 1e-5, impl: str = "fused") -> None:
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        self.normalized_shape, self.eps, self.impl = shape, eps, check_impl(impl)
        self.weight = nn.Parameter(torch.ones(shape))
        self.bias = nn.Parameter(torch.zeros(shape))

    def forward(self, x: Tensor) -> Tensor:
        if self.impl == "fused":
            return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        dims = tuple(range(-len(self.normalized_shape), 0))
        mean, var = x.mean(dims, keepdim=True), x.var(dims, unbiased=False, keepdim=True)
        return _standardize(x, mean, var, self.eps) * self.weight + self.bias


class RMSNorm(nn.Module):
    """y = γ · x / √(mean(x²) + eps) (Zhang & Sennrich, 2019); x (..., *normalized_shape), γ of shape normalized_shape.

    LayerNorm without the mean subtraction and without β: it only rescales. The mean of squares is taken over the
    last len(normalized_shape) dims; eps=None means torch.finfo(x.dtype).eps, as in torch.
    impl="fused": F.rms_norm; impl="manual": the formula written out.
    """

    def __init__(self, normalized_shape: int | tuple[int, ...], eps: float | None = None, impl: str = "fused") -> None:
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        self.normalized_shape, self.eps, self.impl = shape, eps, check_impl(impl)
        self.weight = nn.Parameter(torch.ones(shape))

    def forward(self, x: Tensor) -> Tensor:
        if self.impl == "fused":
            return F.rms_norm(x, self.normalized_shape, self.weight, self.eps)
        dims = tuple(range(-len(self.normalized_shape), 0))
        eps = torch.finfo(x.dtype).eps if self.eps is None else self.eps
        return x * torch.rsqrt(x.pow(2).mean(dims, keepdim=True) + eps) * self.weight
