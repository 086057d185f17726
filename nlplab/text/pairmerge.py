"""Pair merging, the loop at the heart of BPE and WordPiece training.

A corpus is a list of distinct words, each a list of symbol ids, and how often each word occurs. Training
repeatedly picks one adjacent pair (a, b) and fuses every occurrence of it into a new symbol. The pair counts

    count(a, b) = Σ_words n_word · (occurrences of a b in the word)

change only in the words that contain (a, b), so `PairCounts.merge` touches only those (found through an
index pair -> words) and adjusts the counts of the neighbouring pairs, instead of recounting the corpus.
`recount_merges` is the textbook version that recounts everything after each merge: the definition the
fast path is tested against, and the baseline of the benchmark.

Encoding replays the learned merges on each word (`apply_merges`, a heap of candidate pairs by rank). `Merger`
wraps it with the byte-level entry point and a word cache; `_pairmerge.c` is the same class in C, used when
the package was built with a C compiler (`COMPILED`) and tested equal to this one.
"""

from __future__ import annotations

import heapq
import operator
import os
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence

Pair = tuple[int, int]

try:
    from nlplab.text._pairmerge import Merger as CompiledMerger
except ImportError:  # built without a C compiler: the Python Merger below does the same, slower
    CompiledMerger = None
# Whether tokenizers built from now on use the compiled merge loop; NLPLAB_PURE_PYTHON=1 turns it off.
COMPILED = CompiledMerger is not None and os.environ.get("NLPLAB_PURE_PYTHON", "") in ("", "0")


def symbol_minter(vocab: dict[str, int], vocab_size: int, join: Callable[[str, str], str] = operator.add,
                  on_new: Callable[[], None] | None = None) -> Callable[[int, int], int | None]:
    """The `new_symbol` of the merge loops: registers the token join(a, b) of ids a, b in `vocab` (whose ids run
    0 … n-1 in insertion order) under the next id, returns its id (equal tokens share one), calls `on_new` for each
    new entry, and returns None once `vocab` holds `vocab_size` entries."""
    tokens = list(vocab)

    def new_symbol(a: int, b: int) -> int | None:
        if len(vocab) >= vocab_size:
            return None
        token = join(tokens[a], tokens[b])
        if token not in vocab:
            vocab[token] = len(tokens)
            tokens.append(token)
            if on_new is not None:
                on_new()
        return vocab[token]

    return new_symbol


class PairCounts:
    """Counts of adjacent symbol pairs over `words` (lists of ids, modified in place), weighted by `counts`."""

    def __init__(self, words: list[list[int]], counts: Sequence[int]) -> None:
        self.words, self.counts = words, counts
        self.pairs: Counter[Pair] = Counter()
        self.where: defaultdict[Pair, list[int]] = defaultdict(list)  # words holding the pair (may repeat, may be stale)
        for i, (word, n) in enumerate(zip(words, counts)):
            for pair in zip(word, word[1:]):
                self.pairs[pair] += n
                self.where[pair].append(i)

    def merge(self, a: int, b: int, new: int) -> tuple[int, list[Pair]]:
        """Replace every `a b` by `new`, left to right in each word (`a a a` -> `aa a`), and update the counts
        of the pairs around each occurrence. Returns how many times `new` now occurs (weighted) and the pairs
        it formed (their count went up, unless a later merge in the same word took them apart again)."""
        pairs, words, counts, merged = self.pairs, self.words, self.counts, 0
        formed: defaultdict[Pair, list[int]] = defaultdict(list)
        for i in dict.fromkeys(self.where.pop((a, b), ())):
            word, n = words[i], counts[i]
            j, unseen = -1, word.count(a)  # occurrences of `a` not looked at yet
            while unseen:
                j = word.index(a, j + 1)
                unseen -= 1
                if j + 1 < len(word) and word[j + 1] == b:
                    if j > 0:
                        left = word[j - 1]
                        pairs[left, a] -= n
                        pairs[left, new] += n
                        formed[left, new].append(i)
                    if j + 2 < len(word):
                        right = word[j + 2]
                        pairs[b, right] -= n
                        pairs[new, right] += n
                        formed[new, right].append(i)
                    merged += n
                    word[j : j + 2] = (new,)
                    unseen -= a == b  # the `b` just fused was an `a` too
        pairs.pop((a, b), None)
        for pair, holders in formed.items():
            self.where[pair].extend(holders)
        return merged, list(formed)


def count_merges(counts: PairCounts, new_symbol: Callable[[int, int], int | None], min_freq: int = 1) -> list[Pair]:
    """BPE training: merge the most frequent pair, again and again, until `new_symbol(a, b)` (which registers the
    fused symbol and returns its id) returns None or no pair occurs `min_freq` times. Ties go to the smallest
    (a, b), as in Hugging Face's BpeTrainer.

    A heap holds (-count, a, b); counts only fall for pairs already in it, so an entry whose count is out of
    date is pushed back with the current count when it surfaces (lazy invalidation).
    """
    heap = [(-n, a, b) for (a, b), n in counts.pairs.items() if n > 0]
    heapq.heapify(heap)
    merges: list[Pair] = []
    while heap:
        neg, a, b = heapq.heappop(heap)
        n = counts.pairs.get((a, b), 0)
        if n != -neg:
            if n > 0:
                heapq.heappush(heap, (-n, a, b))
            continue
        if n < min_freq:
            break
        new = new_symbol(a, b)
        if new is None:
            break
        merges.append((a, b))
        for pair in counts.merge(a, b, new)[1]:
            if counts.pairs[pair] > 0:
                heapq.heappush(heap, (-counts.pairs[pair], *pair))
    return merges


