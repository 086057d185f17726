"""Attention (Vaswani et al., 2017): every query takes a weighted average of the values, weighted by how well
it matches each key.

    Attention(Q, K, V) = softmax(Q Kᵀ / √d_k + M) V

Q (…, T_q, d_k), K (…, T_k, d_k), V (…, T_k, d_v). Dividing by √d_k keeps the variance of the scores at about 1
when the entries of q and k have unit variance, so softmax does not saturate and its gradient does not vanish.
M is 0 where a query may look and -inf where it may not (padding, the future).

`scaled_dot_product_attention` is the function; `SelfAttention` and `MultiHeadSelfAttention` are the study notes'
modules (corrected); `MultiHeadAttention` is the general layer of Transformer blocks: self- or cross-attention,
with a key/value cache for decoding one token at a time.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nlplab.errors import ConfigError
from nlplab.nn.functional import softmax
from nlplab.nn.layers import Linear, check_dropout, check_impl, dropout

KV = tuple[Tensor, Tensor]
"""Keys and values of the positions seen so far, each (B, H, T_past, d_head): a layer's cache."""


def attention_mask(q: Tensor, k: Tensor, attn_mask: Tensor | None = None, key_padding_mask: Tensor | None = None,
                   causal: bool = False) -> Tensor | None:
    """All masks as one, broadcastable to the scores (…, T_q, T_k): bool (True = may attend) or float (added).

    key_padding_mask (B, T_k) is True at real keys. `causal` lets query i see keys j ≤ i + T_k - T_q: the queries
    are the last T_q positions of the T_k keys, which is what a key/value cache gives. None when nothing is masked.
    """
    masks: list[Tensor] = []
    if attn_mask is not None:
        masks.append(attn_mask)
    if key_padding_mask is not None:
        masks.append(key_padding_mask.bool().view(k.shape[0], *[1] * (k.dim() - 2), k.shape[-2]))
    if causal:
        t_q, t_k = q.shape[-2], k.shape[-2]
        masks.append(torch.ones(t_q, t_k, dtype=torch.bool, device=q.device).tril(t_k - t_q))
    allowed: Tensor | None = None
    bias: Tensor | None = None
    for m in masks:
        if m.dtype == torch.bool:
            allowed = m if allowed is None else allowed & m
        else:
            bias = m.to(q.dtype) if bias is None else bias + m
    if bias is None or allowed is None:
        return bias if allowed is None else allowed
    return bias.masked_fill(~allowed, float("-inf"))


def scaled_dot_product_attention(
    q: Tensor, k: Tensor, v: Tensor, attn_mask: Tensor | None = None, key_padding_mask: Tensor | None = None,
    causal: bool = False, dropout_p: float = 0.0, training: bool = False, return_weights: bool = False,
    impl: str = "fused",
) -> Tensor | tuple[Tensor, Tensor]:
    """softmax(Q Kᵀ / √d_k + M) V; q (…, T_q, d_k), k (…, T_k, d_k), v (…, T_k, d_v) -> (…, T_q, d_v).

    Usually (B, H, T, d). attn_mask broadcasts to (…, T_q, T_k): bool (True = may attend) or float (added to the
    scores); key_padding_mask (B, T_k) is True at real keys; `causal` hides the future (see `attention_mask`).
    Every query must be allowed at least one key. Dropout with probability dropout_p hits the weights when
    `training`. return_weights also returns softmax(Q Kᵀ / √d_k + M) (…, T_q, T_k), before dropout.
    impl="fused": F.scaled_dot_product_attention (flash / memory-efficient kernels where available; it cannot
    return the weights, so return_weights takes the manual path); impl="manual": the formula above.
    """
    check_impl(impl)
    p = check_dropout(dropout_p) if training else 0.0
    if impl == "fused" and not return_weights:
        if causal and attn_mask is None and key_padding_mask is None and q.shape[-2] == k.shape[-2]:
            return F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)
        mask = attention_mask(q, k, attn_mask, key_padding_mask, causal)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    mask = attention_mask(q, k, attn_mask, key_padding_mask, causal)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else scores + mask
    weights = softmax(scores, dim=-1)
    out = dropout(weights, p, training) @ v
    return (out, weights) if return_weights else out


class SelfAttention(nn.Module):
    """The notes' single-head self-attention: Q = X W_q, K = X W_k, V = X W_v, out = softmax(Q Kᵀ / √dim_k) V.

    x (B, T, dim_in) -> (B, T, dim_v). W_q, W_k (dim_in -> dim_k) and W_v (dim_in -> dim_v) have no bias.
    (The notes' version moved tensors to an undefined `device`; parameters live where the module lives.)
    """

    def __init__(self, dim_in: int, dim_k: int, dim_v: int, impl: str = "fused") -> None:
        super().__init__()
        self.dim_in, self.dim_k, self.dim_v, self.impl = dim_in, dim_k, dim_v, check_impl(impl)
        self.linear_q = Linear(dim_in, dim_k, bias=False, impl=impl)
        self.linear_k = Linear(dim_in, dim_k, bias=False, impl=impl)
        self.linear_v = Linear(dim_in, dim_v, bias=False, impl=impl)

    def forward(self, x: Tensor) -> Tensor:
        return scaled_dot_product_attention(self.linear_q(x), self.linear_k(x), self.linear_v(x), impl=self.impl)


