"""Megatron tensor parallelism by hand: the parallel MLP and self-attention give the unsplit layers' outputs and
gradients (float64); one block all-reduces its activation twice forward and twice backward; a GPT split 2 and 4
ways trains step for step as the unsplit one."""

import copy
from types import SimpleNamespace

import pytest
import torch

from nlplab.dist.collectives import Group
from nlplab.dist.launch import spawn
from nlplab.dist.tensor_parallel import (
    ColumnParallelLinear,
    ParallelSelfAttention,
    RowParallelLinear,
    full_state_dict,
    parallel_feed_forward,
    tensor_parallel_,
)
from nlplab.errors import ConfigError
from nlplab.nn.attention import MultiHeadAttention
from nlplab.nn.transformer import FeedForward, TransformerBlock
from nlplab.optim import Adam

B, T, D, HEADS, FF = 3, 5, 8, 4, 16
TOL = {"rtol": 1e-10, "atol": 1e-12}


def dense_grads(module, parallel):
    """{name: gradient of the dense tensor} rebuilt from this rank's pieces of `parallel`."""
    grads = {}
    for name, sub in parallel.named_modules():
        for key in ("weight", "bias"):
            p = getattr(sub, key, None)
            if isinstance(p, torch.nn.Parameter) and p.grad is not None:
                split = isinstance(sub, (ColumnParallelLinear, RowParallelLinear))
                grads[f"{name}.{key}".lstrip(".")] = sub.full(p.grad) if split else p.grad
    return grads


def layers_on_every_rank() -> dict:
    group = Group()
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(B, T, D, generator=generator, dtype=torch.float64)
    upstream = torch.randn(B, T, D, generator=generator, dtype=torch.float64)
    torch.manual_seed(0)
    ffn = FeedForward(D, FF, "gelu_tanh").double()
    attn = MultiHeadAttention(D, HEADS).double()
    keep = torch.arange(T) < torch.tensor([T, 3, 4])[:, None]
    out = {}
    for name, dense, make, call in (
        ("mlp", ffn, lambda m: parallel_feed_forward(copy.deepcopy(m), group), lambda m, h: m(h)),
        ("attention", attn, lambda m: ParallelSelfAttention(m, group),
         lambda m, h: m(h, key_padding_mask=keep, causal=True)[0]),
    ):
        parallel = make(dense)
        results = []
        for module in (dense, parallel):
            h = x.clone().requires_grad_()
            group.reset_counts()
            y = call(module, h)
            forward_messages = group.messages_sent
            (y * upstream).sum().backward()
            results.append((y.detach(), h.grad, {n: p.grad for n, p in module.named_parameters()},
                            forward_messages, group.messages_sent - forward_messages))
        out[name] = (results[0], results[1][:2], dense_grads(dense, parallel), results[1][3:])
    block = TransformerBlock(D, HEADS, FF, dropout=0.0, norm="pre").double()
    tensor_parallel_(block, group)
    group.reset_counts()
    y, _ = block(x.clone().requires_grad_(), causal=True)
    out["block_forward"] = (group.messages_sent, group.bytes_sent)
    group.reset_counts()
    y.sum().backward()
    out["block_backward"] = (group.messages_sent, group.bytes_sent)
    cached = ParallelSelfAttention(attn, group)
    full, _ = cached(x, causal=True)
    first, cache = cached(x[:, :3], causal=True)
    rest, _ = cached(x[:, 3:], causal=True, cache=cache)
    out["cache"] = (full, torch.cat([first, rest], 1))
    return out


@pytest.mark.parametrize("world", [2, 4])
def test_parallel_layers_equal_the_unsplit_ones(world):
    for rank in spawn(layers_on_every_rank, world):
        for name in ("mlp", "attention"):
            (y, x_grad, grads, _, _), (y_tp, x_grad_tp), grads_tp, (fwd, bwd) = rank[name]
            torch.testing.assert_close(y_tp, y, **TOL)
            torch.testing.assert_close(x_grad_tp, x_grad, **TOL)
            assert set(grads_tp) == set(grads)
            for key in grads:
                torch.testing.assert_close(grads_tp[key], grads[key], **TOL)
            per_all_reduce = 2 * (world - 1)  # ring messages
            assert (fwd, bwd) == (per_all_reduce, per_all_reduce), "g forward, f backward: one all-reduce each"
        ring_bytes = 2 * (world - 1) / world * B * T * D * 8
        assert rank["block_forward"] == (2 * 2 * (world - 1), 2 * ring_bytes)
        assert rank["block_backward"] == (2 * 2 * (world - 1), 2 * ring_bytes)
        torch.testing.assert_close(*rank["cache"], **TOL)


def train_tensor_parallel(gpt) -> float:
    reference = gpt.train_single(lambda params: Adam(params, lr=0.01), n_head=4)
    model = tensor_parallel_(gpt.tiny(n_head=4), Group())
    optimizer = Adam(model.parameters(), lr=0.01)
    for ids in gpt.batches():
        optimizer.zero_grad()
        gpt.loss(model, ids).backward()
        optimizer.step()
    return gpt.max_difference(full_state_dict(model), reference)


@pytest.mark.parametrize("world", [2, 4])
def test_gpt_trains_step_for_step_as_unsplit(world, gpt):
    assert max(spawn(train_tensor_parallel, world, gpt)) < 1e-10


def test_sizes_must_divide():
    group = SimpleNamespace(size=3, rank=0)
    with pytest.raises(ConfigError, match="number of attention heads = 4 is not divisible by the tensor-parallel size 3"):
        ParallelSelfAttention(MultiHeadAttention(D, HEADS), group)
    with pytest.raises(ConfigError, match="out_features = 16 is not divisible"):
        parallel_feed_forward(FeedForward(D, FF), group)
    with pytest.raises(ConfigError, match="no cross-attention"):
        tensor_parallel_(TransformerBlock(D, HEADS, FF, cross_attention=True), SimpleNamespace(size=2, rank=0))
