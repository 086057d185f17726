"""k-nearest neighbours (NumPy): a point takes the majority label of its k closest training points (Euclidean).

    d(x, xᵢ)² = ‖x‖² − 2 x·xᵢ + ‖xᵢ‖²,   P(c | x) = #{i among the k nearest: yᵢ = c} / k

No training beyond storing the data; the boundary bends wherever the labels do, so it is non-linear.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nlplab.classic.base import Classifier


class KNearestNeighbors(Classifier):
    def __init__(self, k: int = 5, batch: int = 1024) -> None:
        self.k, self.batch = k, batch

    def fit(self, X: Any, y: Any) -> KNearestNeighbors:
        self.X_ = X
        self.y_ = self._encode(y)
        self.norms_ = _squared_norms(X)
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        out = []
        for start in range(0, X.shape[0], self.batch):
            part = X[start : start + self.batch]
            d2 = _squared_norms(part)[:, None] - 2 * np.asarray((part @ self.X_.T).todense() if hasattr(part, "todense") else part @ self.X_.T) + self.norms_
            nearest = np.argsort(d2, axis=1, kind="stable")[:, : self.k]
            votes = np.zeros((len(d2), len(self.classes_)))
            np.add.at(votes, (np.repeat(np.arange(len(d2)), self.k), self.y_[nearest].ravel()), 1.0)
            out.append(votes / self.k)
        return np.concatenate(out)


def _squared_norms(X: Any) -> np.ndarray:
    return np.asarray(X.multiply(X).sum(1)).ravel() if hasattr(X, "multiply") else (np.asarray(X) ** 2).sum(1)
