"""The KL penalty that keeps the RL policy π near the supervised model π_ref, and the controllers of its weight β.

Per token y_t sampled from π, with log r = log π_ref(y_t) − log π(y_t), three estimators of KL(π ‖ π_ref)
(Schulman, "Approximating KL divergence", 2020):

    k1 = −log r                   unbiased, high variance, can be negative (InstructGPT's penalty: log π/π_ref)
    k2 = ½ (log r)²               biased, low variance, always ≥ 0
    k3 = (r − 1) − log r          unbiased, low variance, always ≥ 0

Summed over a response, k1 is log π(y|x) − log π_ref(y|x), the penalty in InstructGPT's objective
    R(x, y) = r_θ(x, y) − β · log(π(y|x) / π_ref(y|x)).

β is fixed, or adapted to hold the measured KL near a target (Ziegler et al. 2019, "Fine-tuning language models
from human preferences", §2.2):
    e_t = clip(KL_t / KL_target − 1, −0.2, 0.2)        β_{t+1} = β_t · (1 + K_β e_t),  K_β = n_steps / horizon
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from nlplab.errors import ConfigError

KL_ESTIMATORS = ("k1", "k2", "k3")
ADAPTIVE_KL_CLIP = 0.2


def kl_penalty(logp: Tensor, ref_logp: Tensor, estimator: str = "k1") -> Tensor:
    """Per-token KL estimate from log π(y_t) and log π_ref(y_t) of the sampled tokens (same shape, any)."""
    log_ratio = logp - ref_logp
    if estimator == "k1":
        return log_ratio
    if estimator == "k2":
        return 0.5 * log_ratio**2
    if estimator == "k3":
        return torch.expm1(-log_ratio) + log_ratio
    raise ConfigError(f"unknown KL estimator {estimator!r}; choose one of {', '.join(KL_ESTIMATORS)}")


@dataclass
class FixedKLController:
    """β that stays what it is."""

    value: float

    def update(self, current: float, n_steps: int) -> None:
        """Nothing to adapt."""

    def state_dict(self) -> dict[str, float]:
        return {"value": self.value}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.value = float(state["value"])


@dataclass
class AdaptiveKLController(FixedKLController):
    """β adapted towards a target KL (nats per response) over `horizon` samples; see the module docstring."""

    target: float = 6.0
    horizon: int = 10000

    def __post_init__(self) -> None:
        if self.target <= 0 or self.horizon <= 0:
            raise ConfigError(f"the adaptive KL controller needs target > 0 and horizon > 0; got target {self.target}, "
                              f"horizon {self.horizon}")

    def update(self, current: float, n_steps: int) -> None:
        """After a rollout of n_steps samples whose mean KL was `current`."""
        error = min(max(current / self.target - 1, -ADAPTIVE_KL_CLIP), ADAPTIVE_KL_CLIP)
        self.value *= 1 + error * n_steps / self.horizon


def kl_controller(beta: float, target: float | None = None, horizon: int = 10000) -> FixedKLController:
    """The fixed controller, or the adaptive one when a target KL is given."""
    if beta < 0:
        raise ConfigError(f"the KL coefficient beta must be >= 0; got {beta}")
    return FixedKLController(beta) if target is None else AdaptiveKLController(beta, target, horizon)
