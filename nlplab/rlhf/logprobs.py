"""What a policy's logits say about the tokens it produced: per-token log-probabilities and the entropy.

    log π(y_t | x, y_<t) = log softmax(z_t / τ)[y_t]       z_t (…, V) the logits that predict y_t, τ the temperature
    H(π(· | x, y_<t))    = −Σ_v p_v log p_v = logsumexp(z_t) − Σ_v p_v z_{t,v}      p = softmax(z_t)

For a causal LM over ids (B, T), the logits at position t predict the token at t + 1, so the log-probabilities of
ids[:, 1:] come from logits[:, :-1]; summing them over a response gives log π(y | x), the quantity PPO's ratio,
the KL penalty and DPO are made of.
"""

from __future__ import annotations

import torch
from torch import Tensor

from nlplab.errors import ConfigError


def token_logprobs(logits: Tensor, targets: Tensor, temperature: float = 1.0) -> Tensor:
    """log softmax(logits / temperature) at `targets`: logits (…, V), targets (…) ids in [0, V) -> (…)."""
    if temperature <= 0:
        raise ConfigError(f"temperature must be > 0; got {temperature}")
    if temperature != 1.0:
        logits = logits / temperature
    return logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - logits.logsumexp(-1)


def entropy(logits: Tensor) -> Tensor:
    """The entropy of softmax(logits) along the last dimension, in nats: (…, V) -> (…)."""
    probs = torch.softmax(logits, -1)
    return logits.logsumexp(-1) - (probs * logits).sum(-1)
