"""Softmax and log-softmax, written out, with the max-shift that keeps them finite.

softmax(x)_i = exp(x_i) / sum_j exp(x_j). Softmax does not change when a constant is added to every x_i,
so subtracting max_j x_j first leaves the result the same while every exponent becomes <= 0:
nothing overflows, and the largest term is exp(0) = 1, so the sum is at least 1 and never underflows to 0.
"""

from __future__ import annotations

import torch
from torch import Tensor


def at_least_float32(x: Tensor) -> Tensor:
    """x in float32 when its dtype is narrower (bf16/fp16 outputs under autocast), else unchanged (float64 stays
    float64): the precision softmax, log-probabilities and losses are computed in."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def _shift(x: Tensor, dim: int) -> Tensor:
    """x - max(x) along `dim`. The max is detached: softmax is shift-invariant, so its gradient is zero."""
    return x - x.amax(dim, keepdim=True).detach()


def naive_softmax(x: Tensor, dim: int = -1) -> Tensor:
    """Textbook softmax exp(x) / sum(exp(x)) along `dim`, kept to show why the shift is needed.

    Any shape in, same shape out. exp overflows to inf once x > 88 (float32) or x > 709 (float64),
    and inf / inf is nan.
    """
    e = x.exp()
    return e / e.sum(dim, keepdim=True)


def softmax(x: Tensor, dim: int = -1) -> Tensor:
    """Stable softmax exp(x - m) / sum(exp(x - m)) along `dim`, with m = max(x) along `dim`.

    Any shape in, same shape out; equal to torch.softmax(x, dim).
    """
    e = _shift(x, dim).exp()
    return e / e.sum(dim, keepdim=True)


def log_softmax(x: Tensor, dim: int = -1) -> Tensor:
    """Stable log-softmax x - m - log(sum(exp(x - m))) along `dim`, with m = max(x) along `dim`.

    Any shape in, same shape out; equal to torch.log_softmax(x, dim). Taking the log of `softmax` instead
    would give -inf wherever a probability underflows to 0.
    """
    z = _shift(x, dim)
    return z - z.exp().sum(dim, keepdim=True).log()
