"""Non-linear learners from decision trees (NumPy): CART, random forest, gradient-boosted trees.

CART grows a binary tree depth first. At a node with samples S it tries every threshold t between consecutive
distinct values of each candidate feature j (t the midpoint) and keeps the split with the largest
proxy improvement −(n_L·I(S_L) + n_R·I(S_R)), the first one found on ties (features in their candidate order,
thresholds in increasing order), where the impurity I is

    gini       1 − Σₖ pₖ²                 (classification, pₖ the class shares in the node)
    entropy    −Σₖ pₖ log₂ pₖ
    squared    mean (y − ȳ)²              (regression; proxy Σ_L²/n_L + Σ_R²/n_R, the same ranking)

A node is a leaf at `max_depth`, below `min_samples_split` samples, when pure, or when no split leaves
`min_samples_leaf` samples on each side. Its value is the class shares (classification) or the mean (regression).
Like scikit-learn, features are rounded to float32 before thresholds are computed.

RandomForest: each tree on a bootstrap sample (n draws with replacement), trying `max_features` features drawn at
random at each node (√d by default); the forest averages the trees' class shares.
GradientBoosting (log-loss, two classes): F₀ = log(π / (1 − π)); stage m fits a regression tree to the residuals
rᵢ = yᵢ − σ(F_{m−1}(xᵢ)), sets each leaf to the Newton step Σ r / Σ p(1 − p) over its samples, and adds it
scaled by the learning rate: F_m = F_{m−1} + η·tree_m. P(y = 1 | x) = σ(F_M(x)).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from nlplab.classic.base import Classifier
from nlplab.errors import ConfigError

FEATURE_THRESHOLD = 1e-7  # values closer than this count as equal (no threshold between them)
CRITERIA = ("gini", "entropy", "squared")


@dataclass
class Tree:
    """A fitted tree as arrays over nodes in depth-first order (node, left subtree, right subtree); leaves have
    feature −1. value is (nodes, outputs). tied_nodes counts splits whose best improvement another candidate
    matched (where the choice depends on the order the candidates are tried)."""

    feature: np.ndarray
    threshold: np.ndarray
    left: np.ndarray
    right: np.ndarray
    value: np.ndarray
    tied_nodes: int

    def apply(self, X: np.ndarray) -> np.ndarray:
        """The leaf each row of X (n, d) falls into: (n,) node ids."""
        X = as_float32(X)
        node = np.zeros(len(X), dtype=np.int64)
        while True:
            active = np.flatnonzero(self.feature[node] >= 0)
            if active.size == 0:
                return node
            n = node[active]
            go_left = X[active, self.feature[n]] <= self.threshold[n]
            node[active] = np.where(go_left, self.left[n], self.right[n])


def as_float32(X: Any) -> np.ndarray:
    return np.asarray(X, dtype=np.float32).astype(np.float64)


def _impurity(counts: np.ndarray, n: np.ndarray, criterion: str) -> np.ndarray:
    """Impurity of class counts (..., K) over n samples (...)."""
    shares = counts / np.maximum(n, 1)[..., None]
    if criterion == "gini":
        return 1.0 - (shares**2).sum(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return -np.where(shares > 0, shares * np.log2(np.where(shares > 0, shares, 1.0)), 0.0).sum(-1)


def grow_tree(X: np.ndarray, targets: np.ndarray, criterion: str = "gini", max_depth: int | None = None,
              min_samples_split: int = 2, min_samples_leaf: int = 1, max_features: int | None = None,
              rng: np.random.Generator | None = None) -> Tree:
    """CART on X (n, d) and targets (n, K): one-hot classes for gini/entropy, (n, 1) values for squared.
    max_features: how many features (drawn by `rng`, at least one non-constant) each node tries; None = all,
    in column order."""
    if criterion not in CRITERIA:
        raise ConfigError(f"criterion must be one of {', '.join(CRITERIA)}, not {criterion!r}")
    X = as_float32(X)
    nodes: list[list[Any]] = []
    tied = 0
    stack = [(np.arange(len(X)), 0, -1, False)]
    while stack:
        samples, depth, parent, is_left = stack.pop()
        node = len(nodes)
        if parent >= 0:
            nodes[parent][2 if is_left else 3] = node
        y = targets[samples]
        value = y.mean(0) if criterion == "squared" else y.sum(0) / len(samples)
        nodes.append([-1, 0.0, -1, -1, value])
        impurity = y.var() if criterion == "squared" else _impurity(y.sum(0), np.array(len(samples)), criterion)
        if ((max_depth is not None and depth >= max_depth) or len(samples) < max(min_samples_split, 2 * min_samples_leaf)
                or impurity <= np.finfo(np.float64).eps):
            continue
        split = _best_split(X, targets, samples, criterion, min_samples_leaf, max_features, rng)
        if split is None:
            continue
        feature, threshold, was_tied = split
        tied += was_tied
        nodes[node][:2] = feature, threshold
        goes_left = X[samples, feature] <= threshold
        stack.append((samples[~goes_left], depth + 1, node, False))
        stack.append((samples[goes_left], depth + 1, node, True))
    feature, threshold, left, right, value = zip(*nodes)
    return Tree(np.array(feature), np.array(threshold), np.array(left), np.array(right), np.array(value), tied)


def _best_split(X: np.ndarray, targets: np.ndarray, samples: np.ndarray, criterion: str, min_leaf: int,
                max_features: int | None, rng: np.random.Generator | None) -> tuple[int, float, bool] | None:
    """(feature, threshold, tied) of the best split of `samples`, None if no feature has a valid one."""
    n, d = len(samples), X.shape[1]
    order = np.arange(d) if max_features is None else rng.permutation(d)
    budget = d if max_features is None else max_features
    best: tuple[float, int, float] | None = None
    tied, tried, start = False, 0, 0
    chunk = max(1, 4_000_000 // (n * targets.shape[1]))
    while start < d and tried < budget:
        features = order[start : start + min(chunk, budget - tried)]
        start += len(features)
        x = X[np.ix_(samples, features)]
        sort = np.argsort(x, axis=0, kind="stable")
        xs = np.take_along_axis(x, sort, axis=0)
        tried += int((xs[-1] > xs[0] + FEATURE_THRESHOLD).sum())  # constant features do not count
        cum = np.cumsum(targets[samples][sort], axis=0)[:-1]  # (n − 1, F, K): sums over the left side at each cut
        n_left = np.arange(1, n)[:, None]
        n_right = n - n_left
        total = cum[-1] + targets[samples][sort[-1]]
        if criterion == "squared":
            proxy = (cum[..., 0] ** 2 / n_left + (total[None, :, 0] - cum[..., 0]) ** 2 / n_right)
        else:
            proxy = -(n_left * _impurity(cum, np.broadcast_to(n_left, cum.shape[:2]), criterion)
                      + n_right * _impurity(total[None] - cum, np.broadcast_to(n_right, cum.shape[:2]), criterion))
        valid = (xs[1:] > xs[:-1] + FEATURE_THRESHOLD) & (n_left >= min_leaf) & (n_right >= min_leaf)
        proxy = np.where(valid, proxy, -np.inf)
        for f in range(len(features)):
            if not valid[:, f].any():
                continue
            p = int(np.argmax(proxy[:, f]))
            value = proxy[p, f]
            scale = 1e-9 * (abs(value) + 1.0)
            close = (np.abs(proxy[:, f] - value) <= scale).sum() > 1
            if best is None or value > best[0] + scale:
                threshold = xs[p, f] / 2.0 + xs[p + 1, f] / 2.0
                if threshold == xs[p + 1, f] or not np.isfinite(threshold):
                    threshold = xs[p, f]
                best, tied = (value, int(features[f]), float(threshold)), close
            elif value >= best[0] - scale:
                tied = True
    return None if best is None else (best[1], best[2], tied)


class DecisionTree(Classifier):
    """CART classifier (criterion gini or entropy); predict_proba = the class shares of the leaf."""

    def __init__(self, criterion: str = "gini", max_depth: int | None = None, min_samples_split: int = 2,
                 min_samples_leaf: int = 1, max_features: int | None = None, seed: int = 0) -> None:
        self.criterion, self.max_depth, self.min_samples_split = criterion, max_depth, min_samples_split
        self.min_samples_leaf, self.max_features, self.seed = min_samples_leaf, max_features, seed

    def fit(self, X: np.ndarray, y: Any) -> DecisionTree:
        onehot = np.eye(len(np.unique(y)))[self._encode(y)]
        self.tree_ = grow_tree(X, onehot, self.criterion, self.max_depth, self.min_samples_split,
                               self.min_samples_leaf, self.max_features, np.random.default_rng(self.seed))
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self.tree_.value[self.tree_.apply(X)]


class RandomForest(Classifier):
    """Bagged CART trees with `max_features` (default √d) random candidate features per node."""

    def __init__(self, n_estimators: int = 100, criterion: str = "gini", max_depth: int | None = None,
                 max_features: int | None = None, seed: int = 0) -> None:
        self.n_estimators, self.criterion, self.max_depth = n_estimators, criterion, max_depth
        self.max_features, self.seed = max_features, seed

    def fit(self, X: np.ndarray, y: Any) -> RandomForest:
        X = as_float32(X)
        onehot = np.eye(len(np.unique(y)))[self._encode(y)]
        rng = np.random.default_rng(self.seed)
        features = self.max_features or max(1, int(np.sqrt(X.shape[1])))
        self.trees_ = []
        for _ in range(self.n_estimators):
            drawn = rng.integers(0, len(X), len(X))
            self.trees_.append(grow_tree(X[drawn], onehot[drawn], self.criterion, self.max_depth,
                                         max_features=features, rng=rng))
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        X = as_float32(X)
        return np.mean([tree.value[tree.apply(X)] for tree in self.trees_], axis=0)


class GradientBoosting(Classifier):
    """Gradient-boosted regression trees on the log-loss of two classes (see the module docstring)."""

    def __init__(self, n_estimators: int = 100, learning_rate: float = 0.1, max_depth: int = 3) -> None:
        self.n_estimators, self.learning_rate, self.max_depth = n_estimators, learning_rate, max_depth

    def fit(self, X: np.ndarray, y: Any) -> GradientBoosting:
        X = as_float32(X)
        t = self._encode(y).astype(np.float64)
        if len(self.classes_) != 2:
            raise ConfigError(f"GradientBoosting separates two classes; got {len(self.classes_)}")
        prior = t.mean()
        self.init_ = float(np.log(prior / (1 - prior)))
        raw = np.full(len(t), self.init_)
        self.trees_ = []
        for _ in range(self.n_estimators):
            p = 1.0 / (1.0 + np.exp(-raw))
            residual = t - p
            tree = grow_tree(X, residual[:, None], "squared", self.max_depth)
            leaves = tree.apply(X)
            numerator = np.bincount(leaves, residual, minlength=len(tree.feature))
            denominator = np.bincount(leaves, p * (1 - p), minlength=len(tree.feature))
            step = np.divide(numerator, denominator, out=np.zeros_like(numerator), where=np.abs(denominator) >= 1e-150)
            tree.value = step[:, None]
            raw += self.learning_rate * step[leaves]
            self.trees_.append(tree)
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        X = as_float32(X)
        return self.init_ + self.learning_rate * sum(tree.value[tree.apply(X), 0] for tree in self.trees_)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        p = 1.0 / (1.0 + np.exp(-self.decision_function(X)))
        return np.stack([1 - p, p], axis=1)
