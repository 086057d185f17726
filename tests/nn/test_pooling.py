"""Masked pooling against explicit per-row loops over the real tokens, forward and gradient; the last states of a
bidirectional LSTM against torch.nn.LSTM's h_n on packed sequences."""

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from nlplab.errors import ConfigError
from nlplab.models.classifier import ClassifierConfig, TextClassifier
from nlplab.nn.pooling import bidirectional_last, concat_pool, masked_max_pool, masked_mean_pool

F64 = dict(rtol=1e-10, atol=1e-10)
REFERENCES = {masked_mean_pool: lambda tokens: tokens.mean(0), masked_max_pool: lambda tokens: tokens.max(0).values}


def batch(scattered: bool, fill: float):
    """x (5, 8, 4) in float64 with `fill` at padded positions, and its mask (at least one real token per row)."""
    torch.manual_seed(0)
    x = torch.randn(5, 8, 4, dtype=torch.float64)
    if scattered:
        mask = torch.rand(5, 8) < 0.5
        mask[:, 3] = True
    else:
        mask = torch.arange(8) < torch.tensor([8, 1, 3, 5, 2]).unsqueeze(1)
    return x.masked_fill(~mask.unsqueeze(-1), fill), mask


@pytest.mark.parametrize("pool", [masked_mean_pool, masked_max_pool])
@pytest.mark.parametrize("scattered", [False, True])
@pytest.mark.parametrize("fill", [0.0, 1e9, float("inf"), float("nan")])
def test_pool_matches_per_row_loop(pool, scattered, fill):
    x, mask = batch(scattered, fill)
    x_ours, x_ref = x.clone().requires_grad_(), x.clone().requires_grad_()
    out = pool(x_ours, mask)
    expected = torch.stack([REFERENCES[pool](x_ref[b][mask[b]]) for b in range(len(x))])
    torch.testing.assert_close(out, expected, **F64)
    probe = torch.randn_like(out)
    (out * probe).sum().backward()
    (expected * probe).sum().backward()
    torch.testing.assert_close(x_ours.grad, x_ref.grad, **F64)
    assert x_ours.grad[~mask].abs().sum() == 0


@pytest.mark.parametrize("pool", [masked_mean_pool, masked_max_pool])
def test_row_without_tokens_pools_to_zero(pool):
    x = torch.randn(2, 3, 4, dtype=torch.float64)
    mask = torch.tensor([[True, True, False], [False, False, False]])
    out = pool(x, mask)
    assert torch.equal(out[1], torch.zeros(4, dtype=torch.float64))
    torch.testing.assert_close(out[0], REFERENCES[pool](x[0, :2]), **F64)


def test_bidirectional_last_is_the_final_state_of_each_direction():
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(3, 4, batch_first=True, bidirectional=True).double()
    lengths = torch.tensor([6, 2, 4, 1])
    x = torch.randn(4, 6, 3, dtype=torch.float64)
    packed, (h_n, _) = lstm(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))
    outputs, _ = pad_packed_sequence(packed, batch_first=True, padding_value=float("nan"))
    torch.testing.assert_close(bidirectional_last(outputs, lengths), torch.cat([h_n[0], h_n[1]], -1), **F64)
    mask = torch.arange(6) < lengths.unsqueeze(1)
    pooled = concat_pool(outputs, mask, lengths)
    assert pooled.shape == (4, 24) and not pooled.isnan().any()
    torch.testing.assert_close(pooled[:, 16:], masked_mean_pool(outputs, mask), **F64)


@pytest.mark.parametrize("pooling", ["max", "mean", "concat"])
def test_recurrent_classifier_pools_as_asked(pooling):
    net = TextClassifier(ClassifierConfig(model="gru", vocab_size=20, embed_dim=6, hidden_size=5, pooling=pooling)).eval()
    assert net.head.in_features == (30 if pooling == "concat" else 10)
    ids = torch.randint(1, 20, (3, 7))
    lengths = torch.tensor([7, 4, 1])
    mask = torch.arange(7) < lengths.unsqueeze(1)
    _, logits = net({"ids": ids, "mask": mask, "lengths": lengths})
    _, alone = net({"ids": ids[1:2, :4], "mask": mask[1:2, :4], "lengths": lengths[1:2]})
    torch.testing.assert_close(logits[1:2], alone)
    net.train()
    _, single = net({"ids": ids[:1], "mask": mask[:1], "lengths": lengths[:1]})
    assert torch.isfinite(single).all()


def test_pooling_is_for_recurrent_encoders():
    with pytest.raises(ConfigError, match="pooling"):
        TextClassifier(ClassifierConfig(model="bow", vocab_size=20, pooling="concat"))
    with pytest.raises(ConfigError, match="unknown pooling"):
        TextClassifier(ClassifierConfig(model="lstm", vocab_size=20, pooling="last"))
