"""What every classifier of `nlplab.classic` shares: labels in any form, predict from predict_proba, accuracy.

X is (n, d): a NumPy array, or any matrix that supports `X @ w` and `X.T @ v` (a SciPy sparse matrix) for the
linear models; y is (n,) of labels of any type, stored sorted in `classes_` as scikit-learn does.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nlplab.errors import ConfigError


class Classifier:
    classes_: np.ndarray

    def fit(self, X: Any, y: Any) -> Classifier:
        raise NotImplementedError

    def predict_proba(self, X: Any) -> np.ndarray:
        """(n, classes) probabilities, columns in the order of `classes_`."""
        raise NotImplementedError

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    def score(self, X: Any, y: Any) -> float:
        """Accuracy on (X, y)."""
        return float(np.mean(self.predict(X) == np.asarray(y)))

    def _encode(self, y: Any) -> np.ndarray:
        """Class indices (n,) into the sorted distinct labels, kept in `classes_`."""
        self.classes_, indices = np.unique(np.asarray(y), return_inverse=True)
        return indices


class BinaryLinear(Classifier):
    """A linear decision function f(x) = x·w + b for two classes: classes_[1] when f(x) > 0."""

    coef_: np.ndarray
    intercept_: float

    def _signs(self, y: Any) -> np.ndarray:
        """y as −1 / +1 (+1 for classes_[1]); ConfigError unless there are exactly two classes."""
        indices = self._encode(y)
        if len(self.classes_) != 2:
            raise ConfigError(f"{type(self).__name__} separates two classes; got {len(self.classes_)}")
        return 2.0 * indices - 1.0

    def decision_function(self, X: Any) -> np.ndarray:
        return np.asarray(X @ self.coef_).ravel() + self.intercept_

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[(self.decision_function(X) > 0).astype(np.int64)]

    def predict_proba(self, X: Any) -> np.ndarray:
        """σ(f(x)) for classes_[1]: the logistic model's probability; for the margin classifiers (perceptron, SVM)
        a squashed margin that orders points but is not calibrated."""
        p = 1.0 / (1.0 + np.exp(-self.decision_function(X)))
        return np.stack([1.0 - p, p], axis=1)


def row(X: Any, i: int) -> tuple[Any, np.ndarray]:
    """Row i of X as (column indices, values): a CSR sparse row's stored entries, or a dense row (all columns)."""
    if hasattr(X, "indptr"):
        start, end = X.indptr[i], X.indptr[i + 1]
        return X.indices[start:end], X.data[start:end]
    return slice(None), X[i]
