import pytest
import torch
import torch.nn.functional as F

from nlplab.data.batching import pad_batch, padded_batch
from nlplab.errors import ConfigError
from nlplab.models.encoder import BertConfig
from nlplab.models.matcher import BiEncoder, MatcherConfig, build_matcher
from nlplab.nn.losses import (
    contrastive_loss,
    info_nce,
    pair_distance,
    triplet_margin_loss,
)

D64 = torch.float64
BERT = {k: v for k, v in vars(BertConfig(vocab_size=30, hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32,
                                         max_position_embeddings=40)).items() if k != "impl"}


def leaves(*shape, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=D64, requires_grad=True)


def assert_same_value_and_grad(ours, theirs, inputs):
    torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-10)
    for a, b in zip(torch.autograd.grad(ours, inputs, retain_graph=True), torch.autograd.grad(theirs, inputs)):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("margin", [0.0, 0.3, -0.2])
def test_contrastive_loss_equals_cosine_embedding_loss(margin):
    a, b = leaves(12, 5, seed=0), leaves(12, 5, seed=1)
    label = torch.tensor([0, 1] * 6)
    reference = torch.nn.CosineEmbeddingLoss(margin=margin)(a, b, 2 * label - 1)
    assert_same_value_and_grad(contrastive_loss(a, b, label, margin), reference, (a, b))


@pytest.mark.parametrize("margin", [0.2, 1.0])
def test_triplet_loss_equals_torch_for_both_distances(margin):
    a, p, n = (leaves(10, 6, seed=s) for s in (2, 3, 4))
    assert_same_value_and_grad(triplet_margin_loss(a, p, n, margin), torch.nn.TripletMarginLoss(margin=margin)(a, p, n), (a, p, n))
    cosine = torch.nn.TripletMarginWithDistanceLoss(distance_function=lambda x, y: 1 - F.cosine_similarity(x, y), margin=margin)
    assert_same_value_and_grad(triplet_margin_loss(a, p, n, margin, distance="cosine"), cosine(a, p, n), (a, p, n))
    with pytest.raises(ConfigError, match="euclidean or cosine"):
        pair_distance(a, p, "manhattan")


@pytest.mark.parametrize("temperature", [0.05, 1.0])
def test_info_nce_is_cross_entropy_over_the_scaled_similarity_matrix(temperature):
    q, k = leaves(6, 8, seed=5), leaves(9, 8, seed=6)
    similarity = F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).T  # (6, 9): row i's positive is column i
    reference = F.cross_entropy(similarity / temperature, torch.arange(6))
    assert_same_value_and_grad(info_nce(q, k, temperature), reference, (q, k))


def token_lists(seed: int, batch: int = 6, vocab: int = 30) -> list[tuple[list[int], list[int]]]:
    g = torch.Generator().manual_seed(seed)
    draw = lambda: torch.randint(2, vocab, (int(torch.randint(2, 7, (1,), generator=g)),), generator=g).tolist()
    return [(draw(), draw()) for _ in range(batch)]


def pair_batch(seed: int | None = None, pairs: list | None = None) -> dict:
    """Padded sides a, b and the joined pair (a then b, segments 0 then 1), as nlplab.train.match batches them."""
    pairs = pairs if pairs is not None else token_lists(seed)
    batch = {"a": padded_batch([a for a, _ in pairs], 0), "b": padded_batch([b for _, b in pairs], 0),
             "pair": padded_batch([a + b for a, b in pairs], 0), "labels": torch.tensor([1, 0, 1, 1, 0, 1])[: len(pairs)]}
    batch["pair"]["segments"] = pad_batch([[0] * len(a) + [1] * len(b) for a, b in pairs], 0)[0]
    return batch


def matcher(model: str, loss: str, impl: str = "fused", dropout: float = 0.1) -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = MatcherConfig(model=model, loss=loss, vocab_size=30, embed_dim=8, hidden_size=8, num_filters=4, dropout=dropout,
                        impl=impl, bert=BERT if model in ("simcse", "cross") else None)
    return build_matcher(cfg).double()


