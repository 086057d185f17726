import pytest
import torch

from nlplab.errors import ConfigError
from nlplab.models.classifier import ClassifierConfig, TextClassifier
from nlplab.optim import build_optimizer
from nlplab.optim.ulmfit import discriminative_groups, unfreeze_top


def classifier(model: str, **kw) -> TextClassifier:
    bert = {"vocab_size": 30, "hidden_size": 8, "num_layers": 2, "num_heads": 2, "intermediate_size": 16,
            "max_position_embeddings": 12} if model == "transformer" else None
    return TextClassifier(ClassifierConfig(model=model, vocab_size=30, embed_dim=8, hidden_size=8, bert=bert, **kw))


@pytest.mark.parametrize("model,kw,sizes", [("lstm", {"layers": 2}, 4), ("bow", {"ngrams": 2, "ngram_buckets": 50}, 3),
                                            ("textcnn", {}, 3), ("transformer", {}, 4),
                                            ("gru", {"pooling": "concat"}, 3)])
def test_layer_groups_cover_every_parameter_once_bottom_first(model, kw, sizes):
    net = classifier(model, **kw)
    groups = net.layer_groups()
    assert len(groups) == sizes
    flat = [id(p) for g in groups for p in g]
    assert len(flat) == len(set(flat)) and set(flat) == {id(p) for p in net.parameters()}
    assert groups[-1][-2] is net.head.weight
    if model == "gru":
        assert groups[-1][0] is net.pool_norm.weight
    if model == "lstm":
        assert {p.shape for p in groups[2]} == {net.encoder.weight_ih_l1.shape, net.encoder.weight_hh_l1.shape,
                                                net.encoder.bias_ih_l1.shape}
        assert len(groups[1]) == len(groups[2]) == 8


def test_discriminative_rates_fall_by_the_factor_per_layer_below_the_top():
    net = classifier("lstm", layers=2)
    groups = discriminative_groups(net.layer_groups(), lr=1e-2)
    assert [g["lr"] for g in groups] == pytest.approx([1e-2 / 2.6**3, 1e-2 / 2.6**2, 1e-2 / 2.6, 1e-2])
    optimizer = build_optimizer("adam", groups, lr=1e-2)
    assert [g["lr"] for g in optimizer.param_groups] == [g["lr"] for g in groups]
    with pytest.raises(ConfigError, match="factor"):
        discriminative_groups(net.layer_groups(), 1e-2, factor=0.5)


@pytest.mark.parametrize("impl", ["manual", "fused"])
def test_sgd_steps_each_group_with_its_rate(impl):
    layers = [torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(2))]
    optimizer = build_optimizer("sgd", discriminative_groups([[layers[0]], [layers[1]]], lr=0.26, factor=2.6), lr=0.26, impl=impl)
    for p in layers:
        p.grad = torch.ones(2)
    optimizer.step()
    torch.testing.assert_close(layers[0].detach(), torch.full((2,), 0.9))
    torch.testing.assert_close(layers[1].detach(), torch.full((2,), 0.74))


def test_gradual_unfreezing_opens_one_more_group_per_epoch_and_frozen_groups_stay_put():
    torch.manual_seed(0)
    net = classifier("lstm", layers=2)
    groups = net.layer_groups()
    optimizer = build_optimizer("adam", net.parameters(), lr=1e-2)
    batch = {"ids": torch.randint(1, 30, (4, 6)), "mask": torch.ones(4, 6, dtype=torch.bool),
             "lengths": torch.full((4,), 6), "labels": torch.tensor([0, 1, 0, 1])}
    for epoch, learning in [(1, 1), (2, 2), (3, 3), (4, 4), (9, 4)]:
        assert unfreeze_top(groups, epoch) == learning
        before = [[p.detach().clone() for p in g] for g in groups]
        optimizer.zero_grad()
        net(batch)[0].backward()
        optimizer.step()
        moved = [any(not torch.equal(p, b) for p, b in zip(g, bg)) for g, bg in zip(groups, before)]
        assert moved == [depth >= 4 - learning for depth in range(4)]
    with pytest.raises(ConfigError, match="from 1"):
        unfreeze_top(groups, 0)
