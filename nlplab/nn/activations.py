"""Activation functions written from their formulas, each with its derivative d act / d x.

Every `<name>(x)` maps a tensor of any shape elementwise to the same shape; every `<name>_grad(x)` returns
the derivative of `<name>` at x, elementwise, same shape. `softmax_jacobian` is the one non-elementwise case.
`get_activation(name)` gives an `nn.Module` for models that choose their activation by name.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nlplab.errors import ConfigError
from nlplab.nn.functional import softmax


def sigmoid(x: Tensor) -> Tensor:
    """sigma(x) = 1 / (1 + exp(-x)).

    Computed with e = exp(-|x|) <= 1, as 1 / (1 + e) for x >= 0 and e / (1 + e) for x < 0, so that
    neither the value nor its gradient overflows for large |x|.
    """
    e = torch.exp(torch.where(x >= 0, -x, x))  # exp(-x.abs()) would get a zero gradient at x = 0
    return torch.where(x >= 0, 1 / (1 + e), e / (1 + e))


def sigmoid_grad(x: Tensor) -> Tensor:
    """d sigma / dx = sigma(x) (1 - sigma(x)); at most 1/4, which is why deep sigmoid nets lose their gradient."""
    s = sigmoid(x)
    return s * (1 - s)


def tanh(x: Tensor) -> Tensor:
    """tanh(x) = (e^x - e^-x) / (e^x + e^-x), computed as 2 sigma(2x) - 1 so that it cannot overflow."""
    return 2 * sigmoid(2 * x) - 1


def tanh_grad(x: Tensor) -> Tensor:
    """d tanh / dx = 1 - tanh(x)^2."""
    return 1 - tanh(x) ** 2


def softplus(x: Tensor) -> Tensor:
    """softplus(x) = log(1 + exp(x)), a smooth relu.

    Computed as m + log(exp(-m) + exp(x - m)) with m = max(x, 0): no exponent is positive, so nothing
    overflows. The identity holds for any m, so m is detached and the gradient stays exactly sigma(x).
    """
    m = x.clamp_min(0).detach()
    return m + torch.log(torch.exp(-m) + torch.exp(x - m))


def softplus_grad(x: Tensor) -> Tensor:
    """d softplus / dx = sigma(x)."""
    return sigmoid(x)


def relu(x: Tensor) -> Tensor:
    """relu(x) = max(0, x)."""
    return torch.where(x > 0, x, 0.0)


def relu_grad(x: Tensor) -> Tensor:
    """d relu / dx = 1 if x > 0 else 0 (PyTorch's choice at x = 0)."""
    return (x > 0).to(x.dtype)


def leaky_relu(x: Tensor, negative_slope: float = 0.01) -> Tensor:
    """leaky_relu(x) = x if x > 0 else negative_slope * x."""
    return torch.where(x > 0, x, negative_slope * x)


def leaky_relu_grad(x: Tensor, negative_slope: float = 0.01) -> Tensor:
    """d leaky_relu / dx = 1 if x > 0 else negative_slope."""
    return torch.where(x > 0, torch.ones_like(x), torch.full_like(x, negative_slope))


def elu(x: Tensor, alpha: float = 1.0) -> Tensor:
    """elu(x) = x if x > 0 else alpha (exp(x) - 1).

    The exponential only sees min(x, 0), so the branch that is not taken cannot overflow.
    """
    return torch.where(x > 0, x, alpha * torch.expm1(x.clamp_max(0)))


def elu_grad(x: Tensor, alpha: float = 1.0) -> Tensor:
    """d elu / dx = 1 if x > 0 else alpha exp(x)."""
    return torch.where(x > 0, 1.0, alpha * torch.exp(x.clamp_max(0)))


_SQRT_2_OVER_PI = math.sqrt(2 / math.pi)
_GELU_TANH_COEF = 0.044715


def _check_approximate(approximate: str) -> None:
    if approximate not in ("none", "tanh"):
        raise ConfigError(f"gelu approximate must be 'none' (erf form) or 'tanh', got {approximate!r}")


def gelu(x: Tensor, approximate: str = "none") -> Tensor:
    """gelu(x) = x Phi(x), Phi the standard normal CDF.

    approximate="none": x/2 (1 + erf(x / sqrt 2)), the exact form.
    approximate="tanh": x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), the GPT-2 / BERT form.
    """
    _check_approximate(approximate)
    if approximate == "tanh":
        return 0.5 * x * (1 + tanh(_SQRT_2_OVER_PI * (x + _GELU_TANH_COEF * x**3)))
    return 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))


