"""Block-sparse attention against dense attention with the pattern's boolean mask, forward and gradient."""

import math

import pytest
import torch

from nlplab.errors import ConfigError
from nlplab.nn.sparse_attention import pattern_mask, sparse_attention

F64 = dict(rtol=1e-10, atol=1e-10)


def dense_attention(q, k, v, allowed):
    """softmax(Q Kᵀ/√d + M) V with M = 0 where `allowed` (broadcast to (B, H, n, n)) and −∞ elsewhere.
    Rows of padded queries allow every key in the tests below, so the reference stays finite there."""
    scores = (q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])).masked_fill(~allowed, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


def brute_force_mask(n, kind, window, stride, causal):
    """The pattern written out entry by entry from its definition."""
    mask = torch.zeros(n, n, dtype=torch.bool)
    for i in range(n):
        for j in range(n):
            local = 0 <= i - j < window if causal else abs(i - j) < window
            summary = kind == "strided" and j % stride == stride - 1 and (j <= i or not causal)
            mask[i, j] = local or summary
    return mask


@pytest.mark.parametrize("kind,stride", [("local", None), ("strided", 3), ("strided", 5)])
@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("n,window", [(9, 1), (12, 4), (17, 4), (10, 16)])
def test_pattern_mask_matches_definition(kind, stride, causal, n, window):
    assert torch.equal(pattern_mask(n, kind, window, stride, causal), brute_force_mask(n, kind, window, stride, causal))


@pytest.mark.parametrize("kind,stride", [("local", None), ("strided", 3), ("strided", 8)])
@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("n,window,block_size", [(16, 4, None), (23, 5, None), (19, 6, 4), (7, 12, None), (30, 3, 7),
                                                 (11, 1, None)])
@pytest.mark.parametrize("padded", [False, True])
def test_sparse_equals_masked_full_attention(kind, stride, causal, n, window, block_size, padded):
    torch.manual_seed(n * 100 + window)
    q, k, v = (torch.randn(2, 3, n, 8, dtype=torch.float64) for _ in range(3))
    lengths = torch.tensor([n, max(1, n - 5)]) if padded else torch.tensor([n, n])
    real = torch.arange(n) < lengths.unsqueeze(1)
    rows = real[:, None, :, None]
    allowed = pattern_mask(n, kind, window, stride, causal) & real[:, None, None, :] | ~rows
    ours = [t.clone().requires_grad_() for t in (q, k, v)]
    ref = [t.clone().requires_grad_() for t in (q, k, v)]
    out = sparse_attention(*ours, kind=kind, window=window, stride=stride, causal=causal,
                           key_padding_mask=real if padded else None, block_size=block_size)
    expected = dense_attention(*ref, allowed)
    torch.testing.assert_close(out * rows, expected.masked_fill(~rows, 0.0), **F64)
    probe = torch.randn_like(out) * rows
    (out * probe).sum().backward()
    (expected.masked_fill(~rows, 0.0) * probe).sum().backward()
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a.grad, b.grad, **F64)


def test_matches_torch_sdpa_with_boolean_mask():
    torch.manual_seed(1)
    q, k, v = (torch.randn(1, 2, 40, 16, dtype=torch.float64) for _ in range(3))
    mask = pattern_mask(40, "strided", 6, 7, causal=True)
    expected = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    torch.testing.assert_close(sparse_attention(q, k, v, "strided", 6, 7, causal=True), expected, **F64)


def test_query_without_any_key_gets_zeros_and_finite_gradients():
    torch.manual_seed(2)
    q, k, v = (torch.randn(2, 1, 10, 4, dtype=torch.float64, requires_grad=True) for _ in range(3))
    real = torch.ones(2, 10, dtype=torch.bool)
    real[1] = False
    out = sparse_attention(q, k, v, "local", 3, causal=False, key_padding_mask=real)
    assert out[1].abs().sum() == 0
    out.sum().backward()
    assert all(torch.isfinite(t.grad).all() for t in (q, k, v))


@pytest.mark.parametrize("kwargs", [dict(kind="dilated"), dict(window=0), dict(kind="strided"),
                                    dict(kind="strided", stride=0), dict(block_size=-2)])
def test_bad_pattern_raises_config_error(kwargs):
    q = torch.randn(1, 1, 8, 4)
    with pytest.raises(ConfigError):
        sparse_attention(q, q, q, **{"window": 4, **kwargs})


def test_bad_shapes_raise_config_error():
    q = torch.randn(1, 1, 8, 4)
    with pytest.raises(ConfigError, match="share one shape"):
        sparse_attention(q, q[:, :, :5], q)
    with pytest.raises(ConfigError, match="key_padding_mask"):
        sparse_attention(q, q, q, key_padding_mask=torch.ones(1, 5, dtype=torch.bool))
