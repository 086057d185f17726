"""Continuous batching: sequences of different lengths that join and leave the running batch at different steps
decode exactly as each would alone — the ragged KV cache gives every row its own logits (float64, also with
prompt- and prefix-tuning's virtual tokens), greedy ids are identical to `generate`, probabilities within 1e-5,
seeded sampling draws the same tokens; EOS, stop strings, budgets, cancellation and the one-at-a-time fallback."""

import pytest
import torch

from nlplab.errors import ConfigError
from nlplab.generate.causal import CausalLM, generate, nlplab_chat, picker
from nlplab.generate.continuous import ContinuousBatch, RaggedCache
from nlplab.models.gpt import GPT, GPTConfig
from nlplab.models.lm import LMConfig, build_lm
from nlplab.peft.virtual import PrefixEncoder, PromptEmbedding

ALPHABET = "abcdefghijklmnopqrstuvwxyz .,;!?0123456789"
VOCAB = len(ALPHABET)


def randomised(model, dtype=torch.float32):
    """Weights large enough that next-token distributions are far from uniform (no near-ties for argmax)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.normal_(1.0 if "norm" in name and name.endswith("weight") else 0.0, 0.3)
    return model.to(dtype).eval()


def gpt(dtype=torch.float32, virtual=None, block_size=64):
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=VOCAB, block_size=block_size, n_layer=2, n_head=2, n_embd=16, dropout=0.0))
    if virtual == "prompt":
        model.prompt = PromptEmbedding(3, 16)
    elif virtual == "prefix":
        model.prefix = PrefixEncoder(4, 2, 16, 2)
    return randomised(model, dtype)


def causal(model, eos_id=None, context=64):
    encode = lambda text: [ALPHABET.index(c) for c in text]  # noqa: E731
    decode = lambda ids: "".join(ALPHABET[i] for i in ids)  # noqa: E731
    return CausalLM(model, encode, decode, eos_id, context, nlplab_chat, "tiny", torch.device("cpu"))


def alone(model, seq):
    """The next-token logits (V,) of one sequence fed whole, without a cache: the unbatched truth."""
    with torch.no_grad():
        return model(torch.tensor([seq]))[0][0, -1]


@pytest.mark.parametrize("virtual", [None, "prompt", "prefix"])
def test_ragged_rows_give_each_row_its_own_logits(virtual):
    model, gen = gpt(torch.float64, virtual), torch.Generator().manual_seed(1)
    rows, seqs = RaggedCache(model), []

    def join(length):
        seqs.append(torch.randint(0, VOCAB, (length,), generator=gen).tolist())
        with torch.no_grad():
            logits = rows.add(torch.tensor(seqs[-1]))
        torch.testing.assert_close(logits[0], alone(model, seqs[-1]), rtol=0, atol=1e-10)

    def step():
        tokens = torch.randint(0, VOCAB, (len(seqs),), generator=gen)
        for seq, token in zip(seqs, tokens.tolist()):
            seq.append(token)
        with torch.no_grad():
            logits = rows.step(tokens)
        for row, seq in zip(logits, seqs):
            torch.testing.assert_close(row, alone(model, seq), rtol=0, atol=1e-10)

    join(3)
    step(), step()
    join(9)          # longer than the batch: the batch is padded to it
    step()
    join(1)          # shorter: it is padded
    step(), step()
    rows.keep([0, 2])   # the longest leaves: its leading columns go
    del seqs[1]
    assert rows.mask.shape[1] == max(len(s) for s in seqs) + {None: 0, "prompt": 3, "prefix": 4}[virtual]
    step()
    rows.keep([1])
    del seqs[0]
    step()


def decode_all(batch, arrivals, steps=200):
    """Run `batch`; arrivals maps a step number to the (prompt, options) that arrive just before it."""
    started = {}
    for n in range(steps):
        for key, (prompt, pick, budget, stop) in arrivals.get(n, {}).items():
            started[key] = batch.add(prompt, pick, budget, stop)
        batch.step()
        if not batch.busy() and n >= max(arrivals):
            break
    return started


def test_batched_greedy_and_seeded_sampling_equal_unbatched():
    lm = causal(gpt(), eos_id=ALPHABET.index("."))
    prompts = {"a": "the cat sat", "b": "a", "c": "hello there, how are you", "d": "xy", "e": "sampled one"}
    greedy, sample = picker("greedy", 1.0, None, None, 1.0, None), lambda seed: picker("sample", 0.9, None, 0.95, 1.2, seed)
    arrivals = {0: {"a": (lm.encode(prompts["a"]), greedy, 20, ())},
                2: {"b": (lm.encode(prompts["b"]), greedy, 25, ()), "e": (lm.encode(prompts["e"]), sample(7), 15, ())},
                5: {"c": (lm.encode(prompts["c"]), greedy, 12, ())},
                6: {"d": (lm.encode(prompts["d"]), sample(3), 30, (";",))}}
    batch = ContinuousBatch(lm, max_batch=16)
    done = decode_all(batch, arrivals)
    assert all(d.finish in ("stop", "length") for d in done.values())
    expected = {
        "a": generate(lm, lm.encode(prompts["a"]), "greedy", 20)[0],
        "b": generate(lm, lm.encode(prompts["b"]), "greedy", 25)[0],
        "c": generate(lm, lm.encode(prompts["c"]), "greedy", 12)[0],
        "d": generate(lm, lm.encode(prompts["d"]), "sample", 30, temperature=0.9, top_p=0.95, repetition_penalty=1.2,
                      seed=3, stop=[";"])[0],
        "e": generate(lm, lm.encode(prompts["e"]), "sample", 15, temperature=0.9, top_p=0.95, repetition_penalty=1.2,
                      seed=7)[0],
    }
    for key, d in done.items():
        assert d.ids == expected[key].ids, key
        assert d.text == expected[key].text, key
        seq = lm.encode(prompts[key])
        for token, logprob in zip(d.ids, d.logprobs):
            p = alone(lm.step, seq).softmax(-1)[token].item()
            assert abs(p - torch.tensor(logprob).exp().item()) < 1e-5
            seq.append(token)
    assert len({len(d.ids) for d in done.values()}) > 1   # lengths differed: rows left at different steps


def test_a_full_batch_queues_and_a_cancelled_sequence_frees_its_slot():
    lm = causal(gpt())
    batch = ContinuousBatch(lm, max_batch=2)
    greedy = picker("greedy", 1.0, None, None, 1.0, None)
    first, second, third = (batch.add(lm.encode(p), greedy, 40) for p in ("abc", "hello", "xyz"))
    batch.step()
    assert len(batch.running) == 2 and list(batch.waiting) == [third]
    second.cancelled = True
    batch.step()
    assert second.finish == "cancelled" and batch.running == [first]
    batch.step()
    assert batch.running == [first, third]
    while batch.busy():
        batch.step()
    assert third.ids == generate(lm, lm.encode("xyz"), "greedy", 40)[0].ids
    assert len(first.ids) == 40 and first.finish == "length"


def test_budget_is_capped_by_the_context_and_an_overlong_prompt_is_refused():
    lm = causal(gpt(block_size=16), context=16)
    batch = ContinuousBatch(lm, max_batch=4)
    greedy = picker("greedy", 1.0, None, None, 1.0, None)
    d = batch.add(lm.encode("abcdefghij"), greedy, 100)
    assert d.max_new_tokens == 6
    while batch.busy():
        batch.step()
    assert len(d.ids) == 6 and d.finish == "length"
    with pytest.raises(ConfigError, match="shorten the prompt"):
        batch.add(lm.encode("a" * 16), greedy, 5)


def test_models_that_cannot_batch_rows_decode_one_at_a_time():
    torch.manual_seed(0)
    lm = causal(randomised(build_lm(LMConfig(model="gru", vocab_size=VOCAB, embed_dim=8, hidden_size=8, layers=1,
                                             dropout=0.0))))
    batch = ContinuousBatch(lm, max_batch=8)
    assert batch.max_batch == 1
    greedy = picker("greedy", 1.0, None, None, 1.0, None)
    a, b = batch.add(lm.encode("abc"), greedy, 10), batch.add(lm.encode("hello"), greedy, 8)
    batch.step()
    assert batch.running == [a]
    while batch.busy():
        batch.step()
    assert a.ids == generate(lm, lm.encode("abc"), "greedy", 10)[0].ids
    assert b.ids == generate(lm, lm.encode("hello"), "greedy", 8)[0].ids
