import json

import pytest
from tokenizers import Tokenizer as HFTokenizer

from nlplab.errors import TokenizerError
from nlplab.text import CharTokenizer, WordTokenizer, build_tokenizer, load_tokenizer

TEXTS = ["今天天气很好，我们去公园。", "这家酒店 服务 很差", "hello world 123", "今天 不好"]


def test_char_vocab_specials_min_freq_and_max_size():
    tok = CharTokenizer().train(TEXTS, min_freq=2)
    assert tok.vocab["[PAD]"] == 0 and tok.vocab["[UNK]"] == 1
    assert "天" in tok.vocab and "园" not in tok.vocab  # 园 appears once
    assert CharTokenizer().train(TEXTS, vocab_size=5).vocab_size == 5
    assert tok.encode("园天") == [tok.unk_id, tok.vocab["天"]]


def test_char_tokenizer_json_encodes_like_hugging_face(tmp_path):
    tok = CharTokenizer().train(TEXTS)
    tok.save(tmp_path)
    hf = HFTokenizer.from_file(str(tmp_path / "tokenizer.json"))
    for text in TEXTS + ["陌生字 与 空格\t混合"]:
        assert hf.encode(text, add_special_tokens=False).ids == tok.encode(text)
    again = load_tokenizer(tmp_path)
    assert isinstance(again, CharTokenizer) and again.vocab == tok.vocab


def test_word_tokenizer_round_trip(tmp_path):
    tok = WordTokenizer().train(TEXTS)
    assert tok.tokenize("我们去公园") == ["我们", "去", "公园"]
    assert tok.decode(tok.encode("今天天气很好")) == "今天天气很好"
    assert tok.decode(tok.encode("hello world")) == "hello world"
    tok.save(tmp_path)
    assert load_tokenizer(tmp_path).vocab == tok.vocab


def test_bad_tokenizer_inputs(tmp_path):
    with pytest.raises(TokenizerError, match="empty"):
        CharTokenizer().train(["", "   "])
    with pytest.raises(TokenizerError, match="vocab size"):
        CharTokenizer().train(TEXTS, vocab_size=2)
    with pytest.raises(TokenizerError, match="unknown tokenizer algorithm"):
        build_tokenizer("sentencepiece")
    (tmp_path / "tokenizer.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(TokenizerError, match="corrupted"):
        load_tokenizer(tmp_path)
    (tmp_path / "tokenizer.json").write_text(json.dumps({"model": {"type": "Unigram"}}), encoding="utf-8")
    with pytest.raises(TokenizerError, match="not supported"):
        load_tokenizer(tmp_path)
    with pytest.raises(TokenizerError, match="no such"):
        load_tokenizer(tmp_path / "missing")


def test_special_tokens_in_text_stay_whole_like_hugging_face(tmp_path):
    tok = CharTokenizer().train(TEXTS)
    assert tok.tokenize("好[PAD]天") == ["好", "[PAD]", "天"]
    tok.save(tmp_path)
    hf = HFTokenizer.from_file(str(tmp_path / "tokenizer.json"))
    assert hf.encode("好[PAD]天", add_special_tokens=False).ids == tok.encode("好[PAD]天")
