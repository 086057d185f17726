import pytest

from nlplab.data.pd98 import parse_tagged_line
from nlplab.data.tagging import (
    Tagged,
    check_tags,
    infer_scheme,
    load_tagging,
    merge_names,
    ner_tags,
    pd98_sentences,
    pos_tags,
    read_conll,
    read_tagged,
    read_uer_tsv,
    seg_tags,
    sentences,
)
from nlplab.errors import DataError
from nlplab.train.spans import bmes_spans, word_spans


def words(line):
    return parse_tagged_line(line)


def test_ner_tags_merge_surname_and_given_name():
    tokens = words("江/nr  泽民/nr  李/nr  鹏/nr  在/p  北京/ns  会见/v  欧阳/nr  修/nr  和/c  克林顿/nr  新华社/nt")
    assert merge_names(tokens)[:2] == [("江泽民", "nr"), ("李鹏", "nr")]
    tags = ner_tags(tokens)
    assert tags[:5] == ["B-PER", "I-PER", "I-PER", "B-PER", "I-PER"]
    assert tags[5:8] == ["O", "B-LOC", "I-LOC"]
    assert tags[10:13] == ["B-PER", "I-PER", "I-PER"]  # 欧阳修, a compound surname
    assert tags[13:] == ["O", "B-PER", "I-PER", "I-PER", "B-ORG", "I-ORG", "I-ORG"]
    # two full names in a row are two people, not one
    assert [w for w, _ in merge_names(words("邓/nr  小平/nr  江/nr  泽民/nr"))] == ["邓小平", "江泽民"]


def test_seg_and_pos_tags():
    tokens = words("迈向/v  充满/v  希望/n  的/u  一九九八年/t")
    assert seg_tags(tokens) == ["B", "E", "B", "E", "B", "E", "S", "B", "M", "M", "M", "E"]
    assert pos_tags(tokens)[:7] == ["B-v", "I-v", "B-v", "I-v", "B-n", "I-n", "B-u"]


def test_sentences_end_after_punctuation_and_closing_quotes():
    tokens = words("他/r  说/v  ：/w  “/w  好/a  。/w  ”/w  我/r  走/v  ？/w  走/v")
    assert [[w for w, _ in s] for s in sentences(tokens)] == [["他", "说", "：", "“", "好", "。", "”"], ["我", "走", "？"], ["走"]]


def test_pd98_sets_are_split_80_10_10_and_consistent():
    data, corpus = load_tagging("pd98-ner"), pd98_sentences()
    total = len(data.train) + len(data.dev) + len(data.test)
    assert total == len(corpus) and abs(len(data.train) / total - 0.8) < 0.001
    assert data.labels == ["O", "B-LOC", "B-ORG", "B-PER", "I-LOC", "I-ORG", "I-PER"] and data.scheme == "ner"
    assert all(len(s.chars) == len(s.tags) for s in data.train)
    texts = lambda split: {"".join(s.chars) + str(s.line) for s in split}
    assert len(texts(data.train) & texts(data.test)) < 0.01 * len(data.test)  # only repeated boilerplate lines
    # the seg tags of a sentence give back its words
    for sentence, _ in corpus[:200]:
        assert bmes_spans(seg_tags(sentence)) == word_spans([w for w, _ in sentence])


def test_msra_ner_from_the_data_root():
    data = load_tagging("msra-ner")
    assert len(data.train) + len(data.dev) + len(data.test) == 2318
    assert set(data.labels) == {"O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"}


def test_uer_tsv_and_conll_files(tmp_path):
    uer = tmp_path / "a.tsv"
    uer.write_text("text_a\tlabel\n李 鹏 好\tB-PER I-PER O\n\n在 北 京\tO B-LOC I-LOC\n", encoding="utf-8")
    items = read_tagged(uer)
    assert [(s.chars, s.tags, s.line) for s in items][1] == (["在", "北", "京"], ["O", "B-LOC", "I-LOC"], 4)
    conll = tmp_path / "a.conll"
    conll.write_text("今\tB\n天 E\n\n\n好\tS\n", encoding="utf-8")
    items = read_tagged(conll)
    assert [(s.chars, s.tags, s.line) for s in items] == [(["今", "天"], ["B", "E"], 1), (["好"], ["S"], 5)]
    assert infer_scheme(items) == "seg"
    data = load_tagging(str(conll))
    assert data.scheme == "seg" and data.labels == ["B", "E", "S"]


@pytest.mark.parametrize("content, reader, message, line", [
    ("text_a\tlabel\n李 鹏\tB-PER I-PER\n在 北 京\tO B-LOC\n", read_uer_tsv, "3 characters but 2 tags", 3),
    ("text_a\tlabel\n李 鹏\tB-PER\tI-PER\n", read_uer_tsv, "2 tab-separated columns", 2),
    ("text\tlabels\n李 鹏\tB-PER I-PER\n", read_uer_tsv, "header", 1),
    ("今\tB\n天\tE\tX\n", read_conll, "one character and its tag", 2),
    ("今\tB\n天天\tE\n", read_conll, "one character and its tag", 2),
    ("今\n", read_conll, "one character and its tag", 1),
])
def test_bad_files_name_the_line(tmp_path, content, reader, message, line):
    path = tmp_path / "bad.txt"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=message) as err:
        reader(path)
    assert err.value.line == line and str(path) in str(err.value)


def test_unknown_tags_and_names_are_errors():
    with pytest.raises(DataError, match="bad.tsv:7: unknown tag") as err:
        check_tags([Tagged(["a"], ["O"], 3), Tagged(["b"], ["B-XYZ"], 7)], ["O", "B-PER"], "bad.tsv")
    assert err.value.line == 7
    with pytest.raises(DataError, match="unknown tagging data set"):
        load_tagging("no-such-set")
    assert infer_scheme([Tagged(["a", "b"], ["B-PER", "O"])]) == "ner"
    assert infer_scheme([Tagged(["a", "b"], ["B-n", "I-n"])]) == "pos"
