"""Pair merging, the loop at the heart of BPE and WordPiece training.

A corpus is a list of distinct words, each a list of symbol ids, and how often each word occurs. Training
repeatedly picks one adjacent pair (a, b) and fuses every occurrence of it into a new symbol. The pair counts

    count(a, b) = Σ_words n_word · (occurrences of a b in the word)

change only in the words that contain (a, b), so `PairCounts.merge` touches only those (found through an
index pair -> words) and adjusts the counts of the neighbouring pairs, instead of recounting the corpus.
`recount_merges` is the textbook version that recounts everything after each merge: the definition the
fast path is tested against, and the baseline of the benchmark.
"""

from __future__ import annotations

import heapq
import operator
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from itertools import repeat

Pair = tuple[int, int]


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


def apply_merges(ids: list[int], ranks: dict[Pair, int], merged: Sequence[int]) -> list[int]:
    """Encode one word: fuse the adjacent pair of lowest rank (leftmost on ties) into `merged[rank]` until no
    pair has a rank. This is the order training created the symbols in, and what `tokenizers` does."""
    none = len(merged)
    pair_ranks = list(map(ranks.get, zip(ids, ids[1:]), repeat(none)))
    while pair_ranks:
        rank = min(pair_ranks)
        if rank == none:
            break
        j = pair_ranks.index(rank)
        new = merged[rank]
        ids[j : j + 2] = (new,)
        del pair_ranks[j]
        if j > 0:
            pair_ranks[j - 1] = ranks.get((ids[j - 1], new), none)
        if j < len(pair_ranks):
            pair_ranks[j] = ranks.get((new, ids[j + 1]), none)
    return ids
