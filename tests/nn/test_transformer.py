"""Transformer blocks against torch.nn.TransformerEncoderLayer / TransformerDecoderLayer (post-LN and pre-LN, GELU,
padding and causal masks) in float64, forward and gradients, fused and manual; cached decoding against the full
forward."""

import pytest
import torch
from torch import nn

from nlplab.errors import ConfigError
from nlplab.nn.transformer import TransformerBlock

F64 = {"rtol": 1e-9, "atol": 1e-9}
IMPLS = ["fused", "manual"]
D, HEADS, FF, B, T, S = 8, 2, 16, 3, 5, 6


def copy_attention(theirs, ours):
    theirs.in_proj_weight.copy_(torch.cat([ours.q.weight, ours.kv.weight]))
    theirs.in_proj_bias.copy_(torch.cat([ours.q.bias, ours.kv.bias]))
    theirs.out_proj.weight.copy_(ours.out.weight)
    theirs.out_proj.bias.copy_(ours.out.bias)


def twins(norm, cross, impl):
    torch.manual_seed(0)
    ours = TransformerBlock(D, HEADS, FF, dropout=0.0, norm=norm, cross_attention=cross, impl=impl).double()
    layer = nn.TransformerDecoderLayer if cross else nn.TransformerEncoderLayer
    theirs = layer(D, HEADS, FF, dropout=0.0, activation="gelu", batch_first=True, norm_first=norm == "pre").double()
    with torch.no_grad():
        for p in ours.parameters():
            p.normal_(0, 0.5)
        copy_attention(theirs.self_attn, ours.attn)
        norms = [ours.attn_norm, ours.ffn_norm]
        if cross:
            copy_attention(theirs.multihead_attn, ours.cross_attn)
            norms = [ours.attn_norm, ours.cross_norm, ours.ffn_norm]
        for theirs_norm, ours_norm in zip([theirs.norm1, theirs.norm2, getattr(theirs, "norm3", None)], norms):
            theirs_norm.load_state_dict(ours_norm.state_dict())
        theirs.linear1.load_state_dict(ours.ffn.fc1.state_dict())
        theirs.linear2.load_state_dict(ours.ffn.fc2.state_dict())
    return ours, theirs


def param_grads(module, loss):
    return torch.autograd.grad(loss, list(module.parameters()))


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("norm", ["post", "pre"])
@pytest.mark.parametrize("cross", [False, True])
def test_block_matches_torch_layer(norm, cross, impl):
    ours, theirs = twins(norm, cross, impl)
    x = torch.randn(B, T, D, dtype=torch.float64, requires_grad=True)
    c = torch.randn(B, S, D, dtype=torch.float64, requires_grad=True)
    keep = torch.arange(T) < torch.tensor([T, 2, 4])[:, None]
    c_keep = torch.arange(S) < torch.tensor([3, S, 1])[:, None]
    causal = ~torch.ones(T, T, dtype=torch.bool).tril()
    if cross:
        out, _ = ours(x, key_padding_mask=keep, causal=True, context=c, context_mask=c_keep)
        expected = theirs(x, c, tgt_mask=causal, tgt_key_padding_mask=~keep, memory_key_padding_mask=~c_keep)
    else:
        out, _ = ours(x, key_padding_mask=keep)
        expected = theirs(x, src_key_padding_mask=~keep)
    torch.testing.assert_close(out, expected, **F64)
    probe = torch.randn_like(out)
    inputs = (x, c) if cross else (x,)
    grads_ours = torch.autograd.grad((out * probe).sum(), [*inputs, *ours.parameters()])
    grads_theirs = torch.autograd.grad((expected * probe).sum(), [*inputs, *theirs.parameters()])
    for a, b in zip(grads_ours[:len(inputs)], grads_theirs[:len(inputs)]):
        torch.testing.assert_close(a, b, **F64)
    theirs_by_name = dict(zip([n for n, _ in theirs.named_parameters()], grads_theirs[len(inputs):]))
    ours_by_name = dict(zip([n for n, _ in ours.named_parameters()], grads_ours[len(inputs):]))
    torch.testing.assert_close(ours_by_name["ffn.fc1.weight"], theirs_by_name["linear1.weight"], **F64)
    torch.testing.assert_close(torch.cat([ours_by_name["attn.q.weight"], ours_by_name["attn.kv.weight"]]),
                               theirs_by_name["self_attn.in_proj_weight"], **F64)
    torch.testing.assert_close(ours_by_name["attn_norm.weight"], theirs_by_name["norm1.weight"], **F64)


@pytest.mark.parametrize("norm", ["post", "pre"])
def test_cached_decoding_equals_full_forward_and_impls_agree(norm):
    x, c = torch.randn(B, T, D, dtype=torch.float64), torch.randn(B, S, D, dtype=torch.float64)
    fused, _ = twins(norm, True, "fused")
    manual, _ = twins(norm, True, "manual")
    full, _ = fused(x, causal=True, context=c)
    torch.testing.assert_close(manual(x, causal=True, context=c)[0], full, **F64)
    cache, steps = None, []
    for t in range(T):
        out, cache = fused(x[:, t:t + 1], causal=True, context=c, cache=cache)
        steps.append(out)
    torch.testing.assert_close(torch.cat(steps, 1), full, **F64)


def test_block_options_are_checked():
    with pytest.raises(ConfigError, match="norm"):
        TransformerBlock(D, HEADS, FF, norm="middle")
    with pytest.raises(ConfigError, match="context"):
        TransformerBlock(D, HEADS, FF, cross_attention=True)(torch.randn(1, 2, D))


def test_moe_block_is_attention_then_mixture_of_experts():
    """With experts the FFN sublayer is x + MoE(LN(x)) and the block keeps the MoE's balance loss."""
    torch.manual_seed(6)
    block = TransformerBlock(D, HEADS, FF, dropout=0.0, norm="pre", experts=4, top_k=2).double()
    x = torch.randn(B, T, D, dtype=torch.float64)
    out, _ = block(x, causal=True)
    h = x + block.attn(block.attn_norm(x), causal=True)[0]
    y, aux = block.ffn(block.ffn_norm(h))
    torch.testing.assert_close(out, h + y, **F64)
    torch.testing.assert_close(block.aux_loss, aux, **F64)
    dense = TransformerBlock(D, HEADS, FF, dropout=0.0).double()
    dense(x)
    assert dense.aux_loss.item() == 0.0
