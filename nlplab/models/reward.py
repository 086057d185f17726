"""The reward model of InstructGPT (and PPO's value function): a causal LM's body with a scalar head.

    h = LN_f(h^L)(ids)   (B, T, d)      the GPT body without its unembedding (`GPT.features`)
    v_t = w·h_t + b      (B, T)         one number per position
    r(x, y) = v_{n−1}                   read at the last real token of [x; y] (n real tokens)

InstructGPT starts its reward model from the supervised model with the unembedding replaced by this projection,
and its value function from the reward model. The head starts as w ~ N(0, 1/(d + 1)), b = 0 (Stiennon et al.
2020). Rows are right-padded: causal attention keeps every real position blind to the padding after it, so a score
does not depend on how much padding follows (with a mixture-of-experts body, expert capacity counts the padding
tokens too, so routing and scores can change).

As a value head, v_t is the value of the state that ends at token t, the one whose next token is the action
scored by `nlplab.models.lm.response_logprobs` at position t: values(ids)[:, :-1] lines up with those
log-probabilities.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from nlplab.errors import ConfigError
from nlplab.models.gpt import GPT
from nlplab.models.lm import LMConfig, build_lm
from nlplab.nn import init
from nlplab.nn.layers import Linear


class RewardModel(nn.Module):
    """body: a GPT; head: Linear(n_embd, 1). forward(ids) gives v (B, T); score(ids, lengths) gives r (B,)."""

    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        if not isinstance(body, GPT):
            raise ConfigError(f"a reward model needs a GPT body (model: gpt); got {type(body).__name__}")
        self.body = body
        d = body.cfg.n_embd
        self.head = Linear(d, 1, impl=body.cfg.impl)
        init.normal_(self.head.weight, 1 / math.sqrt(d + 1))
        nn.init.zeros_(self.head.bias)

    @classmethod
    def build(cls, cfg: LMConfig) -> RewardModel:
        """A fresh reward model over the language model `cfg` describes (its body's weights are then usually loaded
        from a trained LM or SFT run into `.body`)."""
        return cls(build_lm(cfg))

    def forward(self, ids: Tensor) -> Tensor:
        """ids (B, T) -> values (B, T)."""
        h, _ = self.body.features(ids)
        return self.head(h).squeeze(-1)

    def score(self, ids: Tensor, lengths: Tensor) -> Tensor:
        """ids (B, T) right-padded, lengths (B,) real tokens per row -> r (B,), the value at each last real token."""
        rows = torch.arange(ids.shape[0], device=ids.device)
        return self(ids)[rows, lengths.to(ids.device) - 1]


class ActorCritic(nn.Module):
    """PPO's two trained models side by side, so that one optimizer steps both: `policy`, the causal LM that acts,
    and `value`, a RewardModel whose v_t estimates the return from each state (InstructGPT starts it from the
    reward model). Their state dict names them `policy.*` and `value.*`."""

    def __init__(self, policy: nn.Module, value: RewardModel) -> None:
        super().__init__()
        self.policy, self.value = policy, value
