"""L1 and L2 penalties on weights, added to the loss.

    l1_penalty = lam * sum_i |w_i|           gradient lam * sign(w)   (0 at w = 0): pushes weights to exactly 0
    l2_penalty = lam / 2 * sum_i w_i^2       gradient lam * w:                       shrinks weights towards 0

The 1/2 in the L2 penalty makes its gradient ``lam * w``, so with plain SGD

    w <- w - lr * (grad + lam * w) = (1 - lr * lam) * w - lr * grad

which is exactly ``weight_decay = lam``: for SGD (with or without momentum) an L2 penalty and weight decay
are the same thing. For Adam they are not: the penalty gradient ``lam * w`` is divided by sqrt(v_hat) like
the rest of the gradient, so weights with large gradients are decayed less. Adam's ``weight_decay`` is this
L2 penalty; AdamW restores the plain decay ``w <- (1 - lr * lam) * w`` outside the adaptive step.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch


def l1_penalty(params: Iterable[torch.Tensor], lam: float) -> torch.Tensor:
    """``lam * sum |w|`` over every element of every tensor in ``params`` (any shapes); a 0-d tensor."""
    return lam * sum(p.abs().sum() for p in params)


def l2_penalty(params: Iterable[torch.Tensor], lam: float) -> torch.Tensor:
    """``lam / 2 * sum w^2`` over every element of every tensor in ``params`` (any shapes); a 0-d tensor."""
    return lam / 2 * sum(p.pow(2).sum() for p in params)
