import pytest

from nlplab.data.pairs import load_pairs, read_pairs
from nlplab.errors import DataError


def write(tmp_path, text: str | bytes, name="pairs.tsv"):
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


def test_reads_pairs_and_the_atec_layout(tmp_path):
    assert read_pairs(write(tmp_path, "怎么办\t如何是好\t1\r\n\n今天\t明天 \t0\n")) == [("怎么办", "如何是好", 1), ("今天", "明天", 0)]
    atec = write(tmp_path, "\ufeff1\t花呗怎么还\t怎么还花呗\t1\n2\t借呗\t余额宝\t0\n", "atec.csv")
    assert read_pairs(atec, id_column=True) == [("花呗怎么还", "怎么还花呗", 1), ("借呗", "余额宝", 0)]


@pytest.mark.parametrize("text, message, line", [
    ("a\tb\t1\nonly two\tcolumns\n", "expected 3 tab-separated columns .* found 2", 2),
    ("a\tb\t1\n1\ta\tb\t0\n", "found 4", 2),
    ("a\tb\tyes\n", "label must be 0 .* or 1 .*found 'yes'", 1),
    ("a\tb\t1\na\t \t0\n", "empty sentence2", 2),
    (b"a\tb\t0\n" + b"\xb2\xbb\tb\t1\n", "not valid UTF-8", 2),
    ("\n\n", "empty", None),
])
def test_bad_lines_name_file_and_line(tmp_path, text, message, line):
    path = write(tmp_path, text)
    with pytest.raises(DataError, match=message) as err:
        read_pairs(path)
    assert str(path) in str(err.value) and err.value.line == line


def test_a_bare_file_is_split_80_10_10_with_a_fixed_seed(tmp_path):
    path = write(tmp_path, "".join(f"句子{i}\t问题{i}\t{i % 2}\n" for i in range(50)))
    a, b = load_pairs(str(path)), load_pairs(str(path))
    assert (len(a.train), len(a.dev), len(a.test)) == (40, 5, 5)
    assert a.train == b.train and a.test == b.test
    assert sorted(a.train + a.dev + a.test) == sorted(read_pairs(path))
    dev = write(tmp_path, "甲\t乙\t1\n", "dev.tsv")
    with_dev = load_pairs(str(path), str(dev))
    assert len(with_dev.train) == 50 and with_dev.dev == with_dev.test == [("甲", "乙", 1)]


def test_named_sets_and_their_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("NLPLAB_DATA", str(tmp_path))
    (tmp_path / "lcqmc").mkdir()
    write(tmp_path / "lcqmc", "".join(f"问{i}\t答{i}\t{i % 2}\n" for i in range(100)), "dev.txt")
    data = load_pairs("lcqmc")
    assert (len(data.train), len(data.dev), len(data.test)) == (80, 10, 10) and "official" in data.notes[0]
    assert load_pairs("lcqmc", str(write(tmp_path, "甲\t乙\t1\n"))).dev == [("甲", "乙", 1)]
    with pytest.raises(DataError, match="unknown pair data set 'quora'"):
        load_pairs("quora")


def test_the_shared_lcqmc_and_atec_files():
    lcqmc, atec = load_pairs("lcqmc"), load_pairs("atec")
    assert (len(lcqmc.train), len(lcqmc.dev), len(lcqmc.test)) == (7042, 880, 880)
    assert len(atec.train) + len(atec.dev) + len(atec.test) == 39346
    assert not atec.train[0][0].startswith("\ufeff")
    both = load_pairs("lcqmc+atec")
    assert both.test == lcqmc.test and len(both.train) == 7042 + 39346
