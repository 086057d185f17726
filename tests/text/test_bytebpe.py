import json

import pytest
import tiktoken
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer as HFTokenizer
from tokenizers import decoders, models, pre_tokenizers, trainers

from nlplab.data.readers import read_labelled_tsv
from nlplab.data.registry import find_data
from nlplab.errors import TokenizerError
from nlplab.text import ByteBPETokenizer, build_tokenizer, load_tokenizer
from nlplab.text.bytebpe import BYTE_TO_CHAR, ENDOFTEXT, GPT2_PATTERN

EXTRA = [
    "Hello world!  It's   spaced\n\n\tout  ", "今天天气很好，我们去公园。", "emoji 🎉👩‍👩‍👧 and ✓ done", "ctrl \x00\x07\x1b[0m \x7f\u200b",
    f"one{ENDOFTEXT}two {ENDOFTEXT} three<|endoftext", "naïve café Ωμέγα Привет عربى", "1234567 3.14 $%^&*()", "",
]


def real_texts(name: str, start: int, n: int) -> list[str]:
    return [text for text, _ in read_labelled_tsv(find_data(name) / "train.tsv")[start : start + n]]


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    return real_texts("sst2", 0, 400) + real_texts("chnsenticorp", 0, 150)


@pytest.fixture(scope="module")
def trained(corpus) -> ByteBPETokenizer:
    return ByteBPETokenizer().train(corpus, vocab_size=1500)


def test_bytes_to_unicode_is_gpt2_byte_level_alphabet():
    assert len(set(BYTE_TO_CHAR.values())) == 256
    assert set(BYTE_TO_CHAR.values()) == set(pre_tokenizers.ByteLevel.alphabet())
    assert BYTE_TO_CHAR[ord(" ")] == "Ġ" and BYTE_TO_CHAR[ord("\n")] == "Ċ" and BYTE_TO_CHAR[ord("a")] == "a"


@settings(max_examples=200, deadline=None)
@given(st.text(st.characters(blacklist_categories=("Cs",)), max_size=40) | st.text("今天🎉é\x00\n\t ab'sĠ", max_size=40))
def test_any_unicode_round_trips(trained, text):
    assume(not any(special in text for special in trained.special_tokens))  # decode leaves special tokens out
    assert trained.decode(trained.encode(text)) == text


def test_untrained_byte_level_encodes_bytes_and_special_tokens_are_never_split():
    tok = ByteBPETokenizer()
    assert tok.decode(tok.encode("é!")) == "é!" and len(tok.encode("é!")) == 3
    ids = tok.encode(f"a{ENDOFTEXT}b")
    assert ids[1] == tok.vocab[ENDOFTEXT] and len(ids) == 3
    assert tok.tokenize(f"x{ENDOFTEXT}") == ["x", ENDOFTEXT]


def test_training_makes_the_merges_of_hugging_face_bpe_trainer(corpus, trained):
    hf = HFTokenizer(models.BPE())
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=1500, special_tokens=[ENDOFTEXT], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    hf.train_from_iterator(corpus, trainer)
    model = json.loads(hf.to_str())["model"]
    assert trained.merges == [tuple(m) for m in model["merges"]]
    assert trained.vocab == model["vocab"]


def test_merges_encode_like_hugging_face_and_tiktoken(tmp_path, trained):
    trained.save(tmp_path)
    hf = HFTokenizer.from_file(str(tmp_path / "tokenizer.json"))
    enc = tiktoken.Encoding("nlplab", pat_str=GPT2_PATTERN, mergeable_ranks=trained.mergeable_ranks(), special_tokens={ENDOFTEXT: trained.vocab[ENDOFTEXT]})
    for text in real_texts("sst2", 6000, 150) + real_texts("chnsenticorp", 6000, 80) + EXTRA:
        ids = trained.encode(text)
        assert hf.encode(text).ids == ids
        assert enc.encode(text, allowed_special="all") == ids
        assert hf.decode(ids) == trained.decode(ids) == enc.decode(ids).replace(ENDOFTEXT, "")
    again = load_tokenizer(tmp_path)
    assert isinstance(again, ByteBPETokenizer) and again.merges == trained.merges and again.vocab == trained.vocab


def test_custom_pattern_saves_as_split_then_byte_level(tmp_path, corpus):
    tok = ByteBPETokenizer(pattern=r"\p{Han}|[^\s\p{Han}]+").train(corpus[:200], vocab_size=600)
    tok.save(tmp_path)
    hf = HFTokenizer.from_file(str(tmp_path / "tokenizer.json"))
    for text in EXTRA + corpus[300:330]:
        assert hf.encode(text).ids == tok.encode(text)
    assert load_tokenizer(tmp_path).pattern == tok.pattern


def test_loads_byte_level_bpe_written_by_hugging_face(tmp_path, corpus):
    hf = HFTokenizer(models.BPE())
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    hf.decoder = decoders.ByteLevel()
    hf.train_from_iterator(corpus[:300], trainers.BpeTrainer(vocab_size=800, special_tokens=["<s>", "</s>"], show_progress=False,
                                                               initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    hf.save(str(tmp_path / "tokenizer.json"))
    tok = load_tokenizer(tmp_path)
    assert isinstance(tok, ByteBPETokenizer) and tok.add_prefix_space
    for text in EXTRA + ["<s>hi</s> there"] + corpus[400:430]:
        assert tok.encode(text) == hf.encode(text).ids
        assert tok.decode(tok.encode(text)) == hf.decode(hf.encode(text).ids)


def test_byte_level_bad_inputs(tmp_path):
    with pytest.raises(TokenizerError, match="empty"):
        build_tokenizer("bytebpe").train([""], vocab_size=300)
    with pytest.raises(TokenizerError, match="smaller than the base alphabet"):
        build_tokenizer("bytebpe").train(["hello"], vocab_size=200)
    with pytest.raises(TokenizerError, match="not a valid regex"):
        ByteBPETokenizer(pattern="(unclosed")
    tok = ByteBPETokenizer().train(["hello hello"], vocab_size=260)
    tok.save(tmp_path)
    data = json.loads((tmp_path / "tokenizer.json").read_text(encoding="utf-8"))
    del data["model"]["vocab"]["Ġ"]
    (tmp_path / "tokenizer.json").write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(TokenizerError, match="corrupted"):
        load_tokenizer(tmp_path)
    data["model"]["vocab"]["Ġ"] = len(data["model"]["vocab"])
    data["pre_tokenizer"] = {"type": "Metaspace"}
    (tmp_path / "tokenizer.json").write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(TokenizerError, match="not supported"):
        load_tokenizer(tmp_path)
