import gensim
import pytest
import torch

from nlplab.errors import DataError
from nlplab.models.word_vectors import WordVectors


@pytest.fixture
def vectors():
    g = torch.Generator().manual_seed(0)
    return WordVectors(["北京", "中国", "东京", "日本", "好", "坏", "apple", "x"], torch.randn(8, 6, generator=g))


def test_saved_vectors_load_back_and_into_gensim(vectors, tmp_path):
    path = vectors.save(tmp_path / "vectors.txt")
    back = WordVectors.load(path)
    assert back.words == vectors.words
    torch.testing.assert_close(back.vectors, vectors.vectors, rtol=1e-7, atol=1e-7)
    kv = gensim.models.KeyedVectors.load_word2vec_format(str(path), binary=False)
    assert list(kv.index_to_key) == vectors.words
    torch.testing.assert_close(torch.from_numpy(kv.vectors), vectors.vectors, rtol=1e-7, atol=1e-7)
    for word in vectors.words:
        ours, theirs = vectors.most_similar(word, 5), kv.most_similar(word, topn=5)
        assert [w for w, _ in ours] == [w for w, _ in theirs]
        torch.testing.assert_close(torch.tensor([s for _, s in ours]), torch.tensor([s for _, s in theirs]), rtol=0, atol=1e-6)
    ours, theirs = vectors.analogy("北京", "中国", "东京", k=3), kv.most_similar(positive=["中国", "东京"], negative=["北京"], topn=3)
    assert [w for w, _ in ours] == [w for w, _ in theirs]
    torch.testing.assert_close(torch.tensor([s for _, s in ours]), torch.tensor([s for _, s in theirs]), rtol=0, atol=1e-6)


def test_neighbours_and_analogy_on_vectors_built_by_hand():
    words = ["man", "woman", "king", "queen", "other"]
    vectors = WordVectors(words, torch.tensor([[1.0, 0, 0], [1, 1, 0], [1, 0, 1], [1, 1, 1], [0, 0, -1]]))
    assert [w for w, _ in vectors.most_similar("queen", 4)] == ["woman", "king", "man", "other"]
    assert vectors.analogy("man", "woman", "king", k=2) == [("queen", pytest.approx(0.97529, abs=1e-5)),
                                                             ("other", pytest.approx(-0.65328, abs=1e-5))]


def test_embedding_rows_copies_known_tokens(vectors):
    weight = torch.zeros(4, 6)
    assert vectors.embedding_rows({"[PAD]": 0, "好": 1, "未知": 2, "x": 3}, weight) == 2
    torch.testing.assert_close(weight[1], vectors["好"])
    torch.testing.assert_close(weight[3], vectors["x"])
    assert weight[0].abs().sum() == 0 and weight[2].abs().sum() == 0
    with pytest.raises(DataError, match="dimensions"):
        vectors.embedding_rows({"好": 0}, torch.zeros(1, 5))


def test_a_malformed_file_names_its_line(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text("2 3\n好 1 2 3\n坏 1 2\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"bad.txt:3: expected a word and 3 numbers"):
        WordVectors.load(path)
