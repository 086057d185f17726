"""Shared fixture: the parameter trajectory of a small float64 MLP trained by a given optimiser."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import pytest
import torch
import torch.nn.functional as F

MakeOptimizer = Callable[[Iterable[torch.nn.Parameter]], torch.optim.Optimizer]
Penalty = Callable[[torch.nn.Module], torch.Tensor]


def _trajectory(make_optimizer: MakeOptimizer, steps: int = 100, penalty: Penalty | None = None) -> torch.Tensor:
    """(steps, P) flattened parameters after each step; same initial weights and batches on every call."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)).double()
    optimizer = make_optimizer(model.parameters())
    batches = torch.Generator().manual_seed(1)
    snapshots = []
    for _ in range(steps):
        x = torch.randn(16, 5, generator=batches, dtype=torch.float64)
        y = torch.randint(0, 3, (16,), generator=batches)
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        if penalty is not None:
            loss = loss + penalty(model)
        loss.backward()
        optimizer.step()
        snapshots.append(torch.nn.utils.parameters_to_vector(model.parameters()).detach().clone())
    return torch.stack(snapshots)


@pytest.fixture
def trajectory() -> Callable[..., torch.Tensor]:
    return _trajectory
