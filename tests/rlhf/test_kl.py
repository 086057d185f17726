"""KL estimators equal Schulman's formulas and TRL's PPO trainer (trl/trainer/ppo_trainer.py at commit
be8a08742d7fb9191a48b7cb5f26c5a3e93130e8, step "4. compute rewards"); k1 and k3 are unbiased; the adaptive KL
controller equals TRL's AdaptiveKLController (trl/trainer/utils.py at commit 001ea5fcecb5cb01d6d3944ded18947687bcd7bb)."""

import numpy as np
import pytest
import torch
from torch.testing import assert_close

from nlplab.errors import ConfigError
from nlplab.rlhf import AdaptiveKLController, FixedKLController, kl_controller, kl_penalty

TOL = dict(atol=1e-10, rtol=1e-10)


def schulman(logp, ref_logp, estimator):
    r = torch.exp(ref_logp - logp)
    return {"k1": -torch.log(r), "k2": 0.5 * torch.log(r) ** 2, "k3": (r - 1) - torch.log(r)}[estimator]


def trl_ppo_kl(logprobs, ref_logprobs, kl_estimator):
    logr = ref_logprobs - logprobs
    return -logr if kl_estimator == "k1" else (logr.exp() - 1) - logr


@pytest.mark.parametrize("estimator", ["k1", "k2", "k3"])
def test_estimators_equal_schulman(rand, same, estimator):
    logp, ref_logp = rand(3, 8) - 2, rand(3, 8) - 2
    same(lambda a, b: kl_penalty(a, b, estimator), lambda a, b: schulman(a, b, estimator), logp, ref_logp)


@pytest.mark.parametrize("estimator", ["k1", "k3"])
def test_k1_and_k3_equal_trl(rand, same, estimator):
    logp, ref_logp = rand(3, 8) - 2, rand(3, 8) - 2
    same(lambda a, b: kl_penalty(a, b, estimator), lambda a, b: trl_ppo_kl(a, b, estimator), logp, ref_logp)


def test_k1_and_k3_are_unbiased_and_k2_k3_nonnegative(rand):
    """E_{y~p}[k] = Σ_y p(y) k(y) equals KL(p ‖ q) exactly for k1 and k3."""
    logp, logq = torch.log_softmax(rand(50, scale=2.0), 0), torch.log_softmax(rand(50, scale=2.0), 0)
    kl = (logp.exp() * (logp - logq)).sum()
    for estimator in ("k1", "k3"):
        assert_close((logp.exp() * kl_penalty(logp, logq, estimator)).sum(), kl, **TOL)
    assert (kl_penalty(logp, logq, "k2") >= 0).all() and (kl_penalty(logp, logq, "k3") >= 0).all()
    assert (kl_penalty(logp, logq, "k1") < 0).any()


def test_unknown_estimator():
    with pytest.raises(ConfigError, match="k1, k2, k3"):
        kl_penalty(torch.zeros(2), torch.zeros(2), "k4")


class TrlAdaptiveKLController:
    def __init__(self, init_kl_coef, target, horizon):
        self.value, self.target, self.horizon = init_kl_coef, target, horizon

    def update(self, current, n_steps):
        proportional_error = np.clip(current / self.target - 1, -0.2, 0.2)
        self.value *= 1 + proportional_error * n_steps / self.horizon


def test_adaptive_controller_equals_trl_and_ziegler():
    ours, theirs, beta = AdaptiveKLController(0.2, target=6.0, horizon=1000), TrlAdaptiveKLController(0.2, 6.0, 1000), 0.2
    for current in [0.5, 3.0, 5.9, 6.0, 7.0, 12.0, 40.0, 2.0]:
        ours.update(current, 64)
        theirs.update(current, 64)
        beta *= 1 + min(max(current / 6.0 - 1, -0.2), 0.2) * 64 / 1000
        assert ours.value == pytest.approx(theirs.value, rel=1e-12) and ours.value == pytest.approx(beta, rel=1e-12)
    assert ours.value != 0.2


def test_controller_choice_state_and_errors():
    fixed = kl_controller(0.1)
    fixed.update(100.0, 64)
    assert type(fixed) is FixedKLController and fixed.value == 0.1
    adaptive = kl_controller(0.1, target=6.0, horizon=500)
    adaptive.update(12.0, 50)
    restored = kl_controller(0.1, target=6.0, horizon=500)
    restored.load_state_dict(adaptive.state_dict())
    assert isinstance(adaptive, AdaptiveKLController) and restored.value == adaptive.value == pytest.approx(0.1 * 1.02)
    with pytest.raises(ConfigError, match="target > 0"):
        kl_controller(0.1, target=0.0)
    with pytest.raises(ConfigError, match="beta"):
        kl_controller(-1.0)
