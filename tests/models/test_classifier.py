import pytest
import torch

from nlplab.errors import ConfigError
from nlplab.models import MODELS, ClassifierConfig, TextClassifier
from nlplab.models.classifier import HASH_PRIME, hashed_ngrams


def batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([7, 3, 1, 5])
    ids = torch.randint(2, 50, (4, 7), generator=g)
    mask = torch.arange(7) < lengths[:, None]
    return {"ids": ids.masked_fill(~mask, 0), "mask": mask, "lengths": lengths, "labels": torch.tensor([0, 2, 1, 2])}


TINY_BERT = dict(vocab_size=50, hidden_size=8, num_layers=2, num_heads=2, intermediate_size=16, max_position_embeddings=16, dropout=0.0)
VARIANTS = [dict(model=m) for m in MODELS if m != "transformer"] + [
    dict(model="bow", ngrams=3, ngram_buckets=97), dict(model="transformer", bert=TINY_BERT)]


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: "-".join(str(x) for x in v.values() if not isinstance(x, dict)))
def test_manual_path_equals_fused_path(variant):
    """The same weights give the same loss, logits and gradients whichever implementation runs them."""
    torch.manual_seed(0)
    cfg = dict(**variant, vocab_size=50, num_classes=3, embed_dim=8, hidden_size=6, layers=2, num_filters=4, dropout=0.0)
    fused = TextClassifier(ClassifierConfig(**cfg, impl="fused")).double()
    manual = TextClassifier(ClassifierConfig(**cfg, impl="manual")).double()
    manual.load_state_dict(fused.state_dict())
    results = []
    for net in (fused, manual):
        loss, logits = net(batch())
        loss.backward()
        results.append((loss, logits, {n: p.grad for n, p in net.named_parameters()}))
    (l1, z1, g1), (l2, z2, g2) = results
    torch.testing.assert_close(z1, z2, atol=1e-10, rtol=1e-8)
    torch.testing.assert_close(l1, l2, atol=1e-10, rtol=1e-8)
    for name in g1:
        torch.testing.assert_close(g1[name], g2[name], atol=1e-10, rtol=1e-8, msg=name)


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: "-".join(str(x) for x in v.values() if not isinstance(x, dict)))
def test_padding_does_not_change_predictions(variant):
    """A sentence's logits do not depend on how much padding its batch carries."""
    torch.manual_seed(0)
    net = TextClassifier(ClassifierConfig(**variant, vocab_size=50, num_classes=3, embed_dim=8, hidden_size=6, num_filters=4)).double().eval()
    b = batch()
    _, batched = net(b)
    for row, n in enumerate(b["lengths"].tolist()):
        alone = {"ids": b["ids"][row : row + 1, :n], "mask": b["mask"][row : row + 1, :n], "lengths": b["lengths"][row : row + 1]}
        torch.testing.assert_close(net(alone)[1][0], batched[row], atol=1e-10, rtol=1e-8)


def test_hashed_ngrams_follow_the_formula():
    ids = torch.tensor([[3, 1, 4, 1], [5, 9, 0, 0]])
    mask = torch.tensor([[True] * 4, [True, True, False, False]])
    h, m = hashed_ngrams(ids, mask, 2, 1000)
    expected = [[((2 * HASH_PRIME + a) * HASH_PRIME + b) % 1000 for a, b in zip(row, row[1:])] for row in ids.tolist()]
    assert h.tolist() == expected and m.tolist() == [[True] * 3, [True, False, False]]
    assert hashed_ngrams(ids[:, :1], mask[:, :1], 2, 1000)[0].shape == (2, 0)


def test_bad_model_or_impl():
    with pytest.raises(ConfigError, match="unknown model"):
        TextClassifier(ClassifierConfig(model="bert", vocab_size=5))
    with pytest.raises(ConfigError, match="unknown impl"):
        TextClassifier(ClassifierConfig(vocab_size=5, impl="cuda"))
    with pytest.raises(ConfigError, match="needs its encoder shape"):
        TextClassifier(ClassifierConfig(model="transformer", vocab_size=5))
    with pytest.raises(ConfigError, match="bow model only"):
        TextClassifier(ClassifierConfig(model="lstm", vocab_size=5, ngrams=2))


@pytest.mark.parametrize("model", ["bow", "textcnn", "lstm"])
def test_embedding_dropout_is_its_own(model):
    """embed_dropout drops embeddings only (null: the head's rate): with it at 0 the sentence vectors of a model in
    training mode are deterministic however high the head's dropout."""
    ids = torch.randint(1, 50, (4, 7))
    args = (ids, torch.ones_like(ids, dtype=torch.bool), torch.full((4,), 7))
    torch.manual_seed(0)
    own = TextClassifier(ClassifierConfig(model=model, vocab_size=50, num_classes=2, dropout=0.9, embed_dropout=0.0)).train()
    assert torch.equal(own.encode(*args), own.encode(*args))
    shared = TextClassifier(ClassifierConfig(model=model, vocab_size=50, num_classes=2, dropout=0.9)).train()
    assert not torch.equal(shared.encode(*args), shared.encode(*args))


def test_class_weights_weigh_the_loss_as_torch():
    torch.manual_seed(0)
    weights = (0.5, 2.0, 1.0)
    for impl in ("fused", "manual"):
        net = TextClassifier(ClassifierConfig(model="bow", vocab_size=50, num_classes=3, class_weights=weights, impl=impl))
        b = batch()
        loss, logits = net.eval()(b)
        torch.testing.assert_close(loss, torch.nn.functional.cross_entropy(logits, b["labels"], weight=torch.tensor(weights)))
