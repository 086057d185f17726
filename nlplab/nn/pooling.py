"""Pooling a padded batch of token vectors into one vector per sequence, ignoring the padding.

x (B, T, D) holds B sequences padded to T steps; mask (B, T) is True at real tokens. Padded positions never
reach the result (whatever their values, inf included) and receive zero gradient. A row without any real
token pools to zeros.
"""

from __future__ import annotations

import torch
from torch import Tensor


def masked_mean_pool(x: Tensor, mask: Tensor) -> Tensor:
    """Mean over real tokens: out_b = Σ_t mask_bt · x_bt / Σ_t mask_bt; (B, T, D), (B, T) -> (B, D)."""
    mask = mask.bool().unsqueeze(-1)
    total = torch.where(mask, x, 0.0).sum(1)
    return total / mask.sum(1).clamp(min=1)


def masked_max_pool(x: Tensor, mask: Tensor) -> Tensor:
    """Max over real tokens: out_bd = max_{t: mask_bt} x_btd; (B, T, D), (B, T) -> (B, D)."""
    mask = mask.bool().unsqueeze(-1)
    best = torch.where(mask, x, float("-inf")).amax(1)
    return torch.where(mask.any(1), best, 0.0)


def bidirectional_last(x: Tensor, lengths: Tensor) -> Tensor:
    """The final state of each direction of a bidirectional recurrent layer: the forward half x[:, :, :H] at the
    last real step and the backward half x[:, :, H:] at step 0 (where its reading ends); (B, T, 2H), (B,) -> (B, 2H)."""
    half = x.shape[-1] // 2
    last = (lengths.to(x.device).clamp(min=1) - 1).view(-1, 1, 1).expand(-1, 1, half)
    return torch.cat([x[:, :, :half].gather(1, last).squeeze(1), x[:, 0, half:]], dim=-1)


def concat_pool(x: Tensor, mask: Tensor, lengths: Tensor) -> Tensor:
    """ULMFiT's concat pooling of bidirectional outputs: [last states, max over time, mean over time];
    (B, T, 2H), (B, T), (B,) -> (B, 6H)."""
    return torch.cat([bidirectional_last(x, lengths), masked_max_pool(x, mask), masked_mean_pool(x, mask)], dim=-1)
