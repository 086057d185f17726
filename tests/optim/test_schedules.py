"""LR schedules equal torch's StepLR / CosineAnnealingLR and transformers' warm-up schedules."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import transformers

from nlplab.errors import ConfigError
from nlplab.optim import build_scheduler, cosine, linear_warmup, step_decay

BASE_LR = 0.3


def _optimizer() -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=BASE_LR)


def _lrs(make_scheduler: Callable[[torch.optim.Optimizer], object], steps: int) -> torch.Tensor:
    """The learning rate in use before each of ``steps`` optimizer steps."""
    optimizer = _optimizer()
    scheduler = make_scheduler(optimizer)
    lrs = []
    for _ in range(steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return torch.tensor(lrs, dtype=torch.float64)


def _lambda(schedule: Callable[[int], float]) -> Callable[[torch.optim.Optimizer], object]:
    return lambda opt: torch.optim.lr_scheduler.LambdaLR(opt, schedule)


@pytest.mark.parametrize(("step_size", "gamma"), [(7, 0.5), (1, 0.9), (20, 0.1)])
def test_step_decay_equals_step_lr(step_size, gamma):
    expected = _lrs(lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size, gamma), 60)
    torch.testing.assert_close(_lrs(_lambda(step_decay(step_size, gamma)), 60), expected, atol=1e-12, rtol=0)


@pytest.mark.parametrize(("total", "min_ratio"), [(50, 0.0), (13, 0.0), (40, 0.2)])
def test_cosine_equals_cosine_annealing_lr(total, min_ratio):
    expected = _lrs(
        lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total, eta_min=min_ratio * BASE_LR), total + 1
    )
    torch.testing.assert_close(_lrs(_lambda(cosine(total, min_ratio)), total + 1), expected, atol=1e-12, rtol=0)


def test_cosine_stays_at_minimum_after_total_steps():
    f = cosine(10, min_ratio=0.1)
    assert [f(s) for s in (10, 11, 100)] == [pytest.approx(0.1)] * 3


WARMUP_REFERENCES = {
    "constant": lambda opt, w, t: transformers.get_constant_schedule_with_warmup(opt, w),
    "linear": lambda opt, w, t: transformers.get_linear_schedule_with_warmup(opt, w, t),
    "cosine": lambda opt, w, t: transformers.get_cosine_schedule_with_warmup(opt, w, t),
}


@pytest.mark.parametrize("then", ["constant", "linear", "cosine"])
@pytest.mark.parametrize(("warmup", "total"), [(5, 30), (0, 12), (1, 9)])
def test_linear_warmup_equals_transformers(then, warmup, total):
    expected = _lrs(lambda opt: WARMUP_REFERENCES[then](opt, warmup, total), total + 1)
    torch.testing.assert_close(
        _lrs(_lambda(linear_warmup(warmup, total, then=then)), total + 1), expected, atol=1e-12, rtol=0
    )


def test_warmup_climbs_linearly_from_zero():
    f = linear_warmup(4, 20, then="cosine")
    assert [f(s) for s in range(5)] == [0.0, 0.25, 0.5, 0.75, 1.0]


def test_build_scheduler_warms_up_then_follows_the_schedule():
    warmup, total = 3, 23
    lrs = _lrs(lambda opt: build_scheduler("step", opt, total, warmup_steps=warmup, step_size=5, gamma=0.5), total)
    expected = [BASE_LR * s / warmup for s in range(warmup)]
    expected += [BASE_LR * 0.5 ** (s // 5) for s in range(total - warmup)]
    torch.testing.assert_close(lrs, torch.tensor(expected, dtype=torch.float64), atol=1e-12, rtol=0)
    cos = _lrs(lambda opt: build_scheduler("cosine", opt, total, warmup_steps=warmup), total + 1)
    reference = _lrs(_lambda(linear_warmup(warmup, total, then="cosine")), total + 1)
    torch.testing.assert_close(cos, reference, atol=0, rtol=0)


def test_build_scheduler_returns_lambda_lr_for_every_name():
    for name in ("constant", "step", "cosine", "linear"):
        scheduler = build_scheduler(name, _optimizer(), total_steps=10, step_size=3)
        assert isinstance(scheduler, torch.optim.lr_scheduler.LambdaLR)


@pytest.mark.parametrize(
    "make",
    [
        lambda opt: build_scheduler("exponential", opt, 10),
        lambda opt: build_scheduler("step", opt, 10),
        lambda opt: build_scheduler("cosine", opt, 10, warmup_steps=10),
        lambda opt: build_scheduler("linear", opt, 0),
        lambda opt: linear_warmup(2, 10, then="step"),
        lambda opt: step_decay(0, 0.5),
    ],
)
def test_bad_options_raise_config_error(make):
    with pytest.raises(ConfigError):
        make(_optimizer())
