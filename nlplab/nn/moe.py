"""Mixture of experts feed-forward: a router sends each token to its top-k of E expert FFNs (Switch / GShard).

For N = B·T tokens x_t (D,), router probabilities p_t = softmax(x_t W_r) (E,) pick experts by rank:
top-1 (Switch Transformer) uses gate g = p_t[e], top-2 renormalises the two gates to sum to one,
g_k = p_t[e_k] / (p_t[e_1] + p_t[e_2]). Expert e is FFN_e(x) = act(x W1_e + b1_e) W2_e + b2_e, and

    y_t = Σ_k g_k · FFN_{e_k}(x_t)      over the choices k of token t that found room.

Each expert takes at most C = ⌈capacity_factor · N · top_k / E⌉ tokens. Seats are given first come, first
served: all first choices before any second choice, and within one rank in token order (batch, then time).
A choice that finds its expert full is dropped: it adds nothing to y_t, so with a residual connection around
the layer the token passes through unchanged. Switch's load-balancing loss is

    aux = E · Σ_i f_i · P_i,   f_i = share of the N·top_k choices routed to expert i (before dropping),
                               P_i = mean over tokens of p_t[i],

which equals 1 when routing is uniform (f_i = P_i = 1/E) and grows as it concentrates on few experts.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from nlplab.errors import ConfigError
from nlplab.nn.activations import get_activation


class MoEFeedForward(nn.Module):
    """Top-k routed mixture of E expert FFNs; x (B, T, D) -> (y (B, T, D), aux_loss ()).

    Expert weights are stacked, W1 (E, D, F), b1 (E, F), W2 (E, F, D), b2 (E, D), so all experts run as one
    batched matmul over an (E, C, D) buffer of dispatched tokens. After each forward, `last_stats` holds
    `tokens_per_expert` (E,) seats taken, `dropped` the number of dropped choices (tokens when top_k = 1)
    and `capacity` C.
    """

    def __init__(self, d_model: int, d_ff: int, num_experts: int, top_k: int = 1, capacity_factor: float = 1.25,
                 activation: str = "gelu") -> None:
        super().__init__()
        if top_k not in (1, 2):
            raise ConfigError(f"top_k must be 1 (Switch) or 2, got {top_k}")
        if num_experts < top_k:
            raise ConfigError(f"num_experts ({num_experts}) must be at least top_k ({top_k})")
        if capacity_factor <= 0:
            raise ConfigError(f"capacity_factor must be > 0, got {capacity_factor}")
        self.num_experts, self.top_k, self.capacity_factor = num_experts, top_k, capacity_factor
        self.router = nn.Linear(d_model, num_experts, bias=False)
        self.act = get_activation(activation, impl="fused")
        bound1, bound2 = 1 / math.sqrt(d_model), 1 / math.sqrt(d_ff)
        self.w1 = nn.Parameter(torch.empty(num_experts, d_model, d_ff).uniform_(-bound1, bound1))
        self.b1 = nn.Parameter(torch.empty(num_experts, d_ff).uniform_(-bound1, bound1))
        self.w2 = nn.Parameter(torch.empty(num_experts, d_ff, d_model).uniform_(-bound2, bound2))
        self.b2 = nn.Parameter(torch.empty(num_experts, d_model).uniform_(-bound2, bound2))
        self.last_stats: dict[str, object] = {}

    def capacity(self, tokens: int) -> int:
        """C = ⌈capacity_factor · tokens · top_k / E⌉, the seats of each expert."""
        return math.ceil(self.capacity_factor * tokens * self.top_k / self.num_experts)

    def route(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Router of tokens x (N, D): probabilities p (N, E), chosen experts (N, k), gates (N, k)."""
        probs = torch.softmax(self.router(x), dim=-1)
        gates, experts = probs.topk(self.top_k, dim=-1)
        if self.top_k > 1:
            gates = gates / gates.sum(-1, keepdim=True)
        return probs, experts, gates

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """y_t = Σ_k g_k · FFN_{e_k}(x_t) over seated choices, and the balance loss; x (B, T, D) -> (B, T, D), ()."""
        batch, steps, d = x.shape
        tokens = x.reshape(-1, d)
        n, num_experts, cap = len(tokens), self.num_experts, self.capacity(batch * steps)
        probs, experts, gates = self.route(tokens)
        # Choices in seat order: rank-major (all first choices, then all second), token order within a rank.
        expert_of = experts.T.reshape(-1)
        token_of = torch.arange(n, device=x.device).repeat(self.top_k)
        onehot = nn.functional.one_hot(expert_of, num_experts)
        seat = (onehot.cumsum(0) * onehot).sum(-1) - 1
        kept = seat < cap
        slot = expert_of[kept] * cap + seat[kept]
        buffer = tokens.new_zeros(num_experts * cap, d).index_copy(0, slot, tokens[token_of[kept]])
        hidden = self.act(torch.baddbmm(self.b1.unsqueeze(1), buffer.view(num_experts, cap, d), self.w1))
        out = torch.baddbmm(self.b2.unsqueeze(1), hidden, self.w2).view(num_experts * cap, d)
        y = tokens.new_zeros(n, d).index_add(0, token_of[kept], gates.T.reshape(-1)[kept].unsqueeze(1) * out[slot])
        share = onehot.sum(0).to(probs.dtype) / len(expert_of)
        aux = num_experts * (share * probs.mean(0)).sum()
        self.last_stats = {"tokens_per_expert": onehot[kept].sum(0), "dropped": int((~kept).sum()), "capacity": cap}
        return y.view(batch, steps, d), aux
