"""The precision losses are computed in: at least float32. Under bf16 autocast (CUDA's in training; CPU autocast
stands in for it here) and with bf16 weights, every task's loss comes out in float32, fused or hand-written; a
float64 model's loss stays float64, equal to the float64 reference."""

import pytest
import torch
import torch.nn.functional as F

from nlplab.data.batching import padded_batch
from nlplab.models.classifier import ClassifierConfig, TextClassifier
from nlplab.models.lm import LMConfig, build_lm, lm_loss, response_logprobs
from nlplab.models.matcher import MatcherConfig, build_matcher, cross_entropy_loss
from nlplab.models.tagger import Tagger, TaggerConfig
from nlplab.rlhf.logprobs import token_logprobs

SEQS = [[3, 4, 5, 6], [7, 8, 9], [2, 3, 4, 5], [9, 8]]


def lm(impl):
    torch.manual_seed(0)
    return build_lm(LMConfig(vocab_size=12, block_size=8, hidden_size=16, heads=2, layers=1, dropout=0.0, impl=impl))


def loss_of(task, impl, dtype):
    torch.manual_seed(0)
    batch = padded_batch(SEQS, 0)
    if task == "lm":
        ids = torch.randint(0, 12, (2, 8), generator=torch.Generator().manual_seed(0))
        return lm_loss(lm(impl).to(dtype), ids[:, :-1], ids[:, 1:])[0]
    if task == "classify":
        model = TextClassifier(ClassifierConfig(model="bow", vocab_size=12, embed_dim=8, hidden_size=8, impl=impl))
        return model.to(dtype)({**batch, "labels": torch.tensor([0, 1, 1, 0])})[0]
    if task.startswith("tag"):
        model = Tagger(TaggerConfig(model="cnn", vocab_size=12, labels=["O", "B-X", "I-X"], embed_dim=8, hidden_size=8,
                                    crf=task == "tag-crf", impl=impl))
        return model.to(dtype)({**batch, "tags": batch["ids"] % 3})[0]
    pair = {"a": padded_batch(SEQS, 0), "b": padded_batch(SEQS[::-1], 0), "labels": torch.tensor([1, 0, 1, 0])}
    model = build_matcher(MatcherConfig(model="bow", loss=task[6:], vocab_size=12, embed_dim=8, hidden_size=8, impl=impl))
    return model.to(dtype)(pair)[0]


@pytest.mark.parametrize("impl", ["fused", "manual"])
@pytest.mark.parametrize("task", ["lm", "classify", "tag", "tag-crf", "match-ce", "match-contrastive"])
def test_losses_are_float32_under_bf16_autocast_and_with_bf16_weights(task, impl):
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert loss_of(task, impl, torch.float32).dtype == torch.float32
    if task != "match-ce":  # its head reads the float32 sentence vectors, so it needs autocast for bf16 weights
        assert loss_of(task, impl, torch.bfloat16).dtype == torch.float32


@pytest.mark.parametrize("impl", ["fused", "manual"])
def test_the_matchers_cross_entropy_of_bf16_logits_is_float32(impl):
    logits = torch.randn(4, 2, generator=torch.Generator().manual_seed(0)).to(torch.bfloat16)
    assert cross_entropy_loss(logits, torch.tensor([0, 1, 1, 0]), impl).dtype == torch.float32


def test_a_float64_language_model_is_scored_in_float64():
    model = lm("fused").double()
    ids = torch.randint(0, 12, (3, 8), generator=torch.Generator().manual_seed(1))
    loss, _ = lm_loss(model, ids[:, :-1], ids[:, 1:])
    logits = model(ids[:, :-1])[0]
    assert loss.dtype == torch.float64
    torch.testing.assert_close(loss, F.cross_entropy(logits.flatten(0, 1), ids[:, 1:].flatten()), rtol=0, atol=1e-12)
    logp, _ = response_logprobs(model, ids, torch.ones_like(ids, dtype=torch.bool))
    torch.testing.assert_close(logp, token_logprobs(logits, ids[:, 1:]), rtol=0, atol=1e-12)
