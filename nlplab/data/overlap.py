"""Text overlap between collections: what keeps held-out texts, and their near-duplicates, out of a pre-training
corpus.

Texts are compared after normalisation: NFKC (full-width letters and digits become ASCII), lower case, and only
letters and digits kept (punctuation, spaces and emoji dropped), so "房间很好！！" and "房间 很好" are one text.
A document overlaps a held-out text when, both normalised,
    they are equal, or
    the held-out text (at least `min_chars` characters) occurs inside the document, or
    the document (at least `min_chars` characters) occurs inside the held-out text.
Substrings are found through an index of the first `min_chars` characters of every needle: each window of a
haystack is one dictionary look-up, so the cost grows with the total length of the texts, not with their product.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator, Sequence

import regex

MIN_CHARS = 6
NOT_LETTER_OR_DIGIT = regex.compile(r"[^\p{L}\p{N}]+")


def normalize(text: str) -> str:
    """NFKC, lower case, letters and digits only (Unicode categories L* and N*)."""
    return NOT_LETTER_OR_DIGIT.sub("", unicodedata.normalize("NFKC", text).lower())


def occurrences(needles: Sequence[str], haystacks: Sequence[str], k: int) -> Iterator[tuple[int, int]]:
    """(needle index, haystack index) for every needle that occurs inside a haystack; needles shorter than k are
    not looked for. The index maps a needle's first k characters to its length to the needles themselves, so a
    window costs one look-up per distinct needle length under its prefix."""
    index: dict[str, dict[int, set[str]]] = {}
    positions: dict[str, list[int]] = {}
    for i, needle in enumerate(needles):
        if len(needle) >= k:
            index.setdefault(needle[:k], {}).setdefault(len(needle), set()).add(needle)
            positions.setdefault(needle, []).append(i)
    for j, hay in enumerate(haystacks):
        found: set[str] = set()
        for start in range(len(hay) - k + 1):
            by_length = index.get(hay[start : start + k])
            if by_length is not None:
                found.update(hay[start : start + n] for n, group in by_length.items() if hay[start : start + n] in group)
        yield from ((i, j) for needle in found for i in positions[needle])


def overlapping(documents: Sequence[str], held_out: Sequence[str], min_chars: int = MIN_CHARS) -> set[int]:
    """Indices of the documents that overlap some held-out text (see the module docstring)."""
    docs = [normalize(d) for d in documents]
    held = sorted({h for h in map(normalize, held_out) if h})
    exact = set(held)
    drop = {i for i, d in enumerate(docs) if d in exact}
    drop |= {j for _, j in occurrences(held, docs, min_chars)}
    drop |= {i for i, _ in occurrences(docs, held, min_chars)}
    return drop


def deduplicate(documents: Sequence[str]) -> list[str]:
    """The documents in order, without those whose normalised text is empty or equals an earlier one's."""
    seen: set[str] = set()
    out = []
    for doc in documents:
        key = normalize(doc)
        if key and key not in seen:
            seen.add(key)
            out.append(doc)
    return out
