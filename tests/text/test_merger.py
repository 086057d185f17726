import json
import os
import shutil
import subprocess
import sys
import sysconfig

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nlplab.data.readers import read_labelled_tsv
from nlplab.data.registry import find_data
from nlplab.text import BPETokenizer, ByteBPETokenizer, pairmerge
from nlplab.text.bytebpe import ENDOFTEXT
from nlplab.text.pairmerge import CompiledMerger, Merger, apply_merges

UNICODE = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40) | st.text(f"今天🎉é\x00\n\t ab'sĠ{ENDOFTEXT}", max_size=60)
EXTRA = ["", " ", f"{ENDOFTEXT}", f"a{ENDOFTEXT}{ENDOFTEXT}b <|endoftext", "今天天气很好，我们去公园。" * 20, "x" * 3000, "naïve café 🎉👩‍👩‍👧"]


@pytest.fixture(scope="module")
def compiled():
    """The compiled Merger; skipped where no C compiler could build it, an error where one could but it is missing."""
    if CompiledMerger is None:
        if shutil.which((sysconfig.get_config_var("CC") or "cc").split()[0]) is None:
            pytest.skip("no C compiler here, so the compiled merge loop was not built")
        pytest.fail("the compiled merge loop is not built although a C compiler is here: run `pip install -e .` again")
    return CompiledMerger


def rescan(ids: list[int], ranks: dict, merged: list[int]) -> list[int]:
    """The definition: fuse the adjacent pair of lowest rank, the leftmost on ties, until no pair has a rank."""
    ids = list(ids)
    while True:
        found = [(ranks[pair], j) for j, pair in enumerate(zip(ids, ids[1:])) if pair in ranks]
        if not found:
            return ids
        rank, j = min(found)
        ids[j : j + 2] = [merged[rank]]


@st.composite
def merge_tables(draw):
    """Ranks over a 6-symbol alphabet whose merges may create symbols that merge again (ids stay in 0..7)."""
    pairs = draw(st.lists(st.tuples(st.integers(0, 7), st.integers(0, 7)), unique=True, max_size=30))
    merged = draw(st.lists(st.integers(0, 7), min_size=len(pairs), max_size=len(pairs)))
    return {pair: rank for rank, pair in enumerate(pairs)}, merged


words_of_ids = st.lists(st.integers(0, 7), max_size=300)


@settings(max_examples=300, deadline=None)
@given(merge_tables(), words_of_ids)
def test_heap_merge_loop_equals_the_rescan_definition(table, ids):
    ranks, merged = table
    assert apply_merges(ids, ranks, merged) == rescan(ids, ranks, merged)


@settings(max_examples=300, deadline=None)
@given(merge_tables(), words_of_ids)
def test_compiled_merge_equals_python(compiled, table, ids):
    ranks, merged = table
    assert compiled(ranks, merged).merge(ids) == Merger(ranks, merged).merge(ids)


@settings(max_examples=150, deadline=None)
@given(merge_tables(), st.lists(UNICODE, max_size=12), st.integers(0, 3))
def test_compiled_encode_words_equals_python_whatever_the_cache_size(compiled, table, words, cache_size):
    ranks, merged = table
    byte_ids = [b % 8 for b in range(256)]
    fast, slow = compiled(ranks, merged, byte_ids, cache_size), Merger(ranks, merged, byte_ids, cache_size)
    for _ in range(2):  # the second pass goes through the cache
        assert fast.encode_words(words) == slow.encode_words(words)


def test_merger_bad_arguments(compiled):
    with pytest.raises(ValueError, match="byte_ids"):
        compiled({}, []).encode_words(["a"])
    with pytest.raises(ValueError, match="byte_ids"):
        Merger({}, []).encode_words(["a"])
    with pytest.raises(ValueError, match="256"):
        compiled({}, [], [0] * 255)
    with pytest.raises(ValueError, match="rank 1 has no merged id"):
        compiled({(0, 1): 1}, [5])
    with pytest.raises(ValueError, match="out of range"):
        compiled({(0, -1): 0}, [5])
    with pytest.raises(UnicodeEncodeError):
        compiled({}, [], list(range(256))).encode_words(["\ud800"])


def real_texts(name: str, n: int) -> list[str]:
    return [text for text, _ in read_labelled_tsv(find_data(name) / "train.tsv")[:n]]


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    return real_texts("sst2", 400) + real_texts("chnsenticorp", 150)


@pytest.fixture(scope="module")
def byte_level(corpus):
    """The same trained byte-level tokenizer twice: with the compiled merge loop (when built) and forced to Python."""
    fast = ByteBPETokenizer().train(corpus, vocab_size=1500)
    return fast, python_twin(fast)


def python_twin(tok):
    original = pairmerge.COMPILED
    pairmerge.COMPILED = False
    try:
        slow = type(tok).from_hf_json(json.loads(tok.to_hf_json()), tok.options())
    finally:
        pairmerge.COMPILED = original
    assert type(slow._merger) is Merger
    return slow


def test_tokenizers_use_the_compiled_loop_unless_told_not_to(compiled, byte_level):
    assert type(byte_level[0]._merger) is (compiled if pairmerge.COMPILED else Merger)


def test_byte_level_compiled_and_python_encode_the_corpora_alike(byte_level, corpus):
    fast, slow = byte_level
    texts = corpus + real_texts("sst2", 2000)[1000:] + [t for t, _ in read_labelled_tsv(find_data("chnsenticorp") / "dev.tsv")[:300]] + EXTRA
    for text in texts:
        assert fast.encode(text) == slow.encode(text)
    assert [fast.word_ids(w) for w in fast.words(texts[0])] == [slow.word_ids(w) for w in slow.words(texts[0])]


@settings(max_examples=200, deadline=None)
@given(UNICODE)
def test_byte_level_compiled_and_python_encode_any_unicode_alike(byte_level, text):
    fast, slow = byte_level
    assert fast.encode(text) == slow.encode(text)


def test_char_level_bpe_compiled_and_python_encode_alike(corpus):
    fast = BPETokenizer(limit_alphabet=300).train(corpus, vocab_size=1200)
    slow = python_twin(fast)
    for text in corpus[::3] + EXTRA + ["[UNK] [PAD] 龘 unseen"]:
        assert fast.encode(text) == slow.encode(text)


def test_pure_python_is_forced_by_the_environment():
    code = "from nlplab.text import ByteBPETokenizer, pairmerge; print(pairmerge.COMPILED, type(ByteBPETokenizer()._merger).__module__)"
    forced = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, "NLPLAB_PURE_PYTHON": "1"}, check=True)
    assert forced.stdout.split() == ["False", "nlplab.text.pairmerge"]