def test_unsupervised_simcse_is_info_nce_between_two_dropout_views():
    model = matcher("bow", "infonce-unsup", dropout=0.3).train()
    batch = pair_batch(7)
    batch["b"], batch["labels"] = batch["a"], torch.ones(6, dtype=torch.long)
    torch.manual_seed(1)
    loss, _ = model(batch)
    torch.manual_seed(1)
    u, v = model.embed(batch["a"]), model.embed(batch["a"])
    assert not torch.allclose(u, v)  # the same sentences, two dropout masks
    reference = F.cross_entropy(F.normalize(u, dim=-1) @ F.normalize(v, dim=-1).T / 0.05, torch.arange(6))
    torch.testing.assert_close(loss, reference, rtol=1e-10, atol=1e-10)


def test_supervised_simcse_uses_non_matching_pairs_as_extra_negatives():
    model = matcher("lstm", "infonce").eval()
    batch = pair_batch(8)
    loss, _ = model(batch)
    u, v = model.embed(batch["a"]), model.embed(batch["b"])
    match = batch["labels"].bool()
    keys = torch.cat([v[match], v[~match]])
    reference = F.cross_entropy(F.normalize(u[match], dim=-1) @ F.normalize(keys, dim=-1).T / 0.05, torch.arange(int(match.sum())))
    torch.testing.assert_close(loss, reference, rtol=1e-10, atol=1e-10)


def test_triplet_negative_is_the_previous_matching_pair():
    model = matcher("cnn", "triplet").eval()
    batch = pair_batch(9)
    loss, scores = model(batch)
    u, v = model.embed(batch["a"]), model.embed(batch["b"])
    torch.testing.assert_close(scores, F.cosine_similarity(u, v))
    m = batch["labels"].bool()
    expected = (0.5 + (1 - F.cosine_similarity(u[m], v[m])) - (1 - F.cosine_similarity(u[m], v[m].roll(1, 0)))).clamp_min(0).mean()
    torch.testing.assert_close(loss, expected)


MODELS = [("bow", "contrastive"), ("cnn", "ce"), ("lstm", "contrastive"), ("simcse", "infonce"), ("esim", "ce"), ("cross", "ce")]


@pytest.mark.parametrize("model, loss", MODELS)
def test_padding_does_not_change_a_pair_score(model, loss):
    net = matcher(model, loss).eval()
    pairs = token_lists(10)
    _, scores = net({k: v for k, v in pair_batch(pairs=pairs).items() if k != "labels"})
    assert scores.shape == (6,)
    for row in (0, 3):
        alone = {k: v for k, v in pair_batch(pairs=pairs[row : row + 1]).items() if k != "labels"}
        torch.testing.assert_close(net(alone)[1], scores[row : row + 1], rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("model, loss", MODELS)
def test_fused_and_manual_impls_agree(model, loss):
    fused, manual = matcher(model, loss).eval(), matcher(model, loss, impl="manual").eval()
    manual.load_state_dict(fused.state_dict())
    batch = pair_batch(11)
    (loss_f, s_f), (loss_m, s_m) = fused(batch), manual(batch)
    torch.testing.assert_close(s_m, s_f, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(loss_m, loss_f, rtol=1e-9, atol=1e-9)


def test_config_is_checked():
    with pytest.raises(ConfigError, match="unknown matching model 'bimpm'"):
        matcher("bimpm", "ce")
    with pytest.raises(ConfigError, match="use --loss ce"):
        matcher("esim", "contrastive")
    with pytest.raises(ConfigError, match="unknown matching loss"):
        matcher("lstm", "hinge")
    with pytest.raises(ConfigError, match="needs its encoder shape"):
        build_matcher(MatcherConfig(model="cross", loss="ce", vocab_size=30))
    assert isinstance(matcher("simcse", "infonce-unsup"), BiEncoder)
