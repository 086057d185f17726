"""Hand-written activations and their derivatives equal PyTorch's, forward and gradient."""

from functools import partial

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.testing import assert_close

from nlplab.errors import ConfigError
from nlplab.nn import activations as A

TOL = dict(atol=1e-10, rtol=1e-8)

# (id, ours, our derivative, torch reference)
CASES = [
    ("sigmoid", A.sigmoid, A.sigmoid_grad, torch.sigmoid),
    ("tanh", A.tanh, A.tanh_grad, torch.tanh),
    ("softplus", A.softplus, A.softplus_grad, F.softplus),
    ("relu", A.relu, A.relu_grad, F.relu),
    ("leaky_relu", A.leaky_relu, A.leaky_relu_grad, F.leaky_relu),
    (
        "leaky_relu_0.2",
        partial(A.leaky_relu, negative_slope=0.2),
        partial(A.leaky_relu_grad, negative_slope=0.2),
        partial(F.leaky_relu, negative_slope=0.2),
    ),
    ("elu", A.elu, A.elu_grad, F.elu),
    ("elu_0.5", partial(A.elu, alpha=0.5), partial(A.elu_grad, alpha=0.5), partial(F.elu, alpha=0.5)),
    ("gelu", A.gelu, A.gelu_grad, F.gelu),
    (
        "gelu_tanh",
        partial(A.gelu, approximate="tanh"),
        partial(A.gelu_grad, approximate="tanh"),
        partial(F.gelu, approximate="tanh"),
    ),
    ("silu", A.silu, A.silu_grad, F.silu),
]
PARAMS = [pytest.param(ours, grad, ref, id=name) for name, ours, grad, ref in CASES]


def gradient(y, x, upstream):
    """d <y, upstream> / dx; zero where y does not depend on x (the derivative of relu, say)."""
    if not y.requires_grad:
        return torch.zeros_like(x)
    g = torch.autograd.grad((y * upstream).sum(), x, allow_unused=True)[0]
    return torch.zeros_like(x) if g is None else g


def assert_same_forward_and_backward(ours, ref, x):
    """ours(x) == ref(x), and the gradients of <ours(x), v> and <ref(x), v> for a random v agree."""
    a, b = x.detach().clone().requires_grad_(), x.detach().clone().requires_grad_()
    out, expected = ours(a), ref(b)
    assert_close(out, expected, **TOL)
    upstream = torch.randn_like(out)
    assert_close(gradient(out, a, upstream), gradient(expected, b, upstream), **TOL)


def torch_derivative(ref):
    """x -> d ref / dx elementwise, by autograd, itself differentiable."""

    def derivative(x):
        return torch.autograd.grad(ref(x).sum(), x, create_graph=True)[0]

    return derivative


@pytest.mark.parametrize(("ours", "grad", "ref"), PARAMS)
def test_forward_and_gradient_equal_torch(ours, grad, ref):
    torch.manual_seed(1)
    assert_same_forward_and_backward(ours, ref, 3 * torch.randn(4, 5, 6, dtype=torch.float64))


@pytest.mark.parametrize(("ours", "grad", "ref"), PARAMS)
def test_derivative_equals_autograd_of_torch(ours, grad, ref):
    torch.manual_seed(2)
    x = 3 * torch.randn(7, 9, dtype=torch.float64)
    # forward: the derivative; backward: the second derivative, both against torch
    assert_same_forward_and_backward(grad, torch_derivative(ref), x)


@pytest.mark.parametrize(("ours", "grad", "ref"), PARAMS)
def test_extreme_inputs_and_zero_stay_finite_and_equal(ours, grad, ref):
    torch.manual_seed(3)
    x = torch.tensor([-1000.0, -60.0, -1e-3, 0.0, 1e-3, 60.0, 1000.0], dtype=torch.float64)
    assert_same_forward_and_backward(ours, ref, x)
    assert torch.isfinite(ours(x)).all() and torch.isfinite(grad(x)).all()
    assert_close(grad(x), torch_derivative(ref)(x.clone().requires_grad_()).detach(), **TOL)


def test_swish_is_silu():
    assert A.swish is A.silu and A.swish_grad is A.silu_grad


@pytest.mark.parametrize("shape", [(5,), (2, 3, 4)])
def test_softmax_jacobian_equals_torch_jacobian(shape):
    torch.manual_seed(4)
    x = torch.randn(shape, dtype=torch.float64)
    rows = x.reshape(-1, shape[-1])
    expected = torch.stack([torch.autograd.functional.jacobian(partial(torch.softmax, dim=-1), r) for r in rows])
    assert_close(A.softmax_jacobian(x), expected.reshape(*shape, shape[-1]), **TOL)


def test_softmax_jacobian_gradient_equals_torch():
    torch.manual_seed(5)
    x = torch.randn(6, dtype=torch.float64)
    torch_jacobian = partial(torch.autograd.functional.jacobian, partial(torch.softmax, dim=-1), create_graph=True)
    assert_same_forward_and_backward(A.softmax_jacobian, torch_jacobian, x)


@pytest.mark.parametrize("name", sorted(A.ACTIVATIONS))
def test_get_activation_is_a_module_applying_the_function(name):
    torch.manual_seed(6)
    x = torch.randn(3, 4, dtype=torch.float64)
    module = A.get_activation(name)
    assert isinstance(module, nn.Module) and name in repr(module)
    assert_close(module(x), A.ACTIVATIONS[name][0](x), atol=0.0, rtol=0.0)


def test_unknown_names_raise_config_error_listing_the_valid_ones():
    with pytest.raises(ConfigError, match="relu.*sigmoid"):
        A.get_activation("rleu")
    with pytest.raises(ConfigError, match="tanh"):
        A.gelu(torch.zeros(2), approximate="fast")


@pytest.mark.parametrize("name", sorted(A.ACTIVATIONS))
def test_fused_and_manual_modules_agree(name):
    torch.manual_seed(7)
    x = torch.randn(4, 9, dtype=torch.float64) * 3
    manual, fused = A.get_activation(name, "manual"), A.get_activation(name, "fused")
    torch.testing.assert_close(manual(x), fused(x), atol=1e-10, rtol=1e-8)
