"""MNIST as *Neural Networks and Deep Learning* uses it: the first 50,000 training images for training, the last
10,000 for validation, the official 10,000 test images for the report. From `mnist.npz` under the data root
(`x_train` (60000, 28, 28) uint8, `y_train`, `x_test`, `y_test`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nlplab.data.registry import find_data
from nlplab.errors import DataError


@dataclass
class Split:
    """Images flattened and scaled to [0, 1]: x (N, 784) float32, y (N,) int64 digit labels."""

    x: np.ndarray
    y: np.ndarray

    def head(self, n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(x, y) of the first `n` examples (all of them when n is None)."""
        return self.x[:n], self.y[:n]


@dataclass
class MNIST:
    train: Split
    validation: Split
    test: Split


def load_mnist() -> MNIST:
    path = find_data("mnist.npz")
    try:
        with np.load(path) as f:
            x_train, y_train, x_test, y_test = (f[k] for k in ("x_train", "y_train", "x_test", "y_test"))
    except (OSError, ValueError, KeyError) as e:
        raise DataError(f"not a readable MNIST archive ({e}); expected x_train, y_train, x_test, y_test arrays", path) from None

    def split(x: np.ndarray, y: np.ndarray) -> Split:
        return Split((x.reshape(len(x), -1) / 255.0).astype(np.float32), y.astype(np.int64))

    return MNIST(split(x_train[:50_000], y_train[:50_000]), split(x_train[50_000:], y_train[50_000:]), split(x_test, y_test))
