"""Sorting algorithms by hand, each taking `key=` and `reverse=` like `sorted()` and marked stable or not.

A sort is stable when records with equal keys keep their input order. `reverse=True` puts larger keys first and,
as in `sorted()`, still keeps equal keys in input order for the stable sorts.

    insertion  O(n²) comparisons, O(n) on sorted input          stable
    bubble     O(n²), passes until one makes no swap             stable
    selection  O(n²) always; the swap jumps over equal keys      unstable
    merge      O(n log n); ties taken from the left half         stable
    quick      O(n log n) expected (middle pivot, Hoare)         unstable
    heap       O(n log n); the heap scrambles equal keys         unstable
    counting   O(n + k) for integer keys in a range of size k    stable
    radix      LSD: one stable counting pass per digit, O(n·d)   stable
               (integers: base-256 digits; strings: characters from the last, shorter strings padded by a
               marker below every character)

The comparison sorts count their key comparisons in `Counter.comparisons`; counting and radix sort compare
nothing and count the keys (or digits) they read in `Counter.key_reads`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from nlplab.errors import ConfigError

RADIX = 256


@dataclass
class Counter:
    comparisons: int = 0
    key_reads: int = 0


class _Before:
    """`before(a, b)`: key a goes strictly before key b (a < b, or a > b when reversed), counted."""

    def __init__(self, reverse: bool, counter: Counter | None) -> None:
        self.reverse, self.counter = reverse, counter

    def __call__(self, a: Any, b: Any) -> bool:
        if self.counter is not None:
            self.counter.comparisons += 1
        return a > b if self.reverse else a < b


Records = list[tuple[Any, Any]]  # (key, item) pairs


def _keyed(items: Iterable[Any], key: Callable[[Any], Any] | None) -> Records:
    return [(item if key is None else key(item), item) for item in items]


def insertion_sort(items: Iterable[Any], key: Callable[[Any], Any] | None = None, reverse: bool = False,
                   counter: Counter | None = None) -> list[Any]:
    """Grow a sorted prefix: shift larger records right until the new one's place is found."""
    a, before = _keyed(items, key), _Before(reverse, counter)
    for i in range(1, len(a)):
        record, j = a[i], i
        while j > 0 and before(record[0], a[j - 1][0]):
            a[j] = a[j - 1]
            j -= 1
        a[j] = record
    return [item for _, item in a]


def bubble_sort(items: Iterable[Any], key: Callable[[Any], Any] | None = None, reverse: bool = False,
                counter: Counter | None = None) -> list[Any]:
    """Swap neighbours out of order; each pass carries the largest remaining record to the end (exchange sort)."""
    a, before = _keyed(items, key), _Before(reverse, counter)
    for end in range(len(a) - 1, 0, -1):
        swapped = False
        for j in range(end):
            if before(a[j + 1][0], a[j][0]):
                a[j], a[j + 1] = a[j + 1], a[j]
                swapped = True
        if not swapped:
            break
    return [item for _, item in a]


def selection_sort(items: Iterable[Any], key: Callable[[Any], Any] | None = None, reverse: bool = False,
                   counter: Counter | None = None) -> list[Any]:
    """Select the smallest remaining record and swap it into place."""
    a, before = _keyed(items, key), _Before(reverse, counter)
    for i in range(len(a) - 1):
        smallest = i
        for j in range(i + 1, len(a)):
            if before(a[j][0], a[smallest][0]):
                smallest = j
        a[i], a[smallest] = a[smallest], a[i]
    return [item for _, item in a]


