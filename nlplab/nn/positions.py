"""Where a token is: attention alone is blind to order (permute the tokens and the outputs permute with them), so
position enters as a vector added to each token embedding (absolute) or as a rotation of queries and keys (RoPE).

- Sinusoidal (Vaswani et al., 2017): fixed, PE(p, 2i) = sin(p / 10000^(2i/d)), PE(p, 2i+1) = cos(p / 10000^(2i/d)).
- Learned absolute (BERT, GPT-2): one trained vector per position, so no position beyond the table.
- Rotary, RoPE (Su et al., 2021): rotate each pair of coordinates of q and k by an angle proportional to the
  position, so that ⟨rope(q, m), rope(k, n)⟩ depends on m - n only: attention sees relative positions.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from nlplab.errors import ConfigError
from nlplab.nn.layers import Embedding


def check_positions(length: int, max_positions: int) -> None:
    """A sequence of `length` positions must fit a table of `max_positions`."""
    if length > max_positions:
        raise ConfigError(f"sequence of {length} positions is longer than the model's {max_positions}; "
                          f"truncate the input to {max_positions} tokens")


def inverse_frequencies(dim: int, base: float = 10000.0, device: torch.device | None = None) -> Tensor:
    """ω_i = base^(-2i/dim) for i = 0 … dim/2 - 1, (dim/2,) in float64: one angular frequency per pair of dims."""
    if dim % 2:
        raise ConfigError(f"sinusoidal and rotary positions need an even dimension, got {dim}")
    return base ** (-torch.arange(0, dim, 2, dtype=torch.float64, device=device) / dim)


def sinusoidal_positions(num_positions: int, dim: int, base: float = 10000.0) -> Tensor:
    """PE (num_positions, dim): PE[p, 2i] = sin(p ω_i), PE[p, 2i+1] = cos(p ω_i), ω_i = base^(-2i/dim)."""
    angles = torch.arange(num_positions, dtype=torch.float64)[:, None] * inverse_frequencies(dim, base)
    return torch.stack([angles.sin(), angles.cos()], -1).flatten(1).float()


class SinusoidalPositions(nn.Module):
    """Fixed sinusoidal position vectors: positions (...) -> PE[positions] (..., dim); kept as a buffer, not trained."""

    def __init__(self, max_positions: int, dim: int, base: float = 10000.0) -> None:
        super().__init__()
        self.max_positions = max_positions
        self.register_buffer("table", sinusoidal_positions(max_positions, dim, base), persistent=False)

    def forward(self, positions: Tensor) -> Tensor:
        return self.table[positions]


class LearnedPositions(Embedding):
    """A trained vector per position: positions (...) -> weight[positions] (..., dim), weight ~ N(0, 1) at init."""

    def __init__(self, max_positions: int, dim: int, impl: str = "fused") -> None:
        super().__init__(max_positions, dim, impl=impl)
        self.max_positions = max_positions


def rotate_half(x: Tensor) -> Tensor:
    """(x₁, x₂) -> (-x₂, x₁) for the two halves of the last dim: a 90° turn of each pair (x₁ᵢ, x₂ᵢ)."""
    x1, x2 = x.chunk(2, -1)
    return torch.cat([-x2, x1], -1)


def rope(x: Tensor, positions: Tensor, base: float = 10000.0) -> Tensor:
    """Rotary position embedding: x (..., T, d), positions (T,) -> (..., T, d).

    Pair i joins dims i and i + d/2 (the GPT-NeoX / LLaMA layout; the paper pairs 2i and 2i+1, the same up to a
    permutation of dims). Seen as the complex number zᵢ = x_i + j·x_{i+d/2}, it becomes zᵢ · e^{j·p·ωᵢ} at position
    p, ωᵢ = base^(-2i/d): x cos(pω) + rotate_half(x) sin(pω). A rotation keeps norms, and
    ⟨rope(q, m), rope(k, n)⟩ = Re Σᵢ q̄ᵢ kᵢ e^{j(n-m)ωᵢ} depends on n - m only.
    """
    angles = positions.to(torch.float64)[:, None] * inverse_frequencies(x.shape[-1], base, x.device)
    angles = torch.cat([angles, angles], -1)
    return x * angles.cos().to(x.dtype) + rotate_half(x) * angles.sin().to(x.dtype)
