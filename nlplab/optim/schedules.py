"""Learning-rate schedules: functions of the step number returning a multiplier of the base learning rate.

Each schedule ``f(step) -> float`` plugs into ``torch.optim.lr_scheduler.LambdaLR(optimizer, f)``, which sets
``lr = base_lr * f(step)`` where ``step`` counts ``scheduler.step()`` calls (0 before the first one).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from nlplab.errors import ConfigError

Schedule = Callable[[int], float]
SCHEDULES = ("constant", "step", "cosine", "linear")
AFTER_WARMUP = ("constant", "linear", "cosine")


def _check_steps(total_steps: int) -> None:
    if total_steps < 1:
        raise ConfigError(f"a learning-rate schedule needs total_steps >= 1; got {total_steps}")


def constant() -> Schedule:
    """``f(step) = 1``."""
    return lambda step: 1.0


def step_decay(step_size: int, gamma: float) -> Schedule:
    """``f(step) = gamma ** (step // step_size)``: multiply by ``gamma`` every ``step_size`` steps (torch's StepLR)."""
    if step_size < 1:
        raise ConfigError(f"step decay needs step_size >= 1 (steps between decays); got {step_size}")
    return lambda step: gamma ** (step // step_size)


def linear(total_steps: int, min_ratio: float = 0.0) -> Schedule:
    """``f(step) = 1 - (1 - min_ratio) * s / total_steps``, ``s = min(step, total_steps)``: 1 down to ``min_ratio``."""
    _check_steps(total_steps)
    return lambda step: 1.0 - (1.0 - min_ratio) * min(step, total_steps) / total_steps


def cosine(total_steps: int, min_ratio: float = 0.0) -> Schedule:
    """``f(step) = min_ratio + (1 - min_ratio) * (1 + cos(pi * s / total_steps)) / 2``, ``s = min(step, total_steps)``.

    Half a cosine from 1 down to ``min_ratio``, then flat (torch's CosineAnnealingLR with ``T_max = total_steps``
    and ``eta_min = min_ratio * base_lr``, up to ``total_steps``).
    """
    _check_steps(total_steps)

    def f(step: int) -> float:
        return min_ratio + (1.0 - min_ratio) * (1.0 + math.cos(math.pi * min(step, total_steps) / total_steps)) / 2

    return f


def warmup(schedule: Schedule, warmup_steps: int) -> Schedule:
    """``f(step) = step / warmup_steps`` while ``step < warmup_steps``, then ``schedule(step - warmup_steps)``.

    The Hugging Face convention: the multiplier climbs 0, 1/w, ..., (w-1)/w, then the schedule starts at its step 0.
    """
    if warmup_steps < 0:
        raise ConfigError(f"warmup_steps (--warmup-steps) must be >= 0; got {warmup_steps}")
    return lambda step: step / warmup_steps if step < warmup_steps else schedule(step - warmup_steps)


def linear_warmup(warmup_steps: int, total_steps: int, then: str = "constant", min_ratio: float = 0.0) -> Schedule:
    """Linear warm-up over ``warmup_steps``, then ``then`` over the remaining ``total_steps - warmup_steps`` steps.

    ``then``: "constant" (stay at 1), "linear" or "cosine" (decay from 1 to ``min_ratio`` at ``total_steps``).
    Equal to transformers' ``get_{constant,linear,cosine}_schedule_with_warmup`` up to ``total_steps``.
    """
    if then not in AFTER_WARMUP:
        raise ConfigError(f"unknown schedule after warm-up {then!r}; choose one of: {', '.join(AFTER_WARMUP)}")
    if not 0 <= warmup_steps < total_steps:
        raise ConfigError(
            f"warmup_steps must be >= 0 and smaller than total_steps; got warmup_steps={warmup_steps}, "
            f"total_steps={total_steps}"
        )
    rest = total_steps - warmup_steps
    after = constant() if then == "constant" else {"linear": linear, "cosine": cosine}[then](rest, min_ratio)
    return warmup(after, warmup_steps)


def build_scheduler(
    name: str,
    optimizer: torch.optim.Optimizer,
    total_steps: int,
    warmup_steps: int = 0,
    step_size: int | None = None,
    gamma: float = 0.1,
    min_ratio: float = 0.0,
) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` on ``optimizer``: linear warm-up over ``warmup_steps``, then the schedule ``name``.

    ``name``: "constant", "step" (:func:`step_decay` with ``step_size`` and ``gamma``), "cosine" or "linear"
    (decay to ``min_ratio`` at ``total_steps``). Call ``scheduler.step()`` once after each ``optimizer.step()``.
    """
    if name not in SCHEDULES:
        raise ConfigError(f"unknown learning-rate schedule {name!r}; choose one of: {', '.join(SCHEDULES)}")
    if name == "step":
        if step_size is None:
            raise ConfigError("the 'step' schedule needs step_size (steps between decays by gamma)")
        schedule = warmup(step_decay(step_size, gamma), warmup_steps)
    else:
        schedule = linear_warmup(warmup_steps, total_steps, then=name, min_ratio=min_ratio)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
