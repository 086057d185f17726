"""Data sets by name, readers per format, and batching."""

from nlplab.data.readers import Example, read_labelled_tsv, read_lines
from nlplab.data.registry import DATASETS, DEFAULT_DATASET, TextDataset, load_dataset

__all__ = ["DATASETS", "DEFAULT_DATASET", "Example", "TextDataset", "load_dataset", "read_labelled_tsv", "read_lines"]
