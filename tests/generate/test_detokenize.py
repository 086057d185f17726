"""Incremental detokenisation: for every tokenizer, the pieces released token by token add up to decode(ids) and only
ever hold whole characters; stop strings are caught where decoding every prefix would catch them, also when they
span tokens or follow a split character; the work per token does not grow with the length of the text; streaming,
generate() and continuous batching release a character split across byte tokens whole and end on decode(ids)."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nlplab.generate.causal import CausalLM, generate, nlplab_chat, stream_text
from nlplab.generate.continuous import ContinuousBatch
from nlplab.generate.decoding import argmax_picker
from nlplab.generate.detokenize import REPLACEMENT, Detokenizer
from nlplab.text import build_tokenizer

TEXTS = ["the cat sat on the mat", "unbelievable things happen", "今天天气很好，我们去公园", "a dog ran 🎉 é naïve",
         "hello world said the cat", "我们 today 去 park"] * 3
VOCAB = {"char": 100, "word": 100, "bpe": 120, "bytebpe": 300, "wordpiece": 120}


@pytest.fixture(scope="module")
def tokenizers():
    return {name: build_tokenizer(name).train(TEXTS, vocab_size=size, min_freq=1) for name, size in VOCAB.items()}


def by_prefixes(ids, decode, stop):
    """The reference: decode every prefix; the shortest one whose text holds a stop string ends the continuation."""
    for k in range(1, len(ids) + 1):
        text = decode(ids[:k])
        hits = [text.find(s) for s in stop if s and s in text]
        if hits:
            return ids[:k], text[: min(hits)], True
    return list(ids), decode(ids), False


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(sorted(VOCAB)), picks=st.lists(st.integers(0, 10**6), max_size=40))
def test_released_pieces_add_up_to_decode_and_hold_whole_characters(tokenizers, name, picks):
    tok = tokenizers[name]
    ids = [p % tok.vocab_size for p in picks]
    text = Detokenizer(tok.decode)
    released = ""
    for k, token in enumerate(ids, start=1):
        assert not text.add(token)
        assert text.text.startswith(released)  # what was released is never taken back
        released = text.text
        assert text.full == tok.decode(ids[:k])
        assert not text.text.endswith(REPLACEMENT) or not text.pending  # an unfinished character is held back
    assert text.full == tok.decode(ids)


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(sorted(VOCAB)), picks=st.lists(st.integers(0, 10**6), max_size=30),
       stops=st.lists(st.sampled_from(["a", "t ", "天气", "é", " 今", "at t", "\ufffd", "ll"]), min_size=1, max_size=2))
def test_stop_strings_end_where_decoding_every_prefix_would(tokenizers, name, picks, stops):
    tok = tokenizers[name]
    ids = [p % tok.vocab_size for p in picks]
    text = Detokenizer(tok.decode, stops)
    for token in ids:
        if text.add(token):
            break
    assert (text.ids, text.full, text.stopped) == by_prefixes(ids, tok.decode, stops)


def test_a_character_split_across_byte_tokens_appears_whole_and_a_stop_across_it_is_caught():
    tok = build_tokenizer("bytebpe").train(["ab"], vocab_size=257, min_freq=1)  # bytes only: 中 is three tokens
    ids = tok.encode("x中文。y")
    text = Detokenizer(tok.decode, ["文。"])
    released, full = [], []
    for token in ids:
        stopped = text.add(token)
        released.append(text.text)
        full.append(text.full)
        if stopped:
            break
    assert released == ["x", "x", "x", "x中", "x中", "x中", "x中文", "x中文", "x中文", "x中"]
    assert full[1] == "x" + REPLACEMENT and text.stopped and text.ids == ids[:10]


def test_the_work_per_token_stays_constant():
    tok = build_tokenizer("bytebpe").train(TEXTS, vocab_size=300, min_freq=1)
    ids = tok.encode(" ".join(TEXTS) * 4)
    decoded = []

    def decode(window):
        decoded.append(len(window))
        return tok.decode(window)

    text = Detokenizer(decode, ["never there"])
    for token in ids:
        text.add(token)
    assert text.full == tok.decode(ids) and len(ids) > 500
    assert sum(decoded) < 12 * len(ids)  # decoding every prefix would take len(ids)² / 2


def scripted(tok, text, prompt_len):
    """A causal LM whose greedy continuation of any prompt of `prompt_len` ids is the encoding of `text`."""
    script = tok.encode(text)

    def step(ids, cache):
        seen = (cache or 0) + ids.shape[1]
        logits = torch.zeros(ids.shape[0], ids.shape[1], tok.vocab_size)
        logits[:, -1, script[min(seen - prompt_len, len(script) - 1)]] = 1.0
        return logits, seen

    return CausalLM(step, tok.encode, tok.decode, None, None, nlplab_chat, "scripted", vocab_size=tok.vocab_size), script


@pytest.mark.parametrize("budget", [7, 8])  # 7 ends after 文, 8 inside 。
def test_streams_release_whole_characters_and_end_as_decode(budget):
    tok = build_tokenizer("bytebpe").train(["ab"], vocab_size=257, min_freq=1)
    lm, script = scripted(tok, "x中文。y", prompt_len=2)
    streamed = list(stream_text(lm, [97, 98], argmax_picker, budget))
    assert all(REPLACEMENT not in text for _, text in streamed[:budget])
    assert [text for _, text in streamed[:budget]] == ["x", "x", "x", "x中", "x中", "x中", "x中文", "x中文"][:budget]
    assert streamed[-1] == (script[:budget], tok.decode(script[:budget]))
    assert generate(lm, [97, 98], "greedy", budget)[0].text == tok.decode(script[:budget])
    batch = ContinuousBatch(lm)
    d = batch.add([97, 98], argmax_picker, budget)
    texts = []
    while batch.busy():
        batch.step()
        texts.append(d.text)
    assert texts[:-1] == [text for _, text in streamed[: len(texts) - 1]]
    assert (d.ids, d.text, d.finish) == (script[:budget], tok.decode(script[:budget]), "length")
