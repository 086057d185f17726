import numpy as np
import pytest

from nlplab.data.pd98 import parse_tagged_line, read_pd98
from nlplab.errors import DataError


def test_parse_tagged_line_splits_on_the_last_slash():
    assert parse_tagged_line("江/nr  泽民/nr  1/2/m") == [("江", "nr"), ("泽民", "nr"), ("1/2", "m")]


def test_bad_token_names_file_and_line(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text("迈向/v\n充满 希望/n\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"bad.txt:2: token '充满'"):
        read_pd98(path)


def test_the_embedded_corpus():
    paragraphs = read_pd98()
    assert len(paragraphs) == 19484
    assert paragraphs[0][:2] == [("迈向", "v"), ("充满", "v")]


def test_mnist_follows_the_book_split():
    from nlplab.data.mnist import load_mnist

    mnist = load_mnist()
    assert mnist.train.x.shape == (50_000, 784) and mnist.validation.x.shape == (10_000, 784)
    assert mnist.test.y.shape == (10_000,) and 0.0 <= mnist.test.x.min() and mnist.test.x.max() <= 1.0
    assert set(np.unique(mnist.train.y)) == set(range(10))
