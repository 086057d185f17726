"""The trainable virtual tokens of prompt tuning and prefix tuning, for the slots of `nlplab.models.virtual_tokens`.

Prompt tuning (Lester et al., 2021): n vectors P (n, d) that every input sees first, in place of token embeddings.
Prefix tuning (Li & Liang, 2021): n keys and values in every layer, one table (n, L·2·d) that holds, for virtual
token i, layer l's keys in columns [2l·d, (2l+1)·d) and its values in [(2l+1)·d, (2l+2)·d), each split into H heads
of d/H — Hugging Face PEFT's `prompt_embeddings`. Training the table directly is unstable, so the paper (and PEFT's
`prefix_projection`) trains it through a reparameterising MLP, table = W₂ tanh(W₁ E + b₁) + b₂ with E (n, d);
once trained, only the table is kept.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from nlplab.nn import init
from nlplab.nn.attention import KV
from nlplab.nn.layers import Linear


class PromptEmbedding(nn.Module):
    """n trainable vectors, weight (n, d) ~ N(0, 1) as PEFT's random init: batch size B -> (B, n, d)."""

    def __init__(self, num_virtual_tokens: int, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_virtual_tokens, dim))
        init.normal_(self.weight)

    def forward(self, batch_size: int) -> Tensor:
        return self.weight.expand(batch_size, -1, -1)


class PrefixEncoder(nn.Module):
    """Keys and values of n virtual positions for each of L attention layers of H heads and width d:
    batch size B -> L pairs (keys, values), each (B, H, n, d/H).

    projection = 0: the table (n, L·2·d) itself is trained, weight ~ N(0, 1) as PEFT's init; projection = h > 0:
    an embedding E (n, d) and the MLP d -> h -> L·2·d are trained instead (see the module docstring)."""

    def __init__(self, num_virtual_tokens: int, num_layers: int, dim: int, num_heads: int, projection: int = 0) -> None:
        super().__init__()
        self.num_layers, self.num_heads = num_layers, num_heads
        width = num_layers * 2 * dim
        self.weight = nn.Parameter(torch.empty(num_virtual_tokens, dim if projection else width))
        init.normal_(self.weight)
        self.mlp = nn.Sequential(Linear(dim, projection), nn.Tanh(), Linear(projection, width)) if projection else None

    def table(self) -> Tensor:
        """The keys and values of every layer side by side, (n, L·2·d)."""
        return self.weight if self.mlp is None else self.mlp(self.weight)

    def forward(self, batch_size: int) -> list[KV]:
        n = self.weight.shape[0]
        heads = self.table().view(n, 2 * self.num_layers, self.num_heads, -1).permute(1, 2, 0, 3)
        heads = heads.unsqueeze(1).expand(-1, batch_size, -1, -1, -1)
        return [(heads[2 * layer], heads[2 * layer + 1]) for layer in range(self.num_layers)]
