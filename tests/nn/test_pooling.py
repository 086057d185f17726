"""Masked pooling against explicit per-row loops over the real tokens, forward and gradient."""

import pytest
import torch

from nlplab.nn.pooling import masked_max_pool, masked_mean_pool

F64 = dict(rtol=1e-10, atol=1e-10)
REFERENCES = {masked_mean_pool: lambda tokens: tokens.mean(0), masked_max_pool: lambda tokens: tokens.max(0).values}


def batch(scattered: bool, fill: float):
    """x (5, 8, 4) in float64 with `fill` at padded positions, and its mask (at least one real token per row)."""
    torch.manual_seed(0)
    x = torch.randn(5, 8, 4, dtype=torch.float64)
    if scattered:
        mask = torch.rand(5, 8) < 0.5
        mask[:, 3] = True
    else:
        mask = torch.arange(8) < torch.tensor([8, 1, 3, 5, 2]).unsqueeze(1)
    return x.masked_fill(~mask.unsqueeze(-1), fill), mask


@pytest.mark.parametrize("pool", [masked_mean_pool, masked_max_pool])
@pytest.mark.parametrize("scattered", [False, True])
@pytest.mark.parametrize("fill", [0.0, 1e9, float("inf"), float("nan")])
def test_pool_matches_per_row_loop(pool, scattered, fill):
    x, mask = batch(scattered, fill)
    x_ours, x_ref = x.clone().requires_grad_(), x.clone().requires_grad_()
    out = pool(x_ours, mask)
    expected = torch.stack([REFERENCES[pool](x_ref[b][mask[b]]) for b in range(len(x))])
    torch.testing.assert_close(out, expected, **F64)
    probe = torch.randn_like(out)
    (out * probe).sum().backward()
    (expected * probe).sum().backward()
    torch.testing.assert_close(x_ours.grad, x_ref.grad, **F64)
    assert x_ours.grad[~mask].abs().sum() == 0


@pytest.mark.parametrize("pool", [masked_mean_pool, masked_max_pool])
def test_row_without_tokens_pools_to_zero(pool):
    x = torch.randn(2, 3, 4, dtype=torch.float64)
    mask = torch.tensor([[True, True, False], [False, False, False]])
    out = pool(x, mask)
    assert torch.equal(out[1], torch.zeros(4, dtype=torch.float64))
    torch.testing.assert_close(out[0], REFERENCES[pool](x[0, :2]), **F64)
