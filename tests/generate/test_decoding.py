"""Decoding against Hugging Face: greedy and beam search return exactly the ids of `transformers`' generate() on
the same small random GPT-2; the logits processors equal HF's warpers; sampling properties; the notes' toy example
where beam search beats greedy."""

import math

import pytest
import torch
import transformers
from transformers.generation import logits_process as hf

from nlplab.errors import ConfigError
from nlplab.generate import (
    apply_temperature,
    beam_search,
    greedy,
    repetition_penalty,
    sample,
    stream,
    top_k_filter,
    top_p_filter,
)
from nlplab.models.gpt import GPT

V = 50


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    torch.manual_seed(0)
    config = transformers.GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=V, n_positions=64,
                                     bos_token_id=0, eos_token_id=None)
    theirs = transformers.GPT2LMHeadModel(config)
    with torch.no_grad():
        for name, p in theirs.named_parameters():
            if "ln_" in name:
                p.normal_(1 if name.endswith("weight") else 0, 0.3)
            else:
                p.normal_(0, 0.1 if name.endswith("bias") else 0.3)
    folder = tmp_path_factory.mktemp("gpt2")
    theirs.save_pretrained(folder)
    return GPT.from_pretrained(folder).eval(), transformers.GPT2LMHeadModel.from_pretrained(folder).eval()


def hf_generate(model, prompt, eos_id, **kwargs):
    out = model.generate(prompt, attention_mask=torch.ones_like(prompt), do_sample=False, eos_token_id=eos_id,
                         pad_token_id=V - 1 if eos_id is None else eos_id, no_repeat_ngram_size=0,
                         repetition_penalty=1.0, top_k=None, top_p=None, temperature=None,
                         return_dict_in_generate=True, output_scores=True, **kwargs)
    return out.sequences[:, prompt.shape[1]:], getattr(out, "sequences_scores", None)


