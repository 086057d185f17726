"""Direct preference optimisation (Rafailov et al. 2023): the preference loss on the policy itself, no reward model.

With h = [log π(y_w|x) − log π_ref(y_w|x)] − [log π(y_l|x) − log π_ref(y_l|x)] (sequence log-probabilities):

    sigmoid (DPO, eq. 7):       −log σ(β h);  with label smoothing ε (conservative DPO, Mitchell 2023) the labels
                                are trusted with probability 1 − ε:  −(1 − ε) log σ(β h) − ε log σ(−β h)
    ipo (Azar et al. 2023, eq. 17):  (h − 1 / (2β))²

β r̂(x, y) = β [log π(y|x) − log π_ref(y|x)] is the implicit reward; DPO is right on a pair when r̂_w > r̂_l.
TRL's IPO averages log-probabilities over the response's tokens before taking h: pass those averages here.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from nlplab.errors import ConfigError

DPO_LOSSES = ("sigmoid", "ipo")


def dpo_loss(policy_chosen: Tensor, policy_rejected: Tensor, ref_chosen: Tensor, ref_rejected: Tensor, beta: float = 0.1,
             loss_type: str = "sigmoid", label_smoothing: float = 0.0) -> tuple[Tensor, Tensor, Tensor]:
    """(losses (N,), chosen implicit rewards (N,), rejected implicit rewards (N,)) from the four (N,) sequence
    log-probabilities; the rewards are detached (for accuracy and margins)."""
    if beta <= 0:
        raise ConfigError(f"DPO's beta must be > 0; got {beta}")
    if not 0 <= label_smoothing < 0.5:
        raise ConfigError(f"label_smoothing must be in [0, 0.5); got {label_smoothing}")
    chosen_ratio, rejected_ratio = policy_chosen - ref_chosen, policy_rejected - ref_rejected
    h = chosen_ratio - rejected_ratio
    if loss_type == "sigmoid":
        losses = -(1 - label_smoothing) * F.logsigmoid(beta * h) - label_smoothing * F.logsigmoid(-beta * h)
    elif loss_type == "ipo":
        if label_smoothing:
            raise ConfigError("label_smoothing applies to the sigmoid loss only; set it to 0 for ipo")
        losses = (h - 1 / (2 * beta)) ** 2
    else:
        raise ConfigError(f"unknown DPO loss {loss_type!r}; choose one of {', '.join(DPO_LOSSES)}")
    return losses, beta * chosen_ratio.detach(), beta * rejected_ratio.detach()
