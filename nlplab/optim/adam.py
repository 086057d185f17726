"""Adam and AdamW: adaptive moment estimation, with L2 or decoupled weight decay.

One step t = 1, 2, ... for every parameter p with gradient g:

    Adam:   g <- g + weight_decay * p              (L2 penalty added to the gradient)
    AdamW:  p <- p * (1 - lr * weight_decay)       (decay applied to the weight, outside the moments)
    m <- beta1 * m + (1 - beta1) * g               first moment
    v <- beta2 * v + (1 - beta2) * g^2             second moment
    m_hat = m / (1 - beta1^t),  v_hat = v / (1 - beta2^t)      bias correction (m, v start at 0)
    p <- p - lr * m_hat / (sqrt(v_hat) + eps)

In Adam the L2 term passes through the division by sqrt(v_hat), so weights with large gradients are
decayed less; AdamW decays every weight at the same rate lr * weight_decay (Loshchilov & Hutter, 2019).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from nlplab.errors import ConfigError
from nlplab.optim.base import ParamwiseOptimizer


class Adam(ParamwiseOptimizer):
    """Adam with L2 weight decay added to the gradient; a drop-in for ``torch.optim.Adam`` (no amsgrad).

    ``params``: tensors of any shape, or torch-style param groups (dicts with a ``"params"`` key).
    State per parameter: ``step`` t (int), ``exp_avg`` m and ``exp_avg_sq`` v, both shaped like p.
    """

    decoupled_weight_decay = False

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        name = type(self).__name__
        if lr < 0 or eps < 0 or weight_decay < 0:
            raise ConfigError(
                f"{name} needs lr >= 0, eps >= 0 and weight_decay >= 0; got lr={lr}, eps={eps}, "
                f"weight_decay={weight_decay}"
            )
        if not all(0.0 <= beta < 1.0 for beta in betas):
            raise ConfigError(f"{name} needs both betas in [0, 1), e.g. (0.9, 0.999); got betas={betas}")
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    def update(self, p: torch.Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        lr, (beta1, beta2), eps, decay = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        if not state:
            state["step"] = 0
            state["exp_avg"] = torch.zeros_like(p)
            state["exp_avg_sq"] = torch.zeros_like(p)
        state["step"] += 1
        t, m, v = state["step"], state["exp_avg"], state["exp_avg_sq"]
        g = p.grad
        if self.decoupled_weight_decay:
            p.mul_(1 - lr * decay)
        else:
            g = g + decay * p
        m.mul_(beta1).add_(g, alpha=1 - beta1)
        v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
        m_hat = m / (1 - beta1**t)
        v_hat = v / (1 - beta2**t)
        p.addcdiv_(m_hat, v_hat.sqrt() + eps, value=-lr)


class AdamW(Adam):
    """Adam with decoupled weight decay ``p <- p * (1 - lr * weight_decay)``; a drop-in for ``torch.optim.AdamW``.

    Same arguments, shapes and state as :class:`Adam`; only the default ``weight_decay`` (1e-2) and where the
    decay is applied differ.
    """

    decoupled_weight_decay = True

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
    ) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
