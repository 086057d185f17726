import random

import pytest
import torch

from nlplab.errors import ConfigError
from nlplab.models.word2vec import (
    Word2Vec,
    Word2VecConfig,
    build_vocab,
    cbow_contexts,
    negative_sampling_grads,
    negative_sampling_loss,
    noise_distribution,
    skipgram_pairs,
    subsample_keep,
    train_word2vec,
)


def test_negative_sampling_gradients_equal_autograd():
    g = torch.Generator().manual_seed(0)
    h, u_t, u_n = (torch.randn(*shape, generator=g, dtype=torch.float64, requires_grad=True)
                   for shape in ((6, 5), (6, 5), (6, 4, 5)))
    loss = negative_sampling_loss(h, u_t, u_n)
    ours = negative_sampling_grads(h.detach(), u_t.detach(), u_n.detach())
    torch.testing.assert_close(ours[0], loss.detach(), rtol=0, atol=1e-12)
    weights = torch.rand(6, generator=g, dtype=torch.float64)
    expected = torch.autograd.grad((loss * weights).sum(), (h, u_t, u_n))
    for mine, theirs in zip(ours[1:], expected):
        torch.testing.assert_close(mine * (weights.view(-1, *[1] * (mine.dim() - 1))), theirs, rtol=0, atol=1e-12)


def tiny_model(algo: str) -> Word2Vec:
    model = Word2Vec(Word2VecConfig(algo=algo, dim=4, min_count=1), [f"w{i}" for i in range(7)], [9, 7, 5, 4, 3, 2, 1]).double()
    with torch.no_grad():
        model.output.normal_(generator=torch.Generator().manual_seed(1))
    return model


@pytest.mark.parametrize("algo", ["skipgram", "cbow"])
def test_table_gradients_equal_autograd_with_repeated_rows(algo):
    model = tiny_model(algo)
    g = torch.Generator().manual_seed(2)
    targets, noise = torch.tensor([0, 1, 1, 3, 6]), torch.randint(0, 7, (5, 3), generator=g)
    if algo == "skipgram":
        inputs, mask = torch.tensor([2, 2, 5, 0, 1]), None
    else:
        inputs = torch.randint(0, 7, (5, 4), generator=g)
        mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1], [0, 1, 0, 0], [1, 0, 1, 0], [1, 1, 1, 0]], dtype=torch.bool)
    loss = model.loss(inputs, targets, noise, mask)
    expected = torch.autograd.grad(loss, (model.input, model.output))
    value, (in_rows, in_vals), (out_rows, out_vals) = model.table_grads(inputs, targets, noise, mask)
    torch.testing.assert_close(value, loss.detach(), rtol=0, atol=1e-12)
    for (rows, vals), theirs in zip(((in_rows, in_vals), (out_rows, out_vals)), expected):
        torch.testing.assert_close(torch.zeros_like(theirs).index_add_(0, rows, vals), theirs, rtol=0, atol=1e-12)


def test_sgd_step_moves_the_tables_against_the_summed_gradient():
    model = tiny_model("skipgram")
    inputs, targets, noise = torch.tensor([2, 5]), torch.tensor([0, 1]), torch.tensor([[3, 4], [6, 6]])
    before = [p.detach().clone() for p in (model.input, model.output)]
    grads = torch.autograd.grad(model.loss(inputs, targets, noise) * 2, (model.input, model.output))
    model.sgd_step(inputs, targets, noise, None, lr=0.1)
    for p, b, g in zip((model.input, model.output), before, grads):
        torch.testing.assert_close(p.detach(), b - 0.1 * g, rtol=0, atol=1e-12)


def test_subsampling_and_noise_follow_their_formulas():
    counts = torch.tensor([1000, 100, 10, 1])
    f = counts.double() / 1111
    torch.testing.assert_close(subsample_keep(counts, 1e-2), (1e-2 / f).sqrt().clamp(max=1), rtol=0, atol=1e-15)
    assert subsample_keep(counts, 0).tolist() == [1.0] * 4
    p = counts.double() ** 0.75
    torch.testing.assert_close(noise_distribution(counts), p / p.sum(), rtol=0, atol=1e-15)


