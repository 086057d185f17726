"""Shared helpers: float64 random tensors and a forward-and-gradient comparison."""

import pytest
import torch
from torch.testing import assert_close

TOL = dict(atol=1e-10, rtol=1e-10)


def compare(ours, ref, *inputs):
    """ours(*inputs) == ref(*inputs) (one tensor each), and so are the gradients of <output, v> for a random v
    with respect to every floating-point input."""
    a = [x.detach().clone().requires_grad_(x.is_floating_point()) for x in inputs]
    b = [x.detach().clone().requires_grad_(x.is_floating_point()) for x in inputs]
    out, expected = ours(*a), ref(*b)
    assert_close(out, expected, **TOL)
    upstream = torch.randn_like(out)
    floats = [i for i, x in enumerate(inputs) if x.is_floating_point()]
    grads = torch.autograd.grad((out * upstream).sum(), [a[i] for i in floats], allow_unused=True, materialize_grads=True)
    expected_grads = torch.autograd.grad((expected * upstream).sum(), [b[i] for i in floats], allow_unused=True,
                                         materialize_grads=True)
    assert_close(grads, expected_grads, **TOL)
    return out


@pytest.fixture
def same():
    return compare


@pytest.fixture
def rand():
    generator = torch.Generator().manual_seed(0)

    def make(*shape, scale=1.0):
        return scale * torch.randn(*shape, generator=generator, dtype=torch.float64)

    return make


def response_mask(lengths, starts, total):
    """(B, total) bool: row b is True on [starts[b], starts[b] + lengths[b])."""
    positions = torch.arange(total)
    starts, lengths = torch.as_tensor(starts), torch.as_tensor(lengths)
    return (positions >= starts[:, None]) & (positions < (starts + lengths)[:, None])


@pytest.fixture
def make_mask():
    return response_mask
