"""Stochastic gradient descent, with classical momentum and Nesterov momentum.

One step for every parameter p with gradient g (torch's conventions, so the two agree step for step):

    g <- g + weight_decay * p                      (L2 penalty added to the gradient)
    plain SGD:  p <- p - lr * g
    momentum:   v <- mu * v + g   (v = g on the first step);  p <- p - lr * v
    Nesterov:   v <- mu * v + g;                               p <- p - lr * (g + mu * v)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from nlplab.errors import ConfigError
from nlplab.optim.base import ParamwiseOptimizer


class SGD(ParamwiseOptimizer):
    """SGD with optional momentum ``mu`` and Nesterov look-ahead; a drop-in for ``torch.optim.SGD`` (no dampening).

    ``params``: tensors of any shape, or torch-style param groups (dicts with a ``"params"`` key).
    State per parameter: ``momentum_buffer`` v, same shape as p, kept only when ``momentum > 0``.
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-3,
        momentum: float = 0.0,
        *,
        nesterov: bool = False,
        weight_decay: float = 0.0,
    ) -> None:
        if lr < 0 or momentum < 0 or weight_decay < 0:
            raise ConfigError(
                f"SGD needs lr >= 0, momentum >= 0 and weight_decay >= 0; got lr={lr}, "
                f"momentum={momentum}, weight_decay={weight_decay}"
            )
        if nesterov and momentum == 0:
            raise ConfigError("Nesterov SGD needs momentum > 0; set momentum (e.g. 0.9) or nesterov=False")
        super().__init__(params, dict(lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay))

    def update(self, p: torch.Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        g = p.grad + group["weight_decay"] * p
        mu = group["momentum"]
        if mu != 0:
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = g.clone()
            else:
                state["momentum_buffer"].mul_(mu).add_(g)
            v = state["momentum_buffer"]
            g = g + mu * v if group["nesterov"] else v
        p.add_(g, alpha=-group["lr"])
