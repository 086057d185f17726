"""Sentence pairs for text matching: (sentence1, sentence2, label), label 1 when the two mean the same.

Named sets (under the data root, see `registry.find_data`):
    lcqmc  `lcqmc/dev.txt`, `s1<TAB>s2<TAB>label`. Only LCQMC's official dev split (8802 pairs) is available,
           so it is cut 80/10/10 (7042 / 880 / 880 pairs) into train / validation / test by a seeded shuffle
           (`registry.shuffled_split`, seed 0). A sentence may occur in pairs of different splits.
    atec   `atec/atec_nlp_sim_train.csv`, `id<TAB>s1<TAB>s2<TAB>label` with a UTF-8 BOM; 80/10/10 the same way.
    lcqmc+atec  lcqmc's validation and test splits; its train split plus all of ATEC (another domain) to train on.
Any `s1<TAB>s2<TAB>label` file (no header) works too, split 80/10/10 when no dev file is given.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from nlplab.data.readers import read_lines
from nlplab.data.registry import Splits, find_data, shuffled_split
from nlplab.errors import DataError

Pair = tuple[str, str, int]
"""(sentence1, sentence2, label in {0, 1})"""

SPLIT = (0.8, 0.1, 0.1)


@dataclass
class PairDataset(Splits):
    """Labelled sentence pairs split into train/dev/test."""

    name: str
    train: list[Pair]
    dev: list[Pair]
    test: list[Pair]
    notes: list[str] = field(default_factory=list)


def read_pairs(path: str | Path, id_column: bool = False) -> list[Pair]:
    """Read `s1<TAB>s2<TAB>label` lines (`id<TAB>s1<TAB>s2<TAB>label` with `id_column`); blank lines are skipped.
    A line with another number of columns, an empty sentence or a label other than 0/1 is a DataError naming it."""
    columns = 4 if id_column else 3
    layout = "id<TAB>s1<TAB>s2<TAB>label" if id_column else "s1<TAB>s2<TAB>label"
    pairs = []
    for number, line in enumerate(read_lines(path), start=1):
        if not line.strip():
            continue
        cells = line.split("\t")
        if len(cells) != columns:
            raise DataError(f"expected {columns} tab-separated columns ({layout}), found {len(cells)}; fix or remove this line",
                            path, number)
        s1, s2, label = (cell.strip() for cell in cells[columns - 3:])
        if not s1 or not s2:
            raise DataError(f"empty sentence{'1' if not s1 else '2'}; every line needs two sentences", path, number)
        if label not in ("0", "1"):
            raise DataError(f"label must be 0 (different meaning) or 1 (same meaning), found {label!r}", path, number)
        pairs.append((s1, s2, int(label)))
    return pairs


def split_pairs(name: str, pairs: list[Pair], note: str) -> PairDataset:
    """80/10/10 by a seeded shuffle."""
    train, dev, test = shuffled_split(pairs, SPLIT)
    return PairDataset(name, train, dev, test, [note])


def lcqmc() -> PairDataset:
    return split_pairs("lcqmc", read_pairs(find_data("lcqmc/dev.txt")),
                       "LCQMC's dev split (the only one available) cut 80/10/10 into train/dev/test (seed 0); "
                       "the official LCQMC test split is not used")


def atec() -> PairDataset:
    return split_pairs("atec", read_pairs(find_data("atec/atec_nlp_sim_train.csv"), id_column=True),
                       "ATEC train file cut 80/10/10 into train/dev/test (seed 0)")


def lcqmc_atec() -> PairDataset:
    base, extra = lcqmc(), read_pairs(find_data("atec/atec_nlp_sim_train.csv"), id_column=True)
    return PairDataset("lcqmc+atec", base.train + extra, base.dev, base.test,
                       base.notes + [f"train adds all {len(extra)} ATEC pairs (another domain)"])


PAIR_DATASETS: dict[str, Callable[[], PairDataset]] = {"lcqmc": lcqmc, "atec": atec, "lcqmc+atec": lcqmc_atec}


def load_pairs(name_or_path: str, dev_path: str | None = None) -> PairDataset:
    """A registered pair set by name, or an `s1<TAB>s2<TAB>label` file; `dev_path` replaces the dev split
    (a bare file with a dev file keeps all its pairs for training and tests on the dev file)."""
    if name_or_path in PAIR_DATASETS:
        data = PAIR_DATASETS[name_or_path]()
        if dev_path is not None:
            data.dev = read_pairs(dev_path)
            data.notes.append(f"dev split replaced by {dev_path}")
        return data
    path = Path(name_or_path)
    if not path.is_file():
        raise DataError(f"unknown pair data set {name_or_path!r}: not a registered name ({', '.join(PAIR_DATASETS)}) "
                        "nor an existing s1<TAB>s2<TAB>label file")
    if dev_path is None:
        return split_pairs(path.name, read_pairs(path), f"{path.name} cut 80/10/10 into train/dev/test (seed 0)")
    dev = read_pairs(dev_path)
    return PairDataset(path.name, read_pairs(path), dev, dev, [f"dev split {dev_path}, also used as test"])
