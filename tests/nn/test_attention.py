"""Attention against references in float64, forward and gradients: scaled dot-product attention against the formula
written with torch.softmax (manual and fused paths), the notes' modules against their formulas, MultiHeadAttention
against torch.nn.MultiheadAttention, and cached step-by-step decoding against the full causal forward."""

import math

import pytest
import torch
from torch import nn

from nlplab.errors import ConfigError
from nlplab.nn.attention import (
    MultiHeadAttention,
    MultiHeadSelfAttention,
    SelfAttention,
    scaled_dot_product_attention,
)

F64 = dict(rtol=1e-10, atol=1e-10)
IMPLS = ["fused", "manual"]
B, H, T, S, D = 3, 2, 5, 7, 4
LENGTHS = torch.tensor([7, 2, 5])


def reference(q, k, v, allowed):
    """softmax(Q Kᵀ / √d + M) V with M = -inf where `allowed` is False, written with torch.softmax."""
    scores = torch.einsum("bhqd,bhkd->bhqk", q, k) / math.sqrt(q.shape[-1])
    weights = torch.softmax(scores.masked_fill(~allowed, float("-inf")), -1)
    return torch.einsum("bhqk,bhkd->bhqd", weights, v), weights


def qkv(t_q, t_k):
    return [torch.randn(B, H, t, D, dtype=torch.float64, requires_grad=True) for t in (t_q, t_k, t_k)]


def assert_same_with_grads(ours, theirs, inputs):
    probe = torch.randn_like(ours)
    grads_ours = torch.autograd.grad((ours * probe).sum(), inputs)
    grads_theirs = torch.autograd.grad((theirs * probe).sum(), inputs)
    torch.testing.assert_close(ours, theirs, **F64)
    for a, b in zip(grads_ours, grads_theirs):
        torch.testing.assert_close(a, b, **F64)


CASES = {
    "none": (T, S, lambda: torch.ones(T, S, dtype=torch.bool), {}),
    "padding": (T, S, lambda: (torch.arange(S) < LENGTHS[:, None])[:, None, None, :], {"key_padding_mask": "pad"}),
    "causal": (T, T, lambda: torch.ones(T, T).tril().bool(), {"causal": True}),
    "causal_with_cache": (2, S, lambda: torch.arange(S)[None, :] <= torch.arange(S - 2, S)[:, None], {"causal": True}),
    "causal_and_padding": (S, S, lambda: torch.ones(S, S).tril().bool() & (torch.arange(S) < LENGTHS[:, None])[:, None, None, :],
                           {"causal": True, "key_padding_mask": "pad"}),
}


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", CASES)
def test_sdpa_matches_reference(case, impl):
    torch.manual_seed(0)
    t_q, t_k, allowed, kwargs = CASES[case]
    kwargs = {**kwargs, **({"key_padding_mask": torch.arange(S) < LENGTHS[:, None]} if "key_padding_mask" in kwargs else {})}
    q, k, v = qkv(t_q, t_k)
    out = scaled_dot_product_attention(q, k, v, impl=impl, **kwargs)
    assert_same_with_grads(out, reference(q, k, v, allowed())[0], (q, k, v))


@pytest.mark.parametrize("impl", IMPLS)
def test_sdpa_masks_as_bool_or_float_and_returns_weights(impl):
    torch.manual_seed(1)
    q, k, v = qkv(T, S)
    allowed = torch.rand(B, 1, T, S) < 0.6
    allowed[..., 0] = True
    bias = torch.randn(B, H, T, S, dtype=torch.float64)
    expected, weights = reference(q, k, v, allowed)
    out = scaled_dot_product_attention(q, k, v, attn_mask=allowed, impl=impl)
    assert_same_with_grads(out, expected, (q, k, v))
    out, w = scaled_dot_product_attention(q, k, v, attn_mask=allowed, return_weights=True, impl=impl)
    torch.testing.assert_close(w, weights, **F64)

    def biased(allowed):
        scores = q @ k.transpose(-2, -1) / math.sqrt(D) + bias
        return torch.softmax(scores.masked_fill(~allowed, float("-inf")), -1) @ v

    out = scaled_dot_product_attention(q, k, v, attn_mask=bias.masked_fill(~allowed, float("-inf")), impl=impl)
    assert_same_with_grads(out, biased(allowed), (q, k, v))
    out = scaled_dot_product_attention(q, k, v, attn_mask=bias, key_padding_mask=allowed[:, 0, 0], impl=impl)
    assert_same_with_grads(out, biased(allowed[:, :, :1]), (q, k, v))


@pytest.mark.parametrize("impl", IMPLS)
def test_sdpa_dropout_only_in_training_and_unbiased(impl):
    torch.manual_seed(2)
    q, k, _ = qkv(T, S)
    v = torch.ones(B, H, S, 1, dtype=torch.float64)
    q, k = q.detach().repeat(200, 1, 1, 1), k.detach().repeat(200, 1, 1, 1)
    v = v.repeat(200, 1, 1, 1)
    torch.testing.assert_close(scaled_dot_product_attention(q, k, v, dropout_p=0.5, impl=impl), torch.ones(600, H, T, 1, dtype=torch.float64), **F64)
    dropped = scaled_dot_product_attention(q, k, v, dropout_p=0.5, training=True, impl=impl)
    assert (dropped != 1).float().mean() > 0.5
    assert abs(dropped.mean().item() - 1) < 0.03
    with pytest.raises(ConfigError):
        scaled_dot_product_attention(q, k, v, dropout_p=1.0, training=True, impl=impl)