def merge_sort(items: Iterable[Any], key: Callable[[Any], Any] | None = None, reverse: bool = False,
               counter: Counter | None = None) -> list[Any]:
    """Sort each half, then merge, taking the left record on ties."""
    before = _Before(reverse, counter)

    def sort(a: Records) -> Records:
        if len(a) <= 1:
            return a
        left, right = sort(a[: len(a) // 2]), sort(a[len(a) // 2 :])
        merged, i, j = [], 0, 0
        while i < len(left) and j < len(right):
            if before(right[j][0], left[i][0]):
                merged.append(right[j])
                j += 1
            else:
                merged.append(left[i])
                i += 1
        return merged + left[i:] + right[j:]

    return [item for _, item in sort(_keyed(items, key))]


def quick_sort(items: Iterable[Any], key: Callable[[Any], Any] | None = None, reverse: bool = False,
               counter: Counter | None = None) -> list[Any]:
    """Hoare partition around the middle record's key; recurse into the smaller side, loop on the larger."""
    a, before = _keyed(items, key), _Before(reverse, counter)

    def sort(lo: int, hi: int) -> None:
        while lo < hi:
            pivot = a[(lo + hi) // 2][0]
            i, j = lo - 1, hi + 1
            while True:
                i += 1
                while before(a[i][0], pivot):
                    i += 1
                j -= 1
                while before(pivot, a[j][0]):
                    j -= 1
                if i >= j:
                    break
                a[i], a[j] = a[j], a[i]
            if j - lo < hi - j:
                sort(lo, j)
                lo = j + 1
            else:
                sort(j + 1, hi)
                hi = j

    sort(0, len(a) - 1)
    return [item for _, item in a]


def heap_sort(items: Iterable[Any], key: Callable[[Any], Any] | None = None, reverse: bool = False,
              counter: Counter | None = None) -> list[Any]:
    """Build a max-heap (in `before` order), then swap its root to the end and sift down, n − 1 times."""
    a, before = _keyed(items, key), _Before(reverse, counter)

    def sift_down(root: int, end: int) -> None:
        while (child := 2 * root + 1) < end:
            if child + 1 < end and before(a[child][0], a[child + 1][0]):
                child += 1
            if not before(a[root][0], a[child][0]):
                return
            a[root], a[child] = a[child], a[root]
            root = child

    for root in range(len(a) // 2 - 1, -1, -1):
        sift_down(root, len(a))
    for end in range(len(a) - 1, 0, -1):
        a[0], a[end] = a[end], a[0]
        sift_down(0, end)
    return [item for _, item in a]


def _counting_pass(a: Records, digit: Callable[[Any], int], size: int, reverse: bool, counter: Counter | None) -> Records:
    """Stable distribution of records into `size` buckets by digit(key), buckets in increasing (or decreasing) order."""
    buckets: list[Records] = [[] for _ in range(size)]
    for record in a:
        buckets[digit(record[0])].append(record)
    if counter is not None:
        counter.key_reads += len(a)
    return [record for bucket in (reversed(buckets) if reverse else buckets) for record in bucket]


def _integer_keys(a: Records, algorithm: str) -> int:
    """The smallest key, after checking every key is an int."""
    if any(not isinstance(k, int) or isinstance(k, bool) for k, _ in a):
        raise ConfigError(f"{algorithm} sort needs integer keys (use key= to map records to ints)")
    return min(k for k, _ in a)


def counting_sort(items: Iterable[Any], key: Callable[[Any], Any] | None = None, reverse: bool = False,
                  counter: Counter | None = None) -> list[Any]:
    """One bucket per integer value from min to max; records dropped into buckets in input order."""
    a = _keyed(items, key)
    if not a:
        return []
    low = _integer_keys(a, "counting")
    size = max(k for k, _ in a) - low + 1
    return [item for _, item in _counting_pass(a, lambda k: k - low, size, reverse, counter)]


def radix_sort(items: Iterable[Any], key: Callable[[Any], Any] | None = None, reverse: bool = False,
               counter: Counter | None = None) -> list[Any]:
    """LSD radix sort of integer keys (base-256 digits of key − min) or string keys (characters, last first)."""
    a = _keyed(items, key)
    if not a:
        return []
    if all(isinstance(k, str) for k, _ in a):
        width = max(len(k) for k, _ in a)
        size = max((ord(c) for k, _ in a for c in k), default=0) + 2
        for position in range(width - 1, -1, -1):
            a = _counting_pass(a, lambda k: ord(k[position]) + 1 if position < len(k) else 0, size, reverse, counter)
        return [item for _, item in a]
    low = _integer_keys(a, "radix")
    shift = 0
    while shift == 0 or max(k for k, _ in a) - low >= RADIX**shift:
        a = _counting_pass(a, lambda k: (k - low) // RADIX**shift % RADIX, RADIX, reverse, counter)
        shift += 1
    return [item for _, item in a]


SORTS: dict[str, Callable[..., list[Any]]] = {
    "insertion": insertion_sort, "bubble": bubble_sort, "selection": selection_sort, "merge": merge_sort,
    "quick": quick_sort, "heap": heap_sort, "counting": counting_sort, "radix": radix_sort,
}
STABLE = {"insertion": True, "bubble": True, "selection": False, "merge": True, "quick": False, "heap": False,
          "counting": True, "radix": True}


def is_stable_on(sort: Callable[..., list[Any]], keys: Sequence[int]) -> bool:
    """Whether `sort` keeps records (key, input position) with equal keys in input order on these keys."""
    out = sort(list(enumerate(keys)), key=lambda record: record[1])
    return all(p[0] < q[0] for p, q in zip(out, out[1:]) if p[1] == q[1])


def stability_counterexample(sort: Callable[..., list[Any]], max_length: int = 6,
                             values: int = 3) -> tuple[list[int], list[tuple[int, int]]] | None:
    """The shortest list of integer keys (from range(values), length ≤ max_length) on which `sort` reorders equal
    keys, with the sorted records (input position, key); None when it never does."""
    for length in range(2, max_length + 1):
        for keys in itertools.product(range(values), repeat=length):
            if not is_stable_on(sort, keys):
                return list(keys), sort(list(enumerate(keys)), key=lambda record: record[1])
    return None