def recount_merges(words: list[list[int]], counts: Sequence[int], new_symbol: Callable[[int, int], int | None], min_freq: int = 1) -> list[Pair]:
    """The textbook loop, O(merges × corpus): count every pair of every word, merge the best, start over."""
    merges: list[Pair] = []
    while True:
        pairs: Counter[Pair] = Counter()
        for word, n in zip(words, counts):
            for pair in zip(word, word[1:]):
                pairs[pair] += n
        if not pairs:
            break
        (a, b), n = min(pairs.items(), key=lambda item: (-item[1], item[0]))
        new = new_symbol(a, b) if n >= min_freq else None
        if new is None:
            break
        merges.append((a, b))
        for word in words:
            j = 0
            while j < len(word) - 1:
                if word[j] == a and word[j + 1] == b:
                    word[j : j + 2] = (new,)
                j += 1
    return merges


def apply_merges(ids: Sequence[int], ranks: dict[Pair, int], merged: Sequence[int]) -> list[int]:
    """Encode one word: fuse the adjacent pair of lowest rank (leftmost on ties) into `merged[rank]` until no
    pair has a rank. This is the order training created the symbols in, and what `tokenizers` does.

    The symbols form a linked list (`after`, `before`: neighbours by position) and a heap holds the candidate
    merges as (rank, position), so that the next merge is found in O(log n) instead of a rescan: O(n log n) per
    word. `rank_at[p]` is the rank of the pair starting at position p now (None: no pair, or p was merged away);
    a heap entry whose rank is not `rank_at[p]` is stale and skipped.
    """
    n = len(ids)
    ids = list(ids)
    after, before = list(range(1, n + 1)), list(range(-1, n - 1))
    rank_at = [*map(ranks.get, zip(ids, ids[1:])), None]
    heap = [(rank, p) for p, rank in enumerate(rank_at) if rank is not None]
    heapq.heapify(heap)
    while heap:
        rank, p = heapq.heappop(heap)
        if rank_at[p] != rank:
            continue
        q = after[p]
        r = after[p] = after[q]
        ids[p], rank_at[q] = merged[rank], None
        if r < n:
            before[r] = p
        for left in (p, before[p]):
            if left >= 0:
                rank_at[left] = ranks.get((ids[left], ids[after[left]])) if after[left] < n else None
                if rank_at[left] is not None:
                    heapq.heappush(heap, (rank_at[left], left))
    out, p = [], 0
    while p < n:
        out.append(ids[p])
        p = after[p]
    return out


class Merger:
    """BPE encoding with learned merges: `ranks[a, b]` is the rank of the merge of ids a and b, `merged[rank]`
    the id it creates. `merge(ids)` encodes one word given as symbol ids; `encode_words(words)` encodes
    byte-level words (str) through their UTF-8 bytes (`byte_ids[b]`: the id of byte b) and concatenates their
    ids, keeping each word's ids in a cache that is emptied when it holds `cache_size` words (0: no cache).

    This is the readable version; `_pairmerge.Merger` is the same in C, used when it was built (`COMPILED`).
    """

    def __init__(self, ranks: dict[Pair, int], merged: Sequence[int], byte_ids: Sequence[int] | None = None, cache_size: int = 0) -> None:
        self.ranks, self.merged, self.byte_ids, self.cache_size = ranks, merged, byte_ids, cache_size
        self.cache: dict[str, tuple[int, ...]] = {}

    def merge(self, ids: Sequence[int]) -> list[int]:
        return apply_merges(ids, self.ranks, self.merged)

    def encode_words(self, words: Sequence[str]) -> list[int]:
        if self.byte_ids is None:
            raise ValueError("encode_words() needs the byte_ids this Merger was built without")
        out: list[int] = []
        for word in words:
            ids = self.cache.get(word)
            if ids is None:
                ids = tuple(self.merge(list(map(self.byte_ids.__getitem__, word.encode("utf-8")))))
                if self.cache_size > 0:
                    if len(self.cache) >= self.cache_size:
                        self.cache.clear()
                    self.cache[word] = ids
            out.extend(ids)
        return out


def merger(ranks: dict[Pair, int], merged: Sequence[int], byte_ids: Sequence[int] | None = None, cache_size: int = 0) -> Merger:
    """The compiled `Merger` when it is built and `COMPILED` is on, else the Python one."""
    return (CompiledMerger if COMPILED else Merger)(ranks, merged, byte_ids, cache_size)
