"""What every hand-written optimiser shares: the loop over parameter groups and parameters with a gradient."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch


class ParamwiseOptimizer(torch.optim.Optimizer):
    """A `torch.optim.Optimizer` whose subclasses only say how one parameter moves: `update(p, state, group)`."""

    def update(self, p: torch.Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        raise NotImplementedError

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | None:
        """Apply `update` to every parameter that has a gradient; return `closure()` if given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    self.update(p, self.state[p], group)
        return loss