def prompts(seed, batch=3, length=5):
    return torch.randint(0, V, (batch, length), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("use_eos", [False, True])
def test_greedy_equals_hf(models, use_eos):
    ours, theirs = models
    ids = prompts(1)
    free = greedy(ours, ids, 12)
    eos_id = int(free[0, 3]) if use_eos else None
    expected, _ = hf_generate(theirs, ids, eos_id, max_new_tokens=12)
    got = greedy(ours, ids, 12, eos_id)
    assert torch.equal(got, expected)
    if use_eos:
        assert got.shape[1] < 12 or (got == eos_id).any()


def test_greedy_cache_on_and_off_agree(models):
    ours, _ = models
    ids = prompts(2)
    assert torch.equal(greedy(ours, ids, 10, use_cache=True), greedy(ours, ids, 10, use_cache=False))


def test_stream_yields_greedy_tokens_one_by_one(models):
    ours, _ = models
    ids = prompts(3)[0]
    tokens = list(stream(ours, ids, 6))
    assert all(t.shape == () for t in tokens)
    assert torch.equal(torch.stack(tokens), greedy(ours, ids, 6))


@pytest.mark.parametrize("early_stopping", [True, False])
@pytest.mark.parametrize("length_penalty", [1.0, 2.0, -0.5])
@pytest.mark.parametrize("use_eos", [False, True])
def test_beam_search_equals_hf(models, length_penalty, use_eos, early_stopping):
    ours, theirs = models
    ids = prompts(0, batch=2)
    eos_id = int(greedy(ours, ids, 3)[0, 2]) if use_eos else None
    lengths = []
    for row in ids:
        expected, scores = hf_generate(theirs, row[None], eos_id, max_new_tokens=10, num_beams=4,
                                       num_return_sequences=4, length_penalty=length_penalty,
                                       early_stopping=early_stopping)
        got = beam_search(ours, row, 10, eos_id, num_beams=4, length_penalty=length_penalty,
                          early_stopping=early_stopping, num_return=4)
        assert len(got) == 4
        assert expected.shape[1] == max(len(h.ids) for h in got)
        for hyp, want, score in zip(got, expected, scores):
            assert torch.equal(hyp.ids, want[:len(hyp.ids)])
            assert want[len(hyp.ids):].tolist() == [eos_id] * (len(want) - len(hyp.ids))
            assert math.isclose(hyp.score, score.item(), rel_tol=1e-5, abs_tol=1e-5)
        lengths += [len(h.ids) for h in got]
    if use_eos and length_penalty <= 1:
        assert min(lengths) < 10, "the chosen EOS should end some hypotheses early"


def test_beam_search_batch_and_cache_off(models):
    ours, _ = models
    ids = prompts(6, batch=2)
    batch = beam_search(ours, ids, 6, num_beams=3, num_return=2)
    for row, hyps in zip(ids, batch):
        alone = beam_search(ours, row, 6, num_beams=3, num_return=2, use_cache=False)
        assert [h.ids.tolist() for h in hyps] == [h.ids.tolist() for h in alone]


def test_tiny_temperature_sampling_equals_greedy(models):
    ours, _ = models
    ids = prompts(7)
    assert torch.equal(sample(ours, ids, 10, temperature=1e-6), greedy(ours, ids, 10))


def test_fixed_generator_seed_repeats(models):
    ours, _ = models
    ids = prompts(8)
    draw = lambda seed: sample(ours, ids, 10, top_k=20, top_p=0.9, repetition_penalty=1.3,
                               generator=torch.Generator().manual_seed(seed))
    assert torch.equal(draw(3), draw(3))
    assert not torch.equal(draw(3), draw(4))


def test_sampling_equals_hf_on_the_same_random_stream(models):
    ours, theirs = models
    ids = prompts(11)
    options = {"temperature": 0.8, "top_k": 30, "top_p": 0.9, "repetition_penalty": 1.2}
    torch.manual_seed(5)
    expected = theirs.generate(ids, attention_mask=torch.ones_like(ids), do_sample=True, max_new_tokens=15,
                               pad_token_id=V - 1, no_repeat_ngram_size=0, **options)[:, ids.shape[1]:]
    torch.manual_seed(5)
    assert torch.equal(sample(ours, ids, 15, **options), expected)


def test_top_p_never_leaves_the_nucleus():
    torch.manual_seed(9)
    logits = torch.randn(1, V, dtype=torch.float64) * 2
    probs = logits.softmax(-1)[0]
    order = probs.argsort(descending=True)
    size = int((probs[order].cumsum(0) < 0.7).sum()) + 1
    nucleus = set(order[:size].tolist())
    table = lambda ids, cache: (logits.expand(ids.shape[0], ids.shape[1], V), None)
    draws = sample(table, torch.zeros(2000, 1, dtype=torch.long), 1, top_p=0.7,
                   generator=torch.Generator().manual_seed(0))
    assert set(draws.flatten().tolist()) <= nucleus
    assert len(set(draws.flatten().tolist())) == size


@pytest.mark.parametrize("scale", [3.0, 0.3, 0.01])
def test_top_p_over_a_large_vocabulary_equals_hf(scale):
    """Peaked to flat distributions over 5,000 tokens: the nucleus is found in the top 64, or after widening to all."""
    torch.manual_seed(0)
    logits = torch.randn(3, 5000, dtype=torch.float64) * scale
    ids = torch.zeros(3, 1, dtype=torch.long)
    for p in (0.3, 0.9, 0.999):
        assert torch.equal(top_p_filter(logits, p), hf.TopPLogitsWarper(p)(ids, logits))


@pytest.mark.parametrize("seed", range(3))
def test_processors_equal_hf_warpers(seed):
    torch.manual_seed(seed)
    logits = torch.randn(4, V, dtype=torch.float64) * 3
    history = torch.randint(0, V, (4, 7))
    ids = torch.zeros(4, 1, dtype=torch.long)
    torch.testing.assert_close(apply_temperature(logits, 0.7), hf.TemperatureLogitsWarper(0.7)(ids, logits),
                               rtol=0, atol=1e-12)
    for k in (1, 5, V + 3):
        assert torch.equal(top_k_filter(logits, k), hf.TopKLogitsWarper(k)(ids, logits))
    for p in (0.05, 0.5, 0.9, 1.0):
        assert torch.equal(top_p_filter(logits, p), hf.TopPLogitsWarper(p)(ids, logits))
    for penalty in (0.8, 1.5):
        torch.testing.assert_close(repetition_penalty(logits, history, penalty),
                                   hf.RepetitionPenaltyLogitsProcessor(penalty)(history, logits.clone()),
                                   rtol=0, atol=1e-12)


def test_bad_options_raise_config_error(models):
    ours, _ = models
    ids = prompts(10)
    with pytest.raises(ConfigError, match="num_beams"):
        beam_search(ours, ids, 5, num_beams=0)
    with pytest.raises(ConfigError, match="top_p"):
        sample(ours, ids, 5, top_p=1.5)
    with pytest.raises(ConfigError, match="temperature"):
        sample(ours, ids, 5, temperature=0)
    with pytest.raises(ConfigError, match="max_new_tokens"):
        greedy(ours, ids, 0)
    with pytest.raises(ConfigError, match="positions"):
        greedy(ours, torch.zeros(70, dtype=torch.long), 1)


WORDS = ["<s>", "Je", "moi", "suis", "étudiant", "</s>"]
TOY = {"<s>": {"moi": 0.5, "Je": 0.4, "suis": 0.1}, "Je": {"suis": 0.9, "étudiant": 0.1},
       "moi": {"suis": 0.3, "étudiant": 0.25, "</s>": 0.25, "Je": 0.2}, "suis": {"étudiant": 0.9, "</s>": 0.1},
       "étudiant": {"</s>": 1.0}, "</s>": {"</s>": 1.0}}


def toy_model(ids, cache):
    """The notes' toy next-word distributions, a lookup on the last word: logits (B, T, V) = log p(· | x_t)."""
    table = torch.tensor([[TOY[w].get(v, 0.0) for v in WORDS] for w in WORDS], dtype=torch.float64)
    return table.log()[ids], None


def test_notes_example_beam_finds_the_more_probable_sentence():
    prompt, eos = torch.tensor([0]), WORDS.index("</s>")
    words = lambda ids: " ".join(WORDS[i] for i in ids if i != eos)
    log_p = lambda sentence: sum(math.log(TOY[a][b]) for a, b in zip(["<s>"] + sentence, sentence + ["</s>"]))
    assert words(greedy(toy_model, prompt, 5, eos)) == "moi suis étudiant"
    best = beam_search(toy_model, prompt, 5, eos, num_beams=2, length_penalty=0.0)[0]
    assert words(best.ids) == "Je suis étudiant"
    assert math.isclose(best.score, log_p(["Je", "suis", "étudiant"]), rel_tol=1e-6)
    assert best.score > log_p(["moi", "suis", "étudiant"])
