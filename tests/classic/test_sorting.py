"""Every sort equals sorted() (key=, reverse=); the stable ones keep equal keys in order; the unstable ones are caught."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nlplab.classic.sorting import SORTS, STABLE, Counter, is_stable_on, stability_counterexample
from nlplab.errors import ConfigError

INTS = st.lists(st.integers(-1000, 1000), max_size=60)
WORDS = st.lists(st.text(alphabet="ab中文z", max_size=5), max_size=40)


@pytest.mark.parametrize("name", list(SORTS))
@settings(max_examples=60, deadline=None)
@given(values=INTS, reverse=st.booleans())
def test_equal_to_sorted_on_integers(name, values, reverse):
    assert SORTS[name](values, reverse=reverse) == sorted(values, reverse=reverse)


@pytest.mark.parametrize("name", [n for n in SORTS if n != "counting"])
@settings(max_examples=40, deadline=None)
@given(words=WORDS, reverse=st.booleans())
def test_equal_to_sorted_on_strings(name, words, reverse):
    assert SORTS[name](words, reverse=reverse) == sorted(words, reverse=reverse)


@pytest.mark.parametrize("name", [n for n in SORTS if STABLE[n]])
@settings(max_examples=60, deadline=None)
@given(keys=st.lists(st.integers(0, 4), max_size=50), reverse=st.booleans())
def test_stable_sorts_keep_equal_keys_in_input_order(name, keys, reverse):
    records = [(k, i) for i, k in enumerate(keys)]  # (key, input position): the same records sorted() would give
    assert SORTS[name](records, key=lambda r: r[0], reverse=reverse) == sorted(records, key=lambda r: r[0], reverse=reverse)


@pytest.mark.parametrize("name", [n for n in SORTS if not STABLE[n]])
def test_unstable_sorts_have_a_counterexample(name):
    found = stability_counterexample(SORTS[name])
    assert found is not None
    keys, out = found
    assert not is_stable_on(SORTS[name], keys) and [k for _, k in out] == sorted(keys)


@pytest.mark.parametrize("name", [n for n in SORTS if STABLE[n]])
def test_no_counterexample_for_stable_sorts(name):
    assert stability_counterexample(SORTS[name], max_length=5) is None


def test_counts():
    for name in ("insertion", "bubble"):
        counter = Counter()
        SORTS[name](range(100), counter=counter)
        assert counter.comparisons == 99  # sorted input: one pass
        counter = Counter()
        SORTS[name](range(100, 0, -1), counter=counter)
        assert counter.comparisons == 100 * 99 // 2
    counter = Counter()
    SORTS["radix"](list(range(70000)), counter=counter)
    assert counter.comparisons == 0 and counter.key_reads == 3 * 70000  # three base-256 digits


def test_integer_only_sorts_name_the_fix():
    with pytest.raises(ConfigError, match="integer keys"):
        SORTS["counting"]([1.5, 2.0])
