"""The reward model's loss (InstructGPT, Ouyang et al. 2022, eq. 1): a Bradley–Terry model of human choices.

For a prompt x and two answers, y_w preferred to y_l, the reward model r_θ should rank them:

    P(y_w ≻ y_l | x) = σ(r_θ(x, y_w) − r_θ(x, y_l))
    loss(θ) = −1/C(K,2) · E_{(x, y_w, y_l) ~ D}[log σ(r_θ(x, y_w) − r_θ(x, y_l))]

InstructGPT shows labellers K = 4 … 9 answers per prompt and trains on all C(K,2) pairs of one prompt together,
as one batch element: each prompt weighs the same however many pairs it gives. `ranking_loss` is that form (the
answers of each prompt in ranked order); `pairwise_loss` is the plain one over a batch of pairs (K = 2), as TRL's
and OpenRLHF's reward trainers compute it. An optional margin m (Llama 2) asks for a gap:
−log σ(r_w − r_l − m).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from nlplab.errors import ConfigError, DataError
from nlplab.rlhf.masked import masked_mean


def pairwise_loss(chosen: Tensor, rejected: Tensor, margin: Tensor | float = 0.0, reduction: str = "mean") -> Tensor:
    """−log σ(r_w − r_l − margin): chosen, rejected (N,) scores of the preferred and the other answer; margin a
    number or (N,). reduction "mean" (one number) or "none" (N,)."""
    if reduction not in ("mean", "none"):
        raise ConfigError(f"reduction must be mean or none; got {reduction!r}")
    losses = -F.logsigmoid(chosen - rejected - margin)
    return losses.mean() if reduction == "mean" else losses


def ranking_loss(scores: Tensor, valid: Tensor | None = None, margin: float = 0.0) -> Tensor:
    """InstructGPT's loss over K ranked answers per prompt: scores (P, K), each row best answer first; valid (P, K)
    marks the answers a prompt has (rows may hold fewer than K). For every pair i < j of one prompt's answers,
    −log σ(s_i − s_j − margin); averaged over the prompt's pairs, then over prompts."""
    if valid is None:
        valid = torch.ones_like(scores, dtype=torch.bool)
    valid = valid.bool()
    if (valid.sum(1) < 2).any():
        raise DataError("every prompt of a ranking needs at least 2 answers to compare")
    k = scores.shape[1]
    pairs = torch.ones(k, k, dtype=torch.bool, device=scores.device).triu(1) & valid[:, :, None] & valid[:, None, :]
    losses = -F.logsigmoid(scores[:, :, None] - scores[:, None, :] - margin)
    return masked_mean(losses, pairs, dim=(1, 2)).mean()


def pairwise_accuracy(chosen: Tensor, rejected: Tensor) -> Tensor:
    """The share of pairs the scores rank right, r_w > r_l (a tie counts as wrong)."""
    return (chosen > rejected).float().mean()
