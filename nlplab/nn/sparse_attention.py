"""Sparse attention: each query sees a fixed pattern of keys, computed block-sparse in O(n·w) time and memory.

Two patterns, over positions i (query) and j (key) of one sequence of length n:

- local (sliding window w): causal  0 ≤ i − j < w  (itself and the w − 1 keys before it);
                            symmetric |i − j| < w  (w − 1 keys on each side and itself).
- strided (Sparse Transformer, Child et al. 2019, "fixed" pattern with one summary column per stride):
  local, plus every "summary" column j ≡ stride − 1 (mod stride), i.e. the last position of each stride-long
  segment, which carries the segment to later queries (with causal, only summary columns j ≤ i).

`pattern_mask` writes the pattern as a dense (n, n) boolean matrix; full attention with that mask is the
reference. `sparse_attention` computes the same result without ever forming the n × n scores: the sequence is
cut into blocks of b positions, query block q reads the key blocks q − r … q (causal) or q − r … q + r
(symmetric), r = ⌈(w − 1) / b⌉, taken as overlapping windows of the padded keys with `unfold`, plus the
n / stride summary keys gathered by a strided slice. Scores have shape (B, H, n/b, b, K·b + n/stride),
K = r + 1 or 2r + 1, so local attention costs O(n·w) and strided O(n·w + n²/stride).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from nlplab.errors import ConfigError

KINDS = ("local", "strided")


def _check_pattern(kind: str, window: int, stride: int | None) -> None:
    if kind not in KINDS:
        raise ConfigError(f"unknown sparse attention pattern {kind!r}; choose one of: {', '.join(KINDS)}")
    if window < 1:
        raise ConfigError(f"window must be >= 1 (keys a query sees on each side, itself included), got {window}")
    if kind == "strided" and (stride is None or stride < 1):
        raise ConfigError(f"the strided pattern needs stride >= 1 (distance between summary columns), got {stride}")


def _local(i: Tensor, j: Tensor, window: int, causal: bool) -> Tensor:
    """True where key j lies in query i's window: 0 ≤ i − j < w (causal) or |i − j| < w; broadcasts i and j."""
    gap = i - j
    return (gap >= 0) & (gap < window) if causal else gap.abs() < window


def _summary(i: Tensor, j: Tensor, stride: int, causal: bool) -> Tensor:
    """True where key j is a summary column, j ≡ stride − 1 (mod stride), that query i may see."""
    summary = j % stride == stride - 1
    return summary & (j <= i) if causal else summary


def pattern_mask(n: int, kind: str, window: int, stride: int | None = None, causal: bool = True) -> Tensor:
    """Dense boolean (n, n) mask of a sparse pattern: mask[i, j] is True where query i may attend to key j.

    local: `_local(i, j)`; strided: local OR summary column (see the module docstring).
    """
    _check_pattern(kind, window, stride)
    i, j = torch.arange(n).unsqueeze(1), torch.arange(n).unsqueeze(0)
    mask = _local(i, j, window, causal)
    return mask | _summary(i, j, stride, causal) if kind == "strided" else mask


def sparse_attention(q: Tensor, k: Tensor, v: Tensor, kind: str = "local", window: int = 128,
                     stride: int | None = None, causal: bool = True, key_padding_mask: Tensor | None = None,
                     block_size: int | None = None) -> Tensor:
    """softmax(Q Kᵀ/√d + M) V restricted to the pattern, computed block by block.

    q, k, v: (B, H, n, d); key_padding_mask: (B, n), True at real tokens (padded keys are never attended);
    returns (B, H, n, d). M is 0 where `pattern_mask(n, kind, window, stride, causal)` (and the padding mask)
    allow the key and −∞ elsewhere; a query that may see no key at all gets zeros. block_size b defaults to
    min(window, n); it changes the speed, not the result.
    """
    _check_pattern(kind, window, stride)
    batch, heads, n, d = q.shape
    if k.shape != q.shape or v.shape != q.shape:
        raise ConfigError(f"q, k and v must share one shape (B, H, n, d), got {tuple(q.shape)}, "
                          f"{tuple(k.shape)}, {tuple(v.shape)}")
    if key_padding_mask is not None and tuple(key_padding_mask.shape) != (batch, n):
        raise ConfigError(f"key_padding_mask must be (B, n) = ({batch}, {n}), got {tuple(key_padding_mask.shape)}")
    if block_size is not None and block_size < 1:
        raise ConfigError(f"block_size must be >= 1, got {block_size}")
    b = block_size or min(window, n)
    reach = math.ceil((window - 1) / b)
    blocks = math.ceil(n / b)
    behind, ahead = reach, 0 if causal else reach
    span = (behind + 1 + ahead) * b

    def key_windows(x: Tensor) -> Tensor:
        """(..., n, e) -> (..., blocks, span, e): for each query block, the keys of its own and nearby blocks."""
        padded = F.pad(x, (0, 0, behind * b, (blocks + ahead) * b - n))
        return padded.unfold(-2, span, b).transpose(-1, -2)

    real = (key_padding_mask if key_padding_mask is not None else q.new_ones(1, n)).bool()
    i = torch.arange(blocks * b, device=q.device).view(blocks, b, 1)  # query positions
    j = (torch.arange(blocks, device=q.device).view(blocks, 1, 1) - behind) * b + torch.arange(span, device=q.device)
    seen = _local(i, j, window, causal) & key_windows(real.unsqueeze(-1)).squeeze(-1).unsqueeze(-2)  # (B|1, nb, b, w)

    qb = F.pad(q, (0, 0, 0, blocks * b - n)).view(batch, heads, blocks, b, d) / math.sqrt(d)
    scores = qb @ key_windows(k).transpose(-1, -2)  # (B, H, nb, b, span)
    if kind == "strided":
        js = torch.arange(stride - 1, n, stride, device=q.device)
        summary = _summary(i, js, stride, causal) & ~_local(i, js, window, causal) & real[:, None, None, js]
        seen = torch.cat([seen.expand(len(real), -1, -1, -1), summary], dim=-1)
        scores = torch.cat([scores, qb @ k[:, :, js].transpose(-1, -2).unsqueeze(2)], dim=-1)
    seen = seen.unsqueeze(1)
    weights = torch.softmax(scores.masked_fill(~seen, torch.finfo(scores.dtype).min), dim=-1) * seen
    out = weights[..., :span] @ key_windows(v)
    if kind == "strided":
        out = out + weights[..., span:] @ v[:, :, js].unsqueeze(2)
    return out.reshape(batch, heads, blocks * b, d)[:, :, :n]
