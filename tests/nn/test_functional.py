"""softmax / log_softmax equal torch's, forward and gradient; naive_softmax overflows where they do not."""

import pytest
import torch
from torch.testing import assert_close

from nlplab.nn.functional import log_softmax, naive_softmax, softmax

TOL = dict(atol=1e-10, rtol=1e-8)


@pytest.mark.parametrize("dim", [0, 1, 2, -1])
@pytest.mark.parametrize(("ours", "ref"), [(softmax, torch.softmax), (log_softmax, torch.log_softmax)])
def test_equals_torch_forward_and_gradient(ours, ref, dim):
    torch.manual_seed(dim + 10)
    x = (3 * torch.randn(3, 4, 5, dtype=torch.float64)).requires_grad_()
    x_ref = x.detach().clone().requires_grad_()
    out, expected = ours(x, dim), ref(x_ref, dim)
    assert_close(out, expected, **TOL)
    upstream = torch.randn_like(out)
    (out * upstream).sum().backward()
    (expected * upstream).sum().backward()
    assert_close(x.grad, x_ref.grad, **TOL)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_naive_softmax_overflows_where_stable_one_does_not(dtype):
    x = torch.tensor([1000.0, 1001.0, 1002.0], dtype=dtype)
    assert not torch.isfinite(naive_softmax(x)).all()
    for ours, ref in [(softmax, torch.softmax), (log_softmax, torch.log_softmax)]:
        out = ours(x)
        assert torch.isfinite(out).all()
        assert_close(out, ref(x, -1), atol=1e-6, rtol=1e-6)


def test_naive_softmax_is_right_on_small_inputs():
    torch.manual_seed(0)
    x = torch.randn(4, 6, dtype=torch.float64)
    assert_close(naive_softmax(x, dim=0), torch.softmax(x, 0), **TOL)
