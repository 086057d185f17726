import json
import re

import pytest
from tokenizers import Tokenizer as HFTokenizer

from nlplab.cli import main
from nlplab.data.readers import read_labelled_tsv
from nlplab.data.registry import find_data
from nlplab.text import build_tokenizer, load_tokenizer


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    texts = [t for t, _ in read_labelled_tsv(find_data("sst2") / "train.tsv")[:200]]
    texts += [t for t, _ in read_labelled_tsv(find_data("chnsenticorp") / "train.tsv")[:100]]
    path.write_text("\n\n".join(texts) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("algo, vocab_size", [("bpe", 3000), ("bytebpe", 600), ("wordpiece", 3000)])
def test_train_then_encode(corpus, tmp_path, capsys, algo, vocab_size):
    out = tmp_path / algo
    assert main(["tokenizer", "train", "--algo", algo, "--vocab-size", str(vocab_size), "--input", str(corpus), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    texts = [line for line in corpus.read_text(encoding="utf-8").splitlines() if line.strip()]
    merges = build_tokenizer(algo).train(texts, vocab_size=vocab_size).merges
    assert "first merges: " + ", ".join(f"{a} + {b}" for a, b in merges[:10]) in printed
    tok = load_tokenizer(out)
    assert tok.vocab_size == vocab_size
    texts = ["The film is great!", "这家酒店服务很好"]
    assert main(["tokenizer", "encode", str(out), *texts, "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()[-2:]]
    hf = HFTokenizer.from_file(str(out / "tokenizer.json"))
    for text, row in zip(texts, rows):
        ids = tok.encode(text)
        assert row == {"tokens": [tok.id_to_token[i] for i in ids], "ids": ids}
        assert row["ids"] == hf.encode(text).ids


def test_limit_alphabet_lets_chinese_bpe_fit_a_small_vocab(corpus, tmp_path, capsys):
    args = ["tokenizer", "train", "--algo", "bpe", "--vocab-size", "400", "--input", str(corpus), "--out", str(tmp_path / "t")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "smaller than the base alphabet" in err and "--limit-alphabet N" in err
    minimum = int(re.search(r"use --vocab-size (\d+) or more", err).group(1))
    assert main([*args[:5], str(minimum - 1), *args[6:]]) == 2
    assert main([*args[:5], str(minimum), *args[6:], "--no-progress"]) == 0  # the suggested size is the real minimum
    capsys.readouterr()
    assert main([*args, "--limit-alphabet", "100"]) == 0
    tok = load_tokenizer(tmp_path / "t")
    assert tok.vocab_size == 400 and tok.limit_alphabet == 100


@pytest.mark.parametrize(
    "args, message",
    [
        (["--algo", "bpe", "--vocab-size", "10"], "smaller than the base alphabet"),
        (["--algo", "wordpiece"], "needs a vocabulary size"),
        (["--algo", "sentencepiece", "--vocab-size", "100"], "unknown tokenizer algorithm"),
        (["--algo", "bytebpe", "--vocab-size", "300", "--input", "{tmp}/blank.txt"], "empty"),
    ],
)
def test_bad_training_input_exits_2(corpus, tmp_path, capsys, args, message):
    (tmp_path / "blank.txt").write_text("\n  \n", encoding="utf-8")
    args = [a.format(tmp=tmp_path) for a in args]
    inputs = [] if "--input" in args else ["--input", str(corpus)]
    assert main(["tokenizer", "train", *args, *inputs, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err  # the progress bar may come first
    assert err.strip().splitlines()[-1].startswith("nlplab: error:") and message in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_corrupted_or_wrong_type_tokenizer_exits_2(tmp_path, capsys):
    (tmp_path / "tokenizer.json").write_text('{"pre_tokenizer": {"type": "BertPreTokenizer"}, "model": {"type": "BPE", "vocab": {"a": 0}, "merges": [["a", "b"]]}}', encoding="utf-8")
    assert main(["tokenizer", "encode", str(tmp_path), "ab"]) == 2
    assert "corrupted" in capsys.readouterr().err
    (tmp_path / "tokenizer_config.json").write_text('{"nlplab_algo": "wordpiece"}', encoding="utf-8")
    assert main(["tokenizer", "encode", str(tmp_path), "ab"]) == 2
    assert "expected a WordPiece model" in capsys.readouterr().err