@pytest.mark.parametrize("impl", IMPLS)
def test_notes_self_attention(impl):
    torch.manual_seed(3)
    att = SelfAttention(6, 4, 5, impl=impl).double()
    x = torch.randn(2, T, 6, dtype=torch.float64, requires_grad=True)
    q, k, v = x @ att.linear_q.weight.T, x @ att.linear_k.weight.T, x @ att.linear_v.weight.T
    expected = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(4), -1) @ v
    out = att(x)
    assert out.shape == (2, T, 5)
    assert_same_with_grads(out, expected, (x, *att.parameters()))


@pytest.mark.parametrize("impl", IMPLS)
def test_notes_multi_head_self_attention(impl):
    torch.manual_seed(4)
    assert MultiHeadSelfAttention(128, 64, 64, num_heads=8)(torch.randn(2, 10, 128)).shape == (2, 10, 128)
    att = MultiHeadSelfAttention(6, 8, 4, num_heads=2, impl=impl).double()
    x = torch.randn(2, T, 6, dtype=torch.float64, requires_grad=True)
    q, k, v = x @ att.linear_q.weight.T, x @ att.linear_k.weight.T, x @ att.linear_v.weight.T
    heads = [torch.softmax(q[..., 4 * h:4 * h + 4] @ k[..., 4 * h:4 * h + 4].transpose(1, 2) / 2, -1) @ v[..., 2 * h:2 * h + 2]
             for h in range(2)]
    expected = torch.cat(heads, -1) @ att.fc_out.weight.T + att.fc_out.bias
    assert_same_with_grads(att(x), expected, (x, *att.parameters()))
    with pytest.raises(ConfigError, match="multiple of num_heads"):
        MultiHeadSelfAttention(6, 7, 4, num_heads=2)


def twin_mha(impl, bias=True):
    ours = MultiHeadAttention(8, 2, bias=bias, impl=impl).double()
    theirs = nn.MultiheadAttention(8, 2, bias=bias, batch_first=True).double()
    with torch.no_grad():
        for p in ours.parameters():
            p.normal_(0, 0.5)
        theirs.in_proj_weight.copy_(torch.cat([ours.q.weight, ours.kv.weight]))
        theirs.out_proj.weight.copy_(ours.out.weight)
        if bias:
            theirs.in_proj_bias.copy_(torch.cat([ours.q.bias, ours.kv.bias]))
            theirs.out_proj.bias.copy_(ours.out.bias)
    return ours, theirs


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("cross", [False, True])
@pytest.mark.parametrize("bias", [True, False])
def test_multi_head_attention_matches_torch(impl, cross, bias):
    torch.manual_seed(5)
    ours, theirs = twin_mha(impl, bias)
    x = torch.randn(B, T, 8, dtype=torch.float64, requires_grad=True)
    c = torch.randn(B, S, 8, dtype=torch.float64, requires_grad=True) if cross else x
    keep = torch.arange(c.shape[1]) < torch.tensor([S, 2, 4])[:, None]
    inputs = (x, c) if cross else (x,)

    def assert_same(out, expected):
        probe = torch.randn_like(out)
        ours_grads = torch.autograd.grad((out * probe).sum(), (*inputs, ours.q.weight, ours.kv.weight, ours.out.weight))
        theirs_grads = torch.autograd.grad((expected * probe).sum(), (*inputs, theirs.in_proj_weight, theirs.out_proj.weight))
        torch.testing.assert_close(out, expected, **F64)
        ours_grads = (*ours_grads[:-3], torch.cat(ours_grads[-3:-1]), ours_grads[-1])
        for a, b in zip(ours_grads, theirs_grads, strict=True):
            torch.testing.assert_close(a, b, **F64)

    out, _ = ours(x, c if cross else None, key_padding_mask=keep)
    assert_same(out, theirs(x, c, c, key_padding_mask=~keep, need_weights=False)[0])
    if not cross:
        out, _ = ours(x, causal=True)
        assert_same(out, theirs(x, x, x, attn_mask=~torch.ones(T, T, dtype=torch.bool).tril(), need_weights=False)[0])


@pytest.mark.parametrize("impl", IMPLS)
def test_kv_cache_step_by_step_equals_full_causal_forward(impl):
    torch.manual_seed(6)
    self_att, cross_att = MultiHeadAttention(8, 2, impl=impl).double(), MultiHeadAttention(8, 2, impl=impl).double()
    x, c = torch.randn(B, T, 8, dtype=torch.float64), torch.randn(B, S, 8, dtype=torch.float64)
    keep = torch.arange(S) < torch.tensor([S, 2, 4])[:, None]

    def layer(x, caches):
        h, self_cache = self_att(x, causal=True, cache=caches[0])
        out, cross_cache = cross_att(h, c, key_padding_mask=keep, cache=caches[1])
        return out, (self_cache, cross_cache)

    full, _ = layer(x, (None, None))
    out, caches = layer(x[:, :2], (None, None))
    steps = [out]
    for t in range(2, T):
        out, caches = layer(x[:, t:t + 1], caches)
        steps.append(out)
    assert caches[0][0].shape == (B, 2, T, 4) and caches[1][0].shape == (B, 2, S, 4)
    torch.testing.assert_close(torch.cat(steps, 1), full, **F64)


def test_bad_impl_is_a_config_error():
    q = torch.randn(1, 1, 2, 2)
    with pytest.raises(ConfigError, match="impl"):
        scaled_dot_product_attention(q, q, q, impl="cuda")
