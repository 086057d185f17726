"""The Transformer block: attention lets tokens exchange information, the feed-forward network transforms each
token on its own; each sublayer sits in a residual connection with a LayerNorm.

    post-LN (original Transformer, BERT):  x = LN(x + Dropout(Sublayer(x)))
    pre-LN  (GPT-2 and most later models): x = x + Dropout(Sublayer(LN(x)))

Pre-LN keeps an identity path from the input to the output, so deep stacks train without warm-up; its
residual stream is never normalised, so a pre-LN stack ends with one more LayerNorm. A decoder block of an encoder–decoder model adds
cross-attention to the encoder's output between the two. With `experts` > 0 the feed-forward sublayer is a
mixture of experts (`nlplab.nn.moe`), whose load-balancing loss the block keeps in `aux_loss`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from nlplab.errors import ConfigError
from nlplab.nn.activations import get_activation
from nlplab.nn.attention import KV, MultiHeadAttention
from nlplab.nn.layers import Dropout, LayerNorm, Linear, check_impl
from nlplab.nn.moe import MoEFeedForward

NORMS = ("post", "pre")
BlockCache = tuple[KV | None, KV | None]
"""A block's cache: (self-attention keys and values, cross-attention keys and values or None)."""


class FeedForward(nn.Module):
    """FFN(x) = act(x W₁ + b₁) W₂ + b₂, applied to each position alone; x (..., d_model) -> (..., d_model).

    W₁ widens d_model -> d_ff (usually 4·d_model), W₂ narrows back. act is GELU in BERT and GPT-2 (GPT-2 and
    BERT's TensorFlow code use its tanh form, "gelu_tanh"), ReLU in the original Transformer.
    """

    def __init__(self, d_model: int, d_ff: int, activation: str = "gelu", bias: bool = True, impl: str = "fused") -> None:
        super().__init__()
        self.fc1 = Linear(d_model, d_ff, bias=bias, impl=impl)
        self.act = get_activation(activation, impl)
        self.fc2 = Linear(d_ff, d_model, bias=bias, impl=impl)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class TransformerBlock(nn.Module):
    """Self-attention, optional cross-attention, feed-forward; x (B, T, d_model) -> (B, T, d_model).

    norm="post" or "pre" places the LayerNorms (see the module docstring); `dropout` hits the attention weights
    and each sublayer's output before the residual sum. Submodules: attn/attn_norm, cross_attn/cross_norm
    (cross_attention=True), ffn/ffn_norm. experts = E > 0 makes ffn a `MoEFeedForward` of E experts of width
    d_ff routing each token to its top_k (its experts have biases and one implementation whatever `bias` and
    `impl` say); after each forward `aux_loss` holds its balance loss (a zero tensor for the dense FFN).
    """

    def __init__(self, d_model: int, num_heads: int, d_ff: int, dropout: float = 0.1, norm: str = "post",
                 activation: str = "gelu", cross_attention: bool = False, eps: float = 1e-5, bias: bool = True,
                 impl: str = "fused", experts: int = 0, top_k: int = 1, capacity_factor: float = 1.25) -> None:
        super().__init__()
        if norm not in NORMS:
            raise ConfigError(f"norm must be one of {NORMS} (post-LN as BERT, pre-LN as GPT-2), got {norm!r}")
        self.norm, self.impl = norm, check_impl(impl)
        self.attn = MultiHeadAttention(d_model, num_heads, dropout, bias, impl)
        self.attn_norm = LayerNorm(d_model, eps, impl)
        self.cross_attn = MultiHeadAttention(d_model, num_heads, dropout, bias, impl) if cross_attention else None
        self.cross_norm = LayerNorm(d_model, eps, impl) if cross_attention else None
        self.ffn = (MoEFeedForward(d_model, d_ff, experts, top_k, capacity_factor, activation) if experts
                    else FeedForward(d_model, d_ff, activation, bias, impl))
        self.ffn_norm = LayerNorm(d_model, eps, impl)
        self.drop = Dropout(dropout, impl)
        self.aux_loss = torch.zeros(())

    def residual(self, x: Tensor, norm: LayerNorm, sublayer) -> tuple[Tensor, KV | Tensor | None]:
        """x + Dropout(sublayer) around `norm` in the place `self.norm` says; sublayer returns (y, extra), and
        extra (a KV cache, or the FFN's balance loss) is passed on."""
        if self.norm == "pre":
            y, cache = sublayer(norm(x))
            return x + self.drop(y), cache
        y, cache = sublayer(x)
        return norm(x + self.drop(y)), cache

    def forward(self, x: Tensor, key_padding_mask: Tensor | None = None, causal: bool = False,
                context: Tensor | None = None, context_mask: Tensor | None = None,
                cache: BlockCache | None = None) -> tuple[Tensor, BlockCache]:
        """Returns (output, cache). key_padding_mask (B, T_k) is True at real tokens (T_k counts cached ones);
        context (B, S, d_model) and context_mask (B, S) feed cross-attention (context is needed at every call); `cache` comes from the previous call
        when decoding position by position (see `MultiHeadAttention.forward`)."""
        self_cache, cross_cache = cache if cache is not None else (None, None)
        x, self_cache = self.residual(
            x, self.attn_norm, lambda h: self.attn(h, key_padding_mask=key_padding_mask, causal=causal, cache=self_cache))
        if self.cross_attn is not None:
            if context is None:
                raise ConfigError("this block has cross-attention: pass the encoder output as context")
            x, cross_cache = self.residual(
                x, self.cross_norm, lambda h: self.cross_attn(h, context, key_padding_mask=context_mask, cache=cross_cache))
        x, self.aux_loss = self.residual(x, self.ffn_norm, self.feed_forward)
        return x, (self_cache, cross_cache)

    def feed_forward(self, h: Tensor) -> tuple[Tensor, Tensor]:
        """The FFN sublayer as (output, balance loss); the dense FFN's loss is 0."""
        if isinstance(self.ffn, MoEFeedForward):
            return self.ffn(h)
        return self.ffn(h), h.new_zeros(())
