"""Word vectors in use: the word2vec text format, nearest neighbours, analogies, and an embedding table seeded
from them.

    word2vec text format   first line "V D", then one line per word: the word and its D numbers, space-separated
    cosine                 cos(a, b) = a·b / (‖a‖ ‖b‖)
    analogy a : b :: c : ?  the word nearest (cosine) to b̂ − â + ĉ, x̂ = x / ‖x‖, leaving out a, b and c
                           (3CosAdd, as gensim's most_similar(positive=[b, c], negative=[a]))
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from nlplab.data.readers import read_lines
from nlplab.errors import DataError
from nlplab.io import atomic_write_text


@dataclass
class WordVectors:
    """`words` (V) and their `vectors` (V, D), row i for words[i]."""

    words: list[str]
    vectors: Tensor

    def __post_init__(self) -> None:
        self.index = {w: i for i, w in enumerate(self.words)}

    def __contains__(self, word: str) -> bool:
        return word in self.index

    def __getitem__(self, word: str) -> Tensor:
        return self.vectors[self.row(word)]

    def row(self, word: str) -> int:
        if word not in self.index:
            raise KeyError(f"{word!r} is not among the {len(self.words)} words of these vectors")
        return self.index[word]

    def save(self, path: str | Path) -> Path:
        """Write the word2vec text format (gensim's KeyedVectors.load_word2vec_format reads it), atomically."""
        rows = (f"{w} " + " ".join(f"{x:.8g}" for x in v) for w, v in zip(self.words, self.vectors.tolist()))
        return atomic_write_text(path, f"{len(self.words)} {self.vectors.shape[1]}\n" + "\n".join(rows) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> WordVectors:
        """Read the word2vec text format; a malformed line is a DataError naming it."""
        lines = read_lines(path)
        header = lines[0].split()
        if len(header) != 2 or not all(h.isdigit() for h in header):
            raise DataError("the first line must be 'V D' (vocabulary size, dimension) of the word2vec text format", path, 1)
        size, dim = map(int, header)
        words, rows = [], []
        for number, line in enumerate(lines[1:], start=2):
            cells = line.rstrip().split(" ")
            if len(cells) != dim + 1:
                raise DataError(f"expected a word and {dim} numbers, found {len(cells)} fields", path, number)
            try:
                rows.append([float(x) for x in cells[1:]])
            except ValueError:
                raise DataError("a vector holds something that is not a number", path, number) from None
            words.append(cells[0])
        if len(words) != size:
            raise DataError(f"the header announces {size} words, the file holds {len(words)}", path)
        return cls(words, torch.tensor(rows, dtype=torch.float32).view(len(words), dim))

    def unit(self) -> Tensor:
        """The vectors scaled to unit length (V, D)."""
        return self.vectors / self.vectors.norm(dim=1, keepdim=True).clamp_min(1e-12)

    def nearest(self, query: Tensor, k: int, exclude: Sequence[str] = ()) -> list[tuple[str, float]]:
        """The k words of highest cosine with `query` (D,), best first, leaving out `exclude`."""
        scores = self.unit() @ (query / query.norm().clamp_min(1e-12))
        scores[[self.row(w) for w in exclude]] = float("-inf")
        best = scores.topk(min(k, len(self.words) - len(set(exclude))))
        return [(self.words[i], float(s)) for s, i in zip(best.values, best.indices)]

    def most_similar(self, word: str, k: int = 10) -> list[tuple[str, float]]:
        """Nearest neighbours of `word` by cosine, the word itself left out."""
        return self.nearest(self[word], k, exclude=[word])

    def analogy(self, a: str, b: str, c: str, k: int = 1) -> list[tuple[str, float]]:
        """a : b :: c : ? by 3CosAdd on unit vectors (see the module docstring)."""
        unit = self.unit()
        query = unit[self.row(b)] - unit[self.row(a)] + unit[self.row(c)]
        return self.nearest(query, k, exclude=[a, b, c])

    def embedding_rows(self, vocab: dict[str, int], weight: Tensor) -> int:
        """Copy the vector of every token of `vocab` (token -> row of `weight`) that these vectors know into
        `weight` (rows, D), in place; returns how many rows were copied. D must match."""
        if weight.shape[1] != self.vectors.shape[1]:
            raise DataError(f"the vectors have {self.vectors.shape[1]} dimensions, the embedding {weight.shape[1]}; "
                            "set the embedding size to the vectors' dimension")
        pairs = [(row, self.index[token]) for token, row in vocab.items() if token in self.index]
        if pairs:
            rows, sources = zip(*pairs)
            with torch.no_grad():
                weight[list(rows)] = self.vectors[list(sources)].to(weight)
        return len(pairs)
