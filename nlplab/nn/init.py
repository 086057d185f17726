"""Weight initialisation: draw weights so that the variance of activations neither explodes nor vanishes.

For a weight w of shape (fan_out, fan_in, *kernel) each output sums fan_in products, so
Var(out) = fan_in · Var(w) · Var(in). Keeping Var(out) = Var(in) asks for Var(w) = 1/fan_in (forward pass);
keeping the gradients' variance asks for 1/fan_out (backward pass). A uniform U(-b, b) has variance b²/3.
Every function fills w in place, without recording gradients, and returns it (like torch.nn.init).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from nlplab.errors import ConfigError

_GAINS = {"linear": 1.0, "conv1d": 1.0, "sigmoid": 1.0, "tanh": 5.0 / 3, "relu": math.sqrt(2.0), "selu": 3.0 / 4}


def fan_in_fan_out(w: Tensor) -> tuple[int, int]:
    """(fan_in, fan_out) of w (fan_out, fan_in, *kernel): fan_in = size(1)·∏kernel, fan_out = size(0)·∏kernel."""
    if w.dim() < 2:
        raise ValueError(f"fan_in and fan_out need a tensor with at least 2 dimensions, got shape {tuple(w.shape)}")
    receptive_field = math.prod(w.shape[2:])
    return w.shape[1] * receptive_field, w.shape[0] * receptive_field


def calculate_gain(nonlinearity: str, a: float = 0.01) -> float:
    """Gain g that restores unit variance after the nonlinearity: relu √2, tanh 5/3, leaky_relu √(2/(1+a²)),
    selu 3/4, linear/sigmoid 1."""
    if nonlinearity == "leaky_relu":
        return math.sqrt(2.0 / (1 + a**2))
    if nonlinearity not in _GAINS:
        raise ConfigError(f"unknown nonlinearity {nonlinearity!r}; choose one of {sorted([*_GAINS, 'leaky_relu'])}")
    return _GAINS[nonlinearity]


@torch.no_grad()
def uniform_(w: Tensor, bound: float) -> Tensor:
    """w ~ U(-bound, bound), variance bound²/3."""
    return w.uniform_(-bound, bound)


@torch.no_grad()
def normal_(w: Tensor, std: float = 1.0) -> Tensor:
    """w ~ N(0, std²); the default N(0, 1) is how embeddings start."""
    return w.normal_(0.0, std)


def scaled_normal_(w: Tensor) -> Tensor:
    """w ~ N(0, 1/fan_in): Nielsen's network2 default, the forward-pass condition Var(w) = 1/fan_in."""
    return normal_(w, 1.0 / math.sqrt(fan_in_fan_out(w)[0]))


def xavier_uniform_(w: Tensor, gain: float = 1.0) -> Tensor:
    """Glorot: Var(w) = gain² · 2/(fan_in + fan_out), drawn as U(-b, b) with b = gain · √(6/(fan_in + fan_out))."""
    fan_in, fan_out = fan_in_fan_out(w)
    return uniform_(w, gain * math.sqrt(6.0 / (fan_in + fan_out)))


def xavier_normal_(w: Tensor, gain: float = 1.0) -> Tensor:
    """Glorot: w ~ N(0, std²) with std = gain · √(2/(fan_in + fan_out))."""
    fan_in, fan_out = fan_in_fan_out(w)
    return normal_(w, gain * math.sqrt(2.0 / (fan_in + fan_out)))


def _kaiming_std(w: Tensor, a: float, mode: str, nonlinearity: str) -> float:
    """He: std = gain(nonlinearity, a) / √fan, fan = fan_in (keeps activations) or fan_out (keeps gradients)."""
    if mode not in ("fan_in", "fan_out"):
        raise ConfigError(f"kaiming mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan = fan_in_fan_out(w)[0 if mode == "fan_in" else 1]
    return calculate_gain(nonlinearity, a) / math.sqrt(fan)


def kaiming_uniform_(w: Tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu") -> Tensor:
    """He: w ~ U(-b, b) with b = √3 · gain / √fan, so Var(w) = gain²/fan (a: negative slope of leaky_relu)."""
    return uniform_(w, math.sqrt(3.0) * _kaiming_std(w, a, mode, nonlinearity))


def kaiming_normal_(w: Tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu") -> Tensor:
    """He: w ~ N(0, gain²/fan) (a: negative slope of leaky_relu)."""
    return normal_(w, _kaiming_std(w, a, mode, nonlinearity))