def test_an_epoch_keeps_frequent_words_at_the_subsampling_rate():
    model = Word2Vec(Word2VecConfig(sample=1e-2, window=1, min_count=1), ["a", "b"], [90_000, 10_000])
    ids = torch.tensor([0] * 90_000 + [1] * 10_000)[torch.randperm(100_000, generator=torch.Generator().manual_seed(0))]
    targets, _, _ = model.epoch_examples(ids, torch.arange(100_000) // 10, torch.Generator().manual_seed(1))
    kept_a = (targets == 0).sum() / (targets == 1).sum()   # every kept token is a target of its neighbours
    expected = 9 * float(subsample_keep(model.counts, 1e-2)[0] / subsample_keep(model.counts, 1e-2)[1])
    assert abs(float(kept_a) - expected) / expected < 0.05


def test_pairs_and_contexts_stay_in_the_window_and_the_sentence():
    ids, sentence = torch.arange(10, 17), torch.tensor([0, 0, 0, 0, 1, 1, 1])
    window = torch.tensor([1, 2, 1, 3, 2, 1, 1])
    expected = {(int(ids[i]), int(ids[j])) for i in range(7) for j in range(7)
                if i != j and abs(i - j) <= window[i] and sentence[i] == sentence[j]}
    centres, contexts = skipgram_pairs(ids, sentence, window, 3)
    assert sorted(zip(centres.tolist(), contexts.tolist())) == sorted(expected)
    targets, inputs, mask = cbow_contexts(ids, sentence, window, 3)
    assert {(t, c) for t, row, m in zip(targets.tolist(), inputs.tolist(), mask.tolist())
            for c, keep in zip(row, m) if keep} == expected


def test_vocab_counts_and_errors():
    assert build_vocab([["a", "b", "a"], ["c", "a", "b"]], min_count=2) == (["a", "b"], [3, 2])
    with pytest.raises(ConfigError, match="min_count"):
        build_vocab([["a"]], min_count=2)
    with pytest.raises(ConfigError, match="algo"):
        Word2VecConfig(algo="glove").validate()


def topic_sentences(n: int = 2000) -> list[list[str]]:
    """Two topics that never share a sentence, plus function words common to both."""
    rng = random.Random(0)
    topics = [[f"a{i}" for i in range(15)], [f"b{i}" for i in range(15)]]
    return [[rng.choice(topic) if rng.random() < 0.7 else rng.choice("的了是") for _ in range(10)]
            for topic in (topics[rng.random() < 0.5] for _ in range(n))]


@pytest.mark.parametrize("algo,lr", [("skipgram", 0.025), ("cbow", 0.05)])
def test_training_brings_words_of_a_topic_together(algo, lr):
    cfg = Word2VecConfig(algo=algo, dim=16, window=3, min_count=1, sample=1e-2, lr=lr, epochs=3, batch_size=256)
    model, history = train_word2vec(topic_sentences(), cfg)
    assert history[-1]["loss"] < history[0]["loss"]
    vectors = model.vectors()
    for word in ("a0", "b3"):
        assert all(w[0] == word[0] for w, _ in vectors.most_similar(word, 10))


def test_a_run_resumed_after_an_epoch_ends_where_an_uninterrupted_one_does():
    cfg = Word2VecConfig(dim=8, window=2, min_count=1, epochs=2, batch_size=64)
    sentences = topic_sentences(200)
    words, counts = build_vocab(sentences, 1)
    whole = Word2Vec(cfg, words, counts)
    whole.fit(sentences)
    first = Word2Vec(cfg, words, counts)
    ids, sentence = first.encode(sentences)
    first.train_epoch(ids, sentence, 1)
    resumed = Word2Vec(cfg, words, counts)
    resumed.load_state_dict(first.state_dict())
    resumed.train_epoch(ids, sentence, 2)
    assert torch.equal(resumed.input, whole.input) and torch.equal(resumed.output, whole.output)
