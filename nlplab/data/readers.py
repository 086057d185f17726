"""Readers for labelled text files. Every problem is reported as a `DataError` naming the file and line."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from nlplab.errors import DataError

Example = tuple[str, str]
"""(text, label)"""

HEADER_LABELS = {"label", "labels", "class", "y"}


def read_lines(path: str | Path) -> list[str]:
    """The lines of a UTF-8 text file (a leading BOM is dropped); an undecodable line is an error naming it."""
    path = Path(path)
    if not path.is_file():
        raise DataError("no such file; check the path", path)
    raw = path.read_bytes()
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    lines = []
    for number, line in enumerate(raw.split(b"\n"), start=1):
        try:
            lines.append(line.decode("utf-8").rstrip("\r"))
        except UnicodeDecodeError as e:
            raise DataError(f"not valid UTF-8 (byte {e.start}); convert the file to UTF-8, e.g. `iconv -f GBK -t UTF-8`", path, number) from None
    if lines and lines[-1] == "":
        lines.pop()
    if not any(line.strip() for line in lines):
        raise DataError("the file is empty; give a file with at least one example", path)
    return lines


def read_labelled_tsv(path: str | Path, labels: Sequence[str] | None = None) -> list[Example]:
    """Read `label<TAB>text` lines (a header row such as `label<TAB>text_a` is detected and skipped; a header
    naming the label in the second column, `sentence<TAB>label`, swaps the columns). Blank lines are skipped.
    With `labels`, a label outside that set is an error naming its line (e.g. evaluating a trained model)."""
    known = set(labels) if labels is not None else None
    lines = read_lines(path)
    label_col = 0
    first = lines[0].split("\t")
    if len(first) == 2 and any(cell.strip().lower() in HEADER_LABELS for cell in first):
        label_col = 0 if first[0].strip().lower() in HEADER_LABELS else 1
        start = 1
    else:
        start = 0
    examples = []
    for number, line in enumerate(lines[start:], start=start + 1):
        if not line.strip():
            continue
        cells = line.split("\t")
        if len(cells) != 2:
            raise DataError(f"expected 2 tab-separated columns (label<TAB>text), found {len(cells)}; fix or remove this line", path, number)
        label, text = cells[label_col].strip(), cells[1 - label_col].strip()
        if not label or not text:
            raise DataError(f"empty {'label' if not label else 'text'}; every line needs a label and a text", path, number)
        if known is not None and label not in known:
            raise DataError(f"unknown label {label!r}; the model knows {', '.join(labels)}", path, number)
        examples.append((text, label))
    if not examples:
        raise DataError("no examples found (only a header?); give at least one `label<TAB>text` line", path)
    return examples
