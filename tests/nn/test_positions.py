"""Positions against their formulas written element by element, RoPE's relative property, and RMSNorm against
torch.nn.RMSNorm (float64, forward and gradients)."""

import math

import pytest
import torch
from torch import nn

from nlplab.errors import ConfigError
from nlplab.nn.layers import RMSNorm
from nlplab.nn.positions import (
    LearnedPositions,
    SinusoidalPositions,
    check_positions,
    rope,
    sinusoidal_positions,
)

F64 = dict(rtol=1e-10, atol=1e-10)


def test_sinusoidal_matches_the_paper_formula():
    table = sinusoidal_positions(50, 8)
    for p in range(50):
        for i in range(4):
            angle = p / 10000 ** (2 * i / 8)
            assert table[p, 2 * i].item() == pytest.approx(math.sin(angle), abs=1e-6)
            assert table[p, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=1e-6)
    positions = torch.tensor([[0, 3], [49, 7]])
    torch.testing.assert_close(SinusoidalPositions(50, 8)(positions), table[positions], rtol=0, atol=0)
    with pytest.raises(ConfigError, match="even"):
        sinusoidal_positions(10, 7)


def test_learned_positions_are_a_trained_table():
    torch.manual_seed(0)
    table = LearnedPositions(16, 4)
    out = table(torch.arange(5))
    out.sum().backward()
    torch.testing.assert_close(out, table.weight[:5], rtol=0, atol=0)
    assert table.weight.grad[:5].eq(1).all() and table.weight.grad[5:].eq(0).all()
    check_positions(16, 16)
    with pytest.raises(ConfigError, match="truncate"):
        check_positions(17, 16)


def rope_reference(x, positions, base=10000.0):
    """The complex form: z_i = x_i + j x_{i+d/2} times e^{j p ω_i}, ω_i = base^(-2i/d)."""
    d = x.shape[-1]
    z = torch.complex(x[..., : d // 2], x[..., d // 2:])
    omega = base ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    z = z * torch.polar(torch.ones(len(positions), d // 2, dtype=torch.float64), positions[:, None].double() * omega)
    return torch.cat([z.real, z.imag], -1)


def test_rope_matches_the_complex_rotation_with_gradients():
    torch.manual_seed(1)
    x = torch.randn(2, 3, 6, 8, dtype=torch.float64, requires_grad=True)
    positions = torch.tensor([0, 1, 2, 5, 9, 100])
    out, expected = rope(x, positions), rope_reference(x, positions)
    torch.testing.assert_close(out, expected, **F64)
    probe = torch.randn_like(out)
    torch.testing.assert_close(torch.autograd.grad((out * probe).sum(), x)[0], torch.autograd.grad((expected * probe).sum(), x)[0], **F64)
    torch.testing.assert_close(out.norm(dim=-1), x.norm(dim=-1), **F64)


def test_rope_scores_depend_only_on_relative_position():
    torch.manual_seed(2)
    q, k = torch.randn(16, dtype=torch.float64), torch.randn(16, dtype=torch.float64)

    def score(m, n):
        return (rope(q[None], torch.tensor([m])) @ rope(k[None], torch.tensor([n])).T).item()

    for m, n in [(0, 3), (5, 8), (40, 43), (3, 0), (10, 7)]:
        assert score(m, n) == pytest.approx(score(m + 17, n + 17), abs=1e-10)
    assert score(0, 3) == pytest.approx(score(5, 8), abs=1e-10)
    assert score(0, 3) != pytest.approx(score(0, 4), abs=1e-3)


@pytest.mark.parametrize("impl", ["fused", "manual"])
@pytest.mark.parametrize("eps", [None, 1e-6])
def test_rms_norm_matches_torch(impl, eps):
    torch.manual_seed(3)
    ours, theirs = RMSNorm((3, 5), eps=eps, impl=impl).double(), nn.RMSNorm((3, 5), eps=eps).double()
    with torch.no_grad():
        ours.weight.normal_()
        theirs.weight.copy_(ours.weight)
    x = torch.randn(4, 3, 5, dtype=torch.float64) * 1e-4
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    y1, y2 = ours(x1), theirs(x2)
    torch.testing.assert_close(y1, y2, **F64)
    probe = torch.randn_like(y1)
    (y1 * probe).sum().backward()
    (y2 * probe).sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad, **F64)
    torch.testing.assert_close(ours.weight.grad, theirs.weight.grad, **F64)
