"""Decoding under torch.compile (`--compile` of generate, chat and serve): a tiny GPT compiled with dynamic shapes
decodes the ids of eager decoding with scores within float rounding, a prompt of another length compiles nothing
new, and continuous batching (the server's engine) runs on the compiled model and still batches its rows."""

import copy

import pytest
import torch

from nlplab.generate.causal import CausalLM, generate, nlplab_chat
from nlplab.generate.continuous import ContinuousBatch
from nlplab.generate.decoding import argmax_picker
from nlplab.models.gpt import GPT, GPTConfig
from nlplab.runtime import compile_seconds

ALPHABET = "abcdefghijklmnopqrstuvwxyz .,"


def causal(model):
    return CausalLM(model, lambda text: [ALPHABET.index(c) for c in text], lambda ids: "".join(ALPHABET[i] for i in ids),
                    None, 64, nlplab_chat, "tiny", torch.device("cpu"), vocab_size=len(ALPHABET))


def test_compiled_decoding_equals_eager():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=len(ALPHABET), block_size=64, n_layer=1, n_head=2, n_embd=16, dropout=0.0))
    with torch.no_grad():
        for name, p in model.named_parameters():  # far from uniform next-token distributions: no near-ties
            p.normal_(1.0 if "norm" in name and name.endswith("weight") else 0.0, 0.3)
    eager, compiled = causal(model.eval()), causal(copy.deepcopy(model))
    compiled.compile()
    assert isinstance(compiled.step, GPT)
    prompts = {"the cat": 10, "a dog ran far,": 10}  # equal budgets: the two rows leave the batch together
    for k, (prompt, new) in enumerate(prompts.items()):
        before = compile_seconds()
        ours, theirs = generate(compiled, eager.encode(prompt), "greedy", new)[0], generate(eager, eager.encode(prompt), "greedy", new)[0]
        assert ours.ids == theirs.ids and ours.score == pytest.approx(theirs.score, rel=1e-5)
        if k:
            assert compile_seconds() == before  # dynamic shapes: another prompt length reuses the graphs
    batch = ContinuousBatch(compiled, max_batch=4)
    rows = {prompt: batch.add(eager.encode(prompt), argmax_picker, new) for prompt, new in prompts.items()}
    while batch.busy():
        batch.step()
    assert batch.stats["peak"] == 2
    for prompt, d in rows.items():
        assert d.ids == generate(eager, eager.encode(prompt), "greedy", prompts[prompt])[0].ids
