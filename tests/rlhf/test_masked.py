"""Masked mean, variance and whitening equal TRL's (trl/core.py at commit 04c7357c7f8d202c11f1b0cee77d19338dde7a75,
reproduced below: `trl.core` is gone from the installed TRL) and the plain statistics of the kept values."""

import pytest
import torch
from torch.testing import assert_close

from nlplab.rlhf import masked_mean, masked_var, masked_whiten

TOL = dict(atol=1e-10, rtol=1e-10)


def trl_masked_mean(values, mask, axis=None):
    if axis is not None:
        return (values * mask).sum(axis=axis) / mask.sum(axis=axis)
    return (values * mask).sum() / mask.sum()


def trl_masked_var(values, mask, unbiased=True):
    mean = trl_masked_mean(values, mask)
    variance = trl_masked_mean((values - mean) ** 2, mask)
    if unbiased:
        n = mask.sum()
        variance = variance * n / (n - 1)
    return variance


def trl_masked_whiten(values, mask, shift_mean=True):
    mean, var = trl_masked_mean(values, mask), trl_masked_var(values, mask)
    whitened = (values - mean) * torch.rsqrt(var + 1e-8)
    if not shift_mean:
        whitened += mean
    return whitened


@pytest.fixture
def batch(rand, make_mask):
    return rand(4, 9, scale=3.0) + 1.5, make_mask([5, 9, 2, 6], [0, 0, 3, 2], 9)


def test_masked_mean_equals_trl_and_the_mean_of_the_kept_values(batch, same):
    values, mask = batch
    same(lambda v: masked_mean(v, mask), lambda v: trl_masked_mean(v, mask.double()), values)
    assert_close(masked_mean(values, mask), values[mask].mean(), **TOL)
    per_row = masked_mean(values, mask, dim=1)
    assert_close(per_row, trl_masked_mean(values, mask.double(), axis=1), **TOL)
    assert_close(per_row[2], values[2, 3:5].mean(), **TOL)


@pytest.mark.parametrize("unbiased", [True, False])
def test_masked_var_equals_trl_and_torch_var(batch, same, unbiased):
    values, mask = batch
    same(lambda v: masked_var(v, mask, unbiased), lambda v: trl_masked_var(v, mask.double(), unbiased), values)
    assert_close(masked_var(values, mask, unbiased), values[mask].var(correction=int(unbiased)), **TOL)


@pytest.mark.parametrize("shift_mean", [True, False])
def test_masked_whiten_equals_trl_on_the_mask_and_is_zero_elsewhere(batch, same, shift_mean):
    values, mask = batch
    same(lambda v: masked_whiten(v, mask, shift_mean)[mask],
         lambda v: trl_masked_whiten(v, mask.double(), shift_mean)[mask], values)
    whitened = masked_whiten(values, mask, shift_mean)
    assert (whitened[~mask] == 0).all()
    if shift_mean:
        assert abs(whitened[mask].mean()) < 1e-12 and abs(whitened[mask].std() - 1) < 1e-6


def test_values_outside_the_mask_never_enter(batch):
    values, mask = batch
    poisoned = values.masked_fill(~mask, float("inf"))
    poisoned[0, -1] = float("nan")
    assert_close(masked_mean(poisoned, mask), masked_mean(values, mask), **TOL)
    assert_close(masked_var(poisoned, mask), masked_var(values, mask), **TOL)
    assert_close(masked_whiten(poisoned, mask), masked_whiten(values, mask), **TOL)
