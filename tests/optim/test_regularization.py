"""L1/L2 penalties: values, gradients, and the L2-penalty = weight-decay identity (SGD yes, Adam no)."""

from __future__ import annotations

import pytest
import torch

from nlplab.optim import SGD, Adam, l1_penalty, l2_penalty


def _weights() -> list[torch.Tensor]:
    torch.manual_seed(0)
    weights = [torch.randn(4, 3, dtype=torch.float64), torch.randn(5, dtype=torch.float64)]
    weights[0][1, 2] = 0.0
    return [w.requires_grad_() for w in weights]


def test_l1_value_and_gradient_is_lam_sign():
    weights, lam = _weights(), 0.3
    penalty = l1_penalty(weights, lam)
    reference = lam * sum(torch.linalg.vector_norm(w.detach(), ord=1) for w in weights)
    torch.testing.assert_close(penalty, reference, atol=1e-12, rtol=0)
    penalty.backward()
    for w in weights:
        torch.testing.assert_close(w.grad, lam * torch.sign(w.detach()), atol=1e-12, rtol=0)
    assert weights[0].grad[1, 2] == 0.0


def test_l2_value_has_one_half_and_gradient_is_lam_w():
    weights, lam = _weights(), 0.3
    penalty = l2_penalty(weights, lam)
    reference = lam / 2 * sum(torch.linalg.vector_norm(w.detach()) ** 2 for w in weights)
    torch.testing.assert_close(penalty, reference, atol=1e-12, rtol=0)
    penalty.backward()
    for w in weights:
        torch.testing.assert_close(w.grad, lam * w.detach(), atol=1e-12, rtol=0)


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_sgd_with_l2_penalty_equals_weight_decay(trajectory, momentum):
    lam = 0.05
    with_penalty = trajectory(
        lambda ps: SGD(ps, lr=0.05, momentum=momentum), penalty=lambda m: l2_penalty(m.parameters(), lam)
    )
    with_decay = trajectory(lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=momentum, weight_decay=lam))
    torch.testing.assert_close(with_penalty, with_decay, atol=1e-10, rtol=0)


def test_adam_l2_penalty_is_adam_weight_decay_not_adamw(trajectory):
    lam = 0.05
    with_penalty = trajectory(lambda ps: Adam(ps, lr=1e-2), penalty=lambda m: l2_penalty(m.parameters(), lam))
    adam = trajectory(lambda ps: torch.optim.Adam(ps, lr=1e-2, weight_decay=lam))
    adamw = trajectory(lambda ps: torch.optim.AdamW(ps, lr=1e-2, weight_decay=lam))
    torch.testing.assert_close(with_penalty, adam, atol=1e-10, rtol=0)
    assert (with_penalty - adamw).abs().max() > 1e-2
