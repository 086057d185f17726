"""Virtual tokens: n trainable positions a transformer sees before the real tokens (prompt and prefix tuning).

`BertEncoder` and `GPT` have two slots, empty unless `nlplab.peft` fills them:
- `prompt` (prompt tuning, Lester et al., 2021): a module mapping the batch size B to n vectors (B, n, d) that are
  prepended to the token embeddings. They take positions 0 … n-1 (segment 0), the real tokens n … n+T-1.
- `prefix` (prefix tuning, Li & Liang, 2021): a module mapping B to one (keys, values) pair (B, H, n, d_head) per
  layer, which each block's self-attention sees before the real tokens' own keys and values — a key/value cache of
  n earlier positions, so the real tokens take positions n … n+T-1 (as Hugging Face models number them after a cache).
Either way the attention mask gains n always-visible positions in front (causal attention lets every real token
see all of them), and the outputs at the virtual positions are dropped: the output keeps the input's length T.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from nlplab.nn.transformer import BlockCache


def prepend_prompt(prompt: nn.Module | None, x: Tensor) -> Tensor:
    """Token embeddings x (B, T, d) -> (B, n + T, d) with the prompt's n vectors in front (x itself without a prompt)."""
    if prompt is None:
        return x
    return torch.cat([prompt(x.shape[0]).to(x.dtype), x], 1)


def prefix_cache(prefix: nn.Module | None, batch_size: int) -> list[BlockCache] | None:
    """The prefix's keys and values as the blocks' cache: one (self-attention KV, no cross-attention) per layer."""
    if prefix is None:
        return None
    return [(kv, None) for kv in prefix(batch_size)]


def extend_mask(mask: Tensor | None, n: int) -> Tensor | None:
    """Key padding mask (B, T), True at real tokens -> (B, n + T) with n visible virtual positions in front."""
    if mask is None or n == 0:
        return mask
    return torch.cat([torch.ones(mask.shape[0], n, dtype=torch.bool, device=mask.device), mask.bool()], 1)
