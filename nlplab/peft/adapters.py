"""Adapters (Houlsby et al., 2019): a small bottleneck inserted after a sublayer, the only new weights trained.

    adapter(h) = h + W_up act(W_down h + b_down) + b_up        W_down (m, d), W_up (d, m), m ≪ d

W_up and b_up start at zero, so each adapter starts as the identity and training starts from the pretrained model.
Houlsby places one after the attention's output projection and one after the feed-forward network of every block,
before the residual sum, and trains the adapters, the LayerNorms and the task head: about 2·m·d per adapter.
"""

from __future__ import annotations

from torch import Tensor, nn

from nlplab.nn.activations import get_activation
from nlplab.nn.layers import Linear


class Bottleneck(nn.Module):
    """h (..., d) -> h + up(act(down(h))) (..., d), down d -> m, up m -> d initialised to zero."""

    def __init__(self, dim: int, size: int, activation: str = "gelu") -> None:
        super().__init__()
        self.down = Linear(dim, size)
        self.act = get_activation(activation, "fused")
        self.up = Linear(size, dim)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, h: Tensor) -> Tensor:
        return h + self.up(self.act(self.down(h)))


class AdapterLayer(nn.Module):
    """A layer followed by its adapter: x -> adapter(base(x))."""

    def __init__(self, base: nn.Module, adapter: Bottleneck) -> None:
        super().__init__()
        self.base, self.adapter = base, adapter

    def forward(self, x: Tensor) -> Tensor:
        return self.adapter(self.base(x))
