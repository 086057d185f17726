import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer as HFTokenizer
from tokenizers import decoders, models, pre_tokenizers, trainers

from nlplab.data.readers import read_labelled_tsv
from nlplab.data.registry import find_data
from nlplab.errors import TokenizerError
from nlplab.text import BPETokenizer, build_tokenizer, load_tokenizer
from nlplab.text.pairmerge import PairCounts, count_merges, recount_merges, symbol_minter

EXTRA = ["The newest, widest lowers!", "今天天气很好，我们去公园。", "陌生的字：龘 and ünïcödé", "tab\tnew\nline  [UNK] [PAD]x", ""]


def real_texts(name: str, start: int, n: int) -> list[str]:
    return [text for text, _ in read_labelled_tsv(find_data(name) / "train.tsv")[start : start + n]]


def symbol_factory(alphabet: int, vocab_size: int):
    """new_symbol for the merge loops: fused symbols get fresh ids, by name (so equal names share an id)."""
    return symbol_minter({str(i): i for i in range(alphabet)}, vocab_size)


corpora = st.lists(st.tuples(st.lists(st.integers(0, 3), min_size=1, max_size=8), st.integers(1, 5)), min_size=1, max_size=12)


@settings(max_examples=150, deadline=None)
@given(corpora, st.integers(1, 3))
def test_incremental_merges_equal_recounting_every_merge(corpus, min_freq):
    words, counts = [w for w, _ in corpus], [n for _, n in corpus]
    fast = PairCounts([list(w) for w in words], counts)
    merges = count_merges(fast, symbol_factory(4, 30), min_freq)
    slow_words = [list(w) for w in words]
    assert merges == recount_merges(slow_words, counts, symbol_factory(4, 30), min_freq)
    assert fast.words == slow_words
    exact = {}
    for word, n in zip(slow_words, counts):
        for pair in zip(word, word[1:]):
            exact[pair] = exact.get(pair, 0) + n
    assert {p: n for p, n in fast.pairs.items() if n} == exact


def test_sennrich_example_merges_most_frequent_pairs_first():
    corpus = ["low"] * 5 + ["lower"] * 2 + ["newest"] * 6 + ["widest"] * 3
    tok = BPETokenizer().train(corpus, vocab_size=50)
    # (e,s) and (s,t</w>) both occur 9 times: the tie goes to the smaller ids, then es+t</w> (9), l+o (7)
    assert tok.merges[:3] == [("e", "s"), ("es", "t</w>"), ("l", "o")]
    assert [tok.tokenize(w) for w in ("low", "newest")] == [["low</w>"], ["newest</w>"]]  # room to merge every word whole
    assert tok.tokenize("lowest")[-1] == "est</w>"
    assert tok.decode(tok.encode("newest lower")) == "newest lower"
    assert BPETokenizer().train(corpus, vocab_size=50, min_freq=7).merges == [("e", "s"), ("es", "t</w>"), ("l", "o")]


def test_bpe_tokenizer_json_encodes_like_hugging_face(tmp_path):
    tok = BPETokenizer().train(real_texts("sst2", 0, 300) + real_texts("chnsenticorp", 0, 100), vocab_size=2500)
    assert len(tok.vocab) == 2500
    tok.save(tmp_path)
    hf = HFTokenizer.from_file(str(tmp_path / "tokenizer.json"))
    held_out = real_texts("sst2", 5000, 100) + real_texts("chnsenticorp", 5000, 50) + EXTRA
    for text in held_out:
        ids = tok.encode(text)
        assert hf.encode(text).ids == ids
        assert hf.encode(text).tokens == tok.tokenize(text)
        assert hf.decode(ids) == tok.decode(ids)
    again = load_tokenizer(tmp_path)
    assert isinstance(again, BPETokenizer) and again.merges == tok.merges
    assert [again.encode(t) for t in held_out] == [tok.encode(t) for t in held_out]


@pytest.mark.parametrize("pre_tokenizer, suffix", [("BertPreTokenizer", "</w>"), ("Whitespace", None)])
def test_loads_bpe_written_by_hugging_face(tmp_path, pre_tokenizer, suffix):
    with_suffix = {"end_of_word_suffix": suffix} if suffix else {}
    hf = HFTokenizer(models.BPE(unk_token="[UNK]", **with_suffix))
    hf.pre_tokenizer = getattr(pre_tokenizers, pre_tokenizer)()
    if suffix:
        hf.decoder = decoders.BPEDecoder(suffix=suffix)
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=["[UNK]", "[PAD]"], show_progress=False, **with_suffix)
    hf.train_from_iterator(real_texts("sst2", 0, 300), trainer)
    hf.save(str(tmp_path / "hf.json"))
    tok = load_tokenizer(tmp_path / "hf.json")
    assert isinstance(tok, BPETokenizer) and tok.end_of_word_suffix == suffix
    for text in real_texts("sst2", 3000, 50) + EXTRA:
        assert tok.encode(text) == hf.encode(text).ids
        assert tok.decode(tok.encode(text)) == hf.decode(hf.encode(text).ids)


def test_bpe_bad_inputs(tmp_path):
    with pytest.raises(TokenizerError, match="empty"):
        build_tokenizer("bpe").train(["", "  \n"], vocab_size=100)
    with pytest.raises(TokenizerError, match="smaller than the base alphabet"):
        build_tokenizer("bpe").train(["abcdef ghij"], vocab_size=5)
    with pytest.raises(TokenizerError, match="vocab"):
        build_tokenizer("bpe").train(["abc"])
    limited = BPETokenizer(limit_alphabet=3).train(["aaa bbb ccc d"], vocab_size=20)
    assert limited.tokenize("ad") == ["a", "[UNK]"]
    with pytest.raises(TokenizerError, match="pre-tokenizer"):
        BPETokenizer(pre_tokenizer="Metaspace")
    tok = BPETokenizer().train(["low lower lowest"], vocab_size=30)
    tok.save(tmp_path)
    data = json.loads((tmp_path / "tokenizer.json").read_text(encoding="utf-8"))
    data["model"]["merges"].append(["zz", "q"])
    (tmp_path / "tokenizer.json").write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(TokenizerError, match="corrupted"):
        load_tokenizer(tmp_path)
    data["model"] = {"type": "WordPiece", "vocab": {"a": 0}}
    (tmp_path / "tokenizer.json").write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(TokenizerError, match="expected a BPE model"):
        load_tokenizer(tmp_path)
    data["model"] = {"type": "BPE", "vocab": ["a"], "merges": []}
    (tmp_path / "tokenizer.json").write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(TokenizerError, match="corrupted"):
        load_tokenizer(tmp_path)
