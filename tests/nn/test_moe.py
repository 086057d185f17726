"""MoE feed-forward against a per-token loop written from the definition, capacity and drop order, balance loss."""

import math

import pytest
import torch
import torch.nn.functional as F

from nlplab.errors import ConfigError
from nlplab.nn.moe import MoEFeedForward

F64 = dict(rtol=1e-10, atol=1e-10)


def brute_force(moe, x):
    """y and the dropped-choice count by looping over ranks, then tokens in order, seating each choice if its
    expert still has room; every quantity recomputed from the parameters."""
    tokens = x.reshape(-1, x.shape[-1])
    n, num_experts = len(tokens), moe.num_experts
    capacity = math.ceil(moe.capacity_factor * n * moe.top_k / num_experts)
    probs = [torch.softmax(moe.router.weight @ t, dim=0) for t in tokens]
    choices = []
    for p in probs:
        first = int(p.argmax())
        rest = p.clone()
        rest[first] = -1.0
        choices.append([first, int(rest.argmax())][: moe.top_k])
    seats, dropped, ys = [0] * num_experts, 0, [torch.zeros_like(t) for t in tokens]
    for rank in range(moe.top_k):
        for t in range(n):
            e = choices[t][rank]
            if seats[e] == capacity:
                dropped += 1
                continue
            seats[e] += 1
            chosen = probs[t][choices[t]]
            gate = chosen[rank] / chosen.sum() if moe.top_k == 2 else chosen[rank]
            hidden = F.gelu(tokens[t] @ moe.w1[e] + moe.b1[e])
            ys[t] = ys[t] + gate * (hidden @ moe.w2[e] + moe.b2[e])
    return torch.stack(ys).view_as(x), dropped, seats


def make(top_k, capacity_factor, num_experts=4, seed=0):
    torch.manual_seed(seed)
    return MoEFeedForward(6, 10, num_experts, top_k=top_k, capacity_factor=capacity_factor).double()


@pytest.mark.parametrize("top_k", [1, 2])
@pytest.mark.parametrize("capacity_factor", [100.0, 1.25, 0.5])
def test_forward_and_gradient_equal_brute_force(top_k, capacity_factor):
    moe = make(top_k, capacity_factor)
    x = torch.randn(3, 7, 6, dtype=torch.float64, requires_grad=True)
    y, _ = moe(x)
    expected, dropped, seats = brute_force(moe, x)
    torch.testing.assert_close(y, expected, **F64)
    assert moe.last_stats["dropped"] == dropped
    assert moe.last_stats["tokens_per_expert"].tolist() == seats
    assert moe.last_stats["capacity"] == math.ceil(capacity_factor * 21 * top_k / 4)
    if capacity_factor == 100.0:
        assert dropped == 0
    if capacity_factor == 0.5:
        assert dropped > 0
    probe = torch.randn_like(y)
    ours = torch.autograd.grad((y * probe).sum(), [x, *moe.parameters()])
    theirs = torch.autograd.grad((expected * probe).sum(), [x, *moe.parameters()])
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, **F64)


@pytest.mark.parametrize("top_k", [1, 2])
def test_full_expert_drops_the_latest_tokens(top_k):
    moe = make(top_k, capacity_factor=1.0, num_experts=4)
    with torch.no_grad():
        moe.router.weight.zero_()
        moe.router.weight[0, 0] = 50.0
        moe.router.weight[1, 0] = 40.0
    x = torch.randn(2, 8, 6, dtype=torch.float64)
    x[..., 0] = 1.0
    y, _ = moe(x)
    capacity = math.ceil(16 * top_k / 4)
    rows = y.reshape(16, 6).abs().sum(-1)
    assert torch.equal(rows > 0, torch.arange(16) < capacity)
    assert moe.last_stats["dropped"] == top_k * 16 - top_k * capacity
    assert moe.last_stats["tokens_per_expert"].tolist() == [capacity, capacity if top_k == 2 else 0, 0, 0]


def balanced_router(moe, num_tokens, skewed):
    """Tokens that are scaled one-hot vectors on the router's rows: token t prefers expert t mod E (or expert 0
    for every token when skewed), so the routing is exactly uniform (or all on one expert)."""
    with torch.no_grad():
        moe.router.weight.copy_(torch.eye(moe.num_experts, 6, dtype=torch.float64))
    prefer = torch.zeros(num_tokens, dtype=torch.long) if skewed else torch.arange(num_tokens) % moe.num_experts
    return 3.0 * F.one_hot(prefer, 6).to(torch.float64).view(1, num_tokens, 6)


@pytest.mark.parametrize("top_k", [1, 2])
def test_balance_loss_is_one_at_uniform_routing_and_larger_when_skewed(top_k):
    moe = make(top_k, capacity_factor=2.0)
    uniform = moe(balanced_router(moe, 8, skewed=False))[1]
    skewed = moe(balanced_router(moe, 8, skewed=True))[1]
    torch.testing.assert_close(uniform, torch.tensor(1.0, dtype=torch.float64), **F64)
    assert skewed > 1.5


def test_balance_loss_at_equal_router_probabilities_is_one():
    moe = make(1, capacity_factor=1.0)
    with torch.no_grad():
        moe.router.weight.zero_()
    _, aux = moe(torch.randn(2, 5, 6, dtype=torch.float64))
    torch.testing.assert_close(aux, torch.tensor(1.0, dtype=torch.float64), **F64)


def test_balance_loss_equals_switch_formula():
    moe = make(1, capacity_factor=1.0, num_experts=5)
    x = torch.randn(4, 6, 6, dtype=torch.float64)
    _, aux = moe(x)
    probs = torch.softmax(x.reshape(-1, 6) @ moe.router.weight.T, dim=-1)
    share = torch.bincount(probs.argmax(-1), minlength=5).double() / len(probs)
    torch.testing.assert_close(aux, 5 * (share * probs.mean(0)).sum(), **F64)


@pytest.mark.parametrize("top_k", [1, 2])
def test_gradient_reaches_router_and_experts(top_k):
    moe = make(top_k, capacity_factor=1.25)
    y, aux = moe(torch.randn(2, 6, 6, dtype=torch.float64))
    (y.square().sum() + aux).backward()
    for name, p in moe.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    moe.zero_grad()
    moe(torch.randn(2, 6, 6, dtype=torch.float64))[1].backward()
    assert moe.router.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("kwargs", [dict(top_k=3), dict(num_experts=1, top_k=2), dict(capacity_factor=0.0),
                                    dict(activation="nope")])
def test_bad_options_raise_config_error(kwargs):
    with pytest.raises(ConfigError):
        MoEFeedForward(**{"d_model": 4, "d_ff": 8, "num_experts": 4, **kwargs})
