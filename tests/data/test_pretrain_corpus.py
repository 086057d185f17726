"""zh-pretrain on the real data: no text of a dev or test split, nor one containing it, and no duplicates."""

import random

import pytest

from nlplab.data.corpora import held_out_texts, load_corpus, zh_pretrain
from nlplab.data.overlap import MIN_CHARS, normalize
from nlplab.data.pairs import load_pairs
from nlplab.data.registry import load_dataset
from nlplab.data.tagging import load_tagging


@pytest.fixture(scope="module")
def corpus():
    documents = zh_pretrain()
    return documents, [normalize(d) for d in documents]


@pytest.fixture(scope="module")
def held_out():
    return held_out_texts()


def test_held_out_texts_cover_every_kind_of_split(held_out):
    texts = set(held_out)
    chn, lcqmc = load_dataset("chnsenticorp"), load_pairs("lcqmc")
    assert {t for t, _ in chn.dev} <= texts and {t for t, _ in load_dataset("ewect").dev} <= texts
    assert {s for s1, s2, _ in lcqmc.dev + lcqmc.test for s in (s1, s2)} <= texts
    assert {"".join(t.chars) for t in load_tagging("msra-ner").test} <= texts
    assert set(load_corpus("clue-small").test) <= texts and set(load_corpus("pd98-text").dev) <= texts


def test_no_document_equals_or_contains_a_held_out_text(corpus, held_out):
    _, normalised = corpus
    held = {normalize(h) for h in held_out} - {""}
    assert not held & set(normalised)
    stream = "\n".join(normalised)
    long = sorted(h for h in held if len(h) >= MIN_CHARS)
    sample = random.Random(0).sample(long, 1000)
    assert [h for h in sample if h in stream] == []


def test_documents_are_unique_and_come_from_every_source(corpus):
    documents, normalised = corpus
    assert len(set(normalised)) == len(normalised) and all(normalised)
    assert 4_000_000 < sum(map(len, documents)) < 6_000_000
    train_text = next(t for t, _ in load_dataset("ewect").train if normalize(t) in set(normalised))
    assert train_text in documents