def gelu_grad(x: Tensor, approximate: str = "none") -> Tensor:
    """d gelu / dx.

    approximate="none": Phi(x) + x phi(x), phi(x) = exp(-x^2/2) / sqrt(2 pi) the normal density.
    approximate="tanh": with u = sqrt(2/pi) (x + 0.044715 x^3) and t = tanh(u),
    (1 + t)/2 + x/2 (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2).
    """
    _check_approximate(approximate)
    if approximate == "tanh":
        t = tanh(_SQRT_2_OVER_PI * (x + _GELU_TANH_COEF * x**3))
        du_dx = _SQRT_2_OVER_PI * (1 + 3 * _GELU_TANH_COEF * x**2)
        return 0.5 * (1 + t) + 0.5 * x * (1 - t**2) * du_dx
    cdf = 0.5 * (1 + torch.erf(x / math.sqrt(2)))
    pdf = torch.exp(-0.5 * x**2) / math.sqrt(2 * math.pi)
    return cdf + x * pdf


def silu(x: Tensor) -> Tensor:
    """silu(x) = x sigma(x); also called swish (with beta = 1)."""
    return x * sigmoid(x)


def silu_grad(x: Tensor) -> Tensor:
    """d silu / dx = sigma(x) (1 + x (1 - sigma(x)))."""
    s = sigmoid(x)
    return s * (1 + x * (1 - s))


swish = silu
swish_grad = silu_grad


def softmax_jacobian(x: Tensor) -> Tensor:
    """Jacobian of softmax over the last dimension: J[..., i, j] = d s_i / d x_j = s_i (delta_ij - s_j).

    x: (..., n). Returns (..., n, n) = diag(s) - s s^T, one matrix per row of x.
    """
    s = softmax(x, dim=-1)
    return torch.diag_embed(s) - s.unsqueeze(-1) * s.unsqueeze(-2)


ACTIVATIONS: dict[str, tuple[Callable[[Tensor], Tensor], Callable[[Tensor], Tensor]]] = {
    "sigmoid": (sigmoid, sigmoid_grad),
    "tanh": (tanh, tanh_grad),
    "softplus": (softplus, softplus_grad),
    "relu": (relu, relu_grad),
    "leaky_relu": (leaky_relu, leaky_relu_grad),
    "elu": (elu, elu_grad),
    "gelu": (gelu, gelu_grad),
    "gelu_tanh": (partial(gelu, approximate="tanh"), partial(gelu_grad, approximate="tanh")),
    "silu": (silu, silu_grad),
    "swish": (silu, silu_grad),
}
"""Name -> (activation, its derivative), both elementwise on tensors of any shape."""


FUSED: dict[str, Callable[[Tensor], Tensor]] = {
    "sigmoid": torch.sigmoid, "tanh": torch.tanh, "softplus": F.softplus, "relu": F.relu, "leaky_relu": F.leaky_relu,
    "elu": F.elu, "gelu": F.gelu, "gelu_tanh": partial(F.gelu, approximate="tanh"), "silu": F.silu, "swish": F.silu,
}
"""Name -> torch's kernel for the same function (the fast default path; tested equal to `ACTIVATIONS`)."""


class Activation(nn.Module):
    """An `nn.Module` applying one activation by name: hand-written (`impl="manual"`, from `ACTIVATIONS`) or
    torch's kernel (`impl="fused"`, from `FUSED`); same shape in and out."""

    def __init__(self, name: str, impl: str = "manual") -> None:
        super().__init__()
        if name not in ACTIVATIONS:
            raise ConfigError(f"unknown activation {name!r}; choose one of: {', '.join(sorted(ACTIVATIONS))}")
        if impl not in ("fused", "manual"):
            raise ConfigError(f"unknown impl {impl!r}; choose fused or manual")
        self.name = name
        self.fn = ACTIVATIONS[name][0] if impl == "manual" else FUSED[name]

    def forward(self, x: Tensor) -> Tensor:
        return self.fn(x)

    def extra_repr(self) -> str:
        return self.name


def get_activation(name: str, impl: str = "manual") -> Activation:
    """The activation called `name` as an `nn.Module`; raises ConfigError listing the valid names if unknown."""
    return Activation(name, impl)