def split_heads(x: Tensor, num_heads: int) -> Tensor:
    """(B, T, H·d) -> (B, H, T, d)."""
    b, t, _ = x.shape
    return x.view(b, t, num_heads, -1).transpose(1, 2)


def merge_heads(x: Tensor) -> Tensor:
    """(B, H, T, d) -> (B, T, H·d)."""
    b, h, t, d = x.shape
    return x.transpose(1, 2).reshape(b, t, h * d)


def check_heads(dims: dict[str, int], num_heads: int) -> None:
    """Each of `dims` must split evenly into `num_heads` heads."""
    for name, dim in dims.items():
        if num_heads < 1 or dim % num_heads:
            raise ConfigError(f"{name}={dim} must be a multiple of num_heads={num_heads}; change one of them")


class MultiHeadSelfAttention(nn.Module):
    """The notes' multi-head self-attention: H heads of `SelfAttention` side by side, then fc_out back to dim_in.

    x (B, T, dim_in) -> (B, T, dim_in) (not dim_v, as the notes' comment said: fc_out maps dim_v -> dim_in).
    Head h sees the slices of width dim_k / H and dim_v / H of Q, K and V and scales by √(dim_k / H).
    """

    def __init__(self, dim_in: int, dim_k: int, dim_v: int, num_heads: int = 8, impl: str = "fused") -> None:
        super().__init__()
        check_heads({"dim_k": dim_k, "dim_v": dim_v}, num_heads)
        self.dim_in, self.dim_k, self.dim_v, self.num_heads, self.impl = dim_in, dim_k, dim_v, num_heads, check_impl(impl)
        self.linear_q = Linear(dim_in, dim_k, bias=False, impl=impl)
        self.linear_k = Linear(dim_in, dim_k, bias=False, impl=impl)
        self.linear_v = Linear(dim_in, dim_v, bias=False, impl=impl)
        self.fc_out = Linear(dim_v, dim_in, impl=impl)

    def forward(self, x: Tensor) -> Tensor:
        q, k, v = (split_heads(f(x), self.num_heads) for f in (self.linear_q, self.linear_k, self.linear_v))
        return self.fc_out(merge_heads(scaled_dot_product_attention(q, k, v, impl=self.impl)))


class MultiHeadAttention(nn.Module):
    """MultiHead(x, c) = Concat(head_1, …, head_H) W_o, head_h = Attention(x W_q^h, c W_k^h, c W_v^h).

    x (B, T, d_model) -> (B, T, d_model). Self-attention when context c is None (c = x), cross-attention
    otherwise (c (B, S, d_model), e.g. the encoder's output). `q` projects x, `kv` projects c into keys and values
    side by side (one matmul), `out` is W_o. Dropout hits the attention weights in training.
    """

    def __init__(self, d_model: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 impl: str = "fused") -> None:
        super().__init__()
        check_heads({"d_model": d_model}, num_heads)
        self.d_model, self.num_heads, self.dropout, self.impl = d_model, num_heads, check_dropout(dropout), check_impl(impl)
        self.q = Linear(d_model, d_model, bias=bias, impl=impl)
        self.kv = Linear(d_model, 2 * d_model, bias=bias, impl=impl)
        self.out = Linear(d_model, d_model, bias=bias, impl=impl)

    def forward(self, x: Tensor, context: Tensor | None = None, key_padding_mask: Tensor | None = None,
                causal: bool = False, cache: KV | None = None) -> tuple[Tensor, KV]:
        """Attend from x to itself (context None) or to context; returns (output, cache).

        key_padding_mask (B, T_k) is True at real keys, T_k counting the cached ones too. Self-attention: the
        cache holds the keys and values of earlier positions, the new ones are appended, and x holds the next
        positions (with causal=True, each sees the cache and the new positions up to itself). Cross-attention:
        the cache holds the projected context, computed at the first call and reused (context is then ignored).
        """
        q = split_heads(self.q(x), self.num_heads)
        if context is not None and cache is not None:
            k, v = cache
        else:
            k, v = (split_heads(t, self.num_heads) for t in self.kv(x if context is None else context).chunk(2, -1))
            if cache is not None:
                k, v = torch.cat([cache[0], k], 2), torch.cat([cache[1], v], 2)
        out = scaled_dot_product_attention(q, k, v, key_padding_mask=key_padding_mask, causal=causal,
                                           dropout_p=self.dropout, training=self.training, impl=self.impl)
        return self.out(merge_heads(out)), (k, v)
