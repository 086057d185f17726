"""PPO on a language model (InstructGPT's RL stage): per-token rewards, GAE, the clipped losses, the ptx term.

A rollout samples a response y to each prompt x from the policy π; each response token is one action. In the
coordinates of `token_logprobs` (position t predicts ids[t + 1]) every tensor below is (B, T) with a mask (B, T),
True at the response's tokens — contiguous in each row, the last True being the response's last real token.

Rewards (InstructGPT's R(x, y) = r_θ(x, y) − β log(π(y|x) / π_ref(y|x)), spread over the tokens):
    r_t = −β · kl_t  (+ r_θ(x, y) at the last real token)        kl_t from `kl.kl_penalty` (k1: log π − log π_ref)
so that Σ_t r_t = r_θ(x, y) − β · Σ_t kl_t, which with k1 is R(x, y) exactly.

Generalised advantage estimation (Schulman et al. 2016), γ the discount and λ the bias/variance trade-off:
    δ_t = r_t + γ V_{t+1} − V_t,      A_t = δ_t + γλ A_{t+1} = Σ_l (γλ)^l δ_{t+l},      R_t = A_t + V_t (returns)
with r and V taken as 0 after the last real token: the episode ends there, so V_{T_end + 1} = 0.

Losses of one PPO step (Schulman et al. 2017), ρ_t = π(y_t) / π_old(y_t), ε the clip range, means over the mask:
    L_clip = mean(max(−A_t ρ_t, −A_t clip(ρ_t, 1 − ε, 1 + ε)))
    L_V    = ½ mean(max((V_t − R_t)², (clip(V_t, V_old,t − ε_V, V_old,t + ε_V) − R_t)²))
    L_ptx  = −γ_ptx · mean over pre-training tokens of log π(x_t | x_<t)        (PPO-ptx: InstructGPT's
             objective adds γ E_{x ~ D_pretrain}[log π(x)], so minimising L_ptx maximises that term)
    loss   = L_clip + c_V L_V (− c_H · mean entropy) + L_ptx
"""

from __future__ import annotations

import torch
from torch import Tensor

from nlplab.errors import DataError
from nlplab.rlhf.kl import kl_penalty
from nlplab.rlhf.logprobs import token_logprobs
from nlplab.rlhf.masked import masked_mean

IGNORE_INDEX = -100


def last_true(mask: Tensor) -> Tensor:
    """The index of the last True of each row: mask (B, T) -> (B,) (0 for a row without any)."""
    positions = torch.arange(mask.shape[1], device=mask.device)
    return torch.where(mask.bool(), positions, 0).amax(1)


def kl_rewards(scores: Tensor, logp: Tensor, ref_logp: Tensor, mask: Tensor, beta: float, estimator: str = "k1",
               score_clip: float | None = None) -> tuple[Tensor, Tensor]:
    """(rewards, kl), both (B, T) and 0 outside the mask: rewards r_t = −β kl_t, plus the reward model's score
    (B,) at each row's last real token, clipped to ±score_clip when given (DeepSpeed-Chat clips at 5)."""
    mask = mask.bool()
    if not mask.any(1).all():
        raise DataError("a response without any token has no last token to reward; drop empty responses first")
    kl = kl_penalty(logp, ref_logp, estimator).where(mask, 0)
    if score_clip is not None:
        scores = scores.clamp(-score_clip, score_clip)
    rows = torch.arange(mask.shape[0], device=mask.device)
    rewards = -beta * kl
    rewards = rewards.index_put((rows, last_true(mask)), scores, accumulate=True)
    return rewards, kl


def gae(rewards: Tensor, values: Tensor, mask: Tensor, gamma: float = 1.0, lam: float = 0.95) -> tuple[Tensor, Tensor]:
    """(advantages A, returns R), both (B, T) and 0 outside the mask, from the rollout's per-token rewards and the
    value head's V (B, T); see the module docstring."""
    mask = mask.bool()
    rewards, values = rewards.where(mask, 0), values.where(mask, 0)
    next_values = torch.cat([values[:, 1:], values.new_zeros(values.shape[0], 1)], 1)
    deltas = rewards + gamma * next_values - values
    advantages, running = [], deltas.new_zeros(deltas.shape[0])
    for t in reversed(range(deltas.shape[1])):
        running = deltas[:, t] + gamma * lam * running
        advantages.append(running)
    advantages = torch.stack(advantages[::-1], 1).where(mask, 0)
    return advantages, (advantages + values).where(mask, 0)


def policy_loss(logp: Tensor, old_logp: Tensor, advantages: Tensor, mask: Tensor,
                clip: float = 0.2) -> tuple[Tensor, Tensor]:
    """(L_clip, the share of tokens whose clipped term is the larger one); logp carries the gradient, old_logp
    and advantages come from the rollout."""
    mask = mask.bool()
    ratio = (logp - old_logp).where(mask, 0).exp()
    unclipped = -advantages * ratio
    clipped = -advantages * ratio.clamp(1 - clip, 1 + clip)
    clip_fraction = masked_mean((clipped > unclipped).to(clipped.dtype), mask)
    return masked_mean(torch.max(unclipped, clipped), mask), clip_fraction


def value_loss(values: Tensor, old_values: Tensor, returns: Tensor, mask: Tensor,
               clip: float | None = 0.2) -> tuple[Tensor, Tensor]:
    """(L_V, the share of tokens where the clipped error is the larger one); clip None: ½ mean((V − R)²)."""
    unclipped = (values - returns) ** 2
    if clip is None:
        return 0.5 * masked_mean(unclipped, mask), unclipped.new_zeros(())
    clipped = (old_values + (values - old_values).clamp(-clip, clip) - returns) ** 2
    clip_fraction = masked_mean((clipped > unclipped).to(clipped.dtype), mask)
    return 0.5 * masked_mean(torch.max(unclipped, clipped), mask), clip_fraction


def ptx_loss(logits: Tensor, targets: Tensor, coef: float) -> Tensor:
    """γ_ptx · the mean negative log-likelihood of pre-training tokens: logits (B, T, V), targets (B, T) next
    tokens (-100 where nothing is predicted)."""
    keep = targets != IGNORE_INDEX
    return coef * masked_mean(-token_logprobs(logits, targets.where(keep, 0)), keep)
