"""Initialisers: same draws as torch.nn.init for the same seed, and the variance the formula promises."""

import math

import pytest
import torch
from torch import nn

from nlplab.errors import ConfigError
from nlplab.nn import init

SHAPES = [(300, 200), (16, 8, 3)]


@pytest.mark.parametrize("shape", SHAPES + [(5, 4, 3, 2)])
def test_fans_match_torch(shape):
    assert init.fan_in_fan_out(torch.empty(shape)) == nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))


@pytest.mark.parametrize("name,a", [("linear", 0.01), ("sigmoid", 0.01), ("tanh", 0.01), ("relu", 0.01),
                                    ("selu", 0.01), ("leaky_relu", 0.2), ("leaky_relu", 0.0)])
def test_gain_matches_torch(name, a):
    assert init.calculate_gain(name, a) == pytest.approx(nn.init.calculate_gain(name, a), rel=1e-12)


# (ours, torch's equivalent) applied to the same tensor with the same seed must draw the same numbers,
# which checks the bound / std; scaled_normal_ has no torch twin and is compared with normal_(std=1/√fan_in).
PAIRS = [
    (lambda w: init.normal_(w, std=0.7), lambda w: nn.init.normal_(w, std=0.7)),
    (init.scaled_normal_, lambda w: nn.init.normal_(w, std=1 / math.sqrt(nn.init._calculate_fan_in_and_fan_out(w)[0]))),
    (lambda w: init.xavier_uniform_(w, gain=1.5), lambda w: nn.init.xavier_uniform_(w, gain=1.5)),
    (lambda w: init.xavier_normal_(w, gain=1.5), lambda w: nn.init.xavier_normal_(w, gain=1.5)),
    (init.kaiming_uniform_, nn.init.kaiming_uniform_),
    (lambda w: init.kaiming_uniform_(w, a=math.sqrt(5)), lambda w: nn.init.kaiming_uniform_(w, a=math.sqrt(5))),
    (lambda w: init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu"),
     lambda w: nn.init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu")),
    (lambda w: init.kaiming_normal_(w, a=0.1), lambda w: nn.init.kaiming_normal_(w, a=0.1)),
]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("ours,theirs", PAIRS)
def test_same_draws_as_torch(ours, theirs, shape):
    w_ours, w_theirs = torch.empty(shape, dtype=torch.float64), torch.empty(shape, dtype=torch.float64)
    torch.manual_seed(0)
    ours(w_ours)
    torch.manual_seed(0)
    theirs(w_theirs)
    torch.testing.assert_close(w_ours, w_theirs, rtol=1e-12, atol=0)


def _var_xavier(fan_in, fan_out):
    return 2.0 / (fan_in + fan_out)


# (initialiser, variance from the formula given fan_in and fan_out); the weight is (fan_out, fan_in) = (1000, 500)
VARIANCES = [
    (lambda w: init.normal_(w, std=2.0), lambda fi, fo: 4.0),
    (init.scaled_normal_, lambda fi, fo: 1.0 / fi),
    (init.xavier_uniform_, _var_xavier),
    (init.xavier_normal_, _var_xavier),
    (lambda w: init.xavier_uniform_(w, gain=5 / 3), lambda fi, fo: (5 / 3) ** 2 * _var_xavier(fi, fo)),
    (lambda w: init.kaiming_uniform_(w, nonlinearity="relu"), lambda fi, fo: 2.0 / fi),
    (lambda w: init.kaiming_normal_(w, nonlinearity="relu"), lambda fi, fo: 2.0 / fi),
    (lambda w: init.kaiming_normal_(w, mode="fan_out", nonlinearity="tanh"), lambda fi, fo: (5 / 3) ** 2 / fo),
    (lambda w: init.kaiming_uniform_(w, a=math.sqrt(5)), lambda fi, fo: 1.0 / (3 * fi)),
]


@pytest.mark.parametrize("initialise,variance", VARIANCES)
def test_empirical_variance(initialise, variance):
    torch.manual_seed(1)
    w = initialise(torch.empty(1000, 500, dtype=torch.float64))
    expected = variance(500, 1000)
    assert w.var().item() == pytest.approx(expected, rel=0.03)
    assert abs(w.mean().item()) < 0.05 * math.sqrt(expected)


def test_initialises_parameters_in_place_without_recording_gradients():
    w = nn.Parameter(torch.zeros(20, 10))
    out = init.xavier_uniform_(w)
    assert out is w and w.requires_grad and w.grad_fn is None and w.abs().sum() > 0


def test_bad_arguments():
    with pytest.raises(ConfigError, match="nonlinearity"):
        init.kaiming_normal_(torch.empty(3, 3), nonlinearity="swish")
    with pytest.raises(ConfigError, match="mode"):
        init.kaiming_uniform_(torch.empty(3, 3), mode="fan_avg")
    with pytest.raises(ValueError, match="2 dimensions"):
        init.xavier_uniform_(torch.empty(3))
