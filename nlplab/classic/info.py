"""Information theory on discrete distributions (NumPy): entropy, cross-entropy, KL divergence, mutual information.

With p, q probability vectors over the same outcomes, P a joint table P[i, j] = P(X = i, Y = j) and log in `base`
(e by default; 2 gives bits):

    H(p)       = −Σ p log p                     entropy
    H(p, q)    = −Σ p log q  = H(p) + KL(p‖q)   cross-entropy
    KL(p‖q)    =  Σ p log(p / q)                Kullback–Leibler divergence
    H(X, Y)    = −Σᵢⱼ P log P                   joint entropy
    H(X | Y)   =  H(X, Y) − H(Y)                conditional entropy
    I(X; Y)    =  Σᵢⱼ P log(P / (pₓ p_y))  = H(X) − H(X | Y)

Zero probabilities follow the references (`scipy.stats.entropy`, `sklearn.metrics.mutual_info_score`): 0 log 0 = 0,
and p log(p / 0) = +inf for p > 0, so KL and cross-entropy are infinite where q misses an outcome p has.
Every function reduces over the last axis (the last two for joint tables), so a stack of distributions of shape
(..., K) or tables of shape (..., X, Y) gives one figure per distribution.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from nlplab.errors import NlplabError

SUM_TOLERANCE = 1e-6
"""How far from 1 the entries of a distribution may sum."""


class DistributionError(NlplabError):
    """A probability vector or table with negative entries or a sum other than 1."""


def as_distribution(p: Sequence[float] | np.ndarray, name: str = "p", axes: int = 1) -> np.ndarray:
    """`p` as a float64 array whose last `axes` axes are a distribution: entries ≥ 0 summing to 1 within
    SUM_TOLERANCE, or DistributionError."""
    p = np.asarray(p, dtype=np.float64)
    if p.ndim < axes or p.size == 0:
        raise DistributionError(f"{name}: expected at least {axes} non-empty axis(es), got shape {p.shape}")
    if (p < 0).any() or not np.isfinite(p).all():
        raise DistributionError(f"{name}: probabilities must be finite and >= 0")
    totals = np.ravel(p.sum(axis=tuple(range(-axes, 0))))
    worst = totals[np.argmax(np.abs(totals - 1))]
    if abs(worst - 1) > SUM_TOLERANCE:
        raise DistributionError(f"{name}: probabilities sum to {worst:.6g}, not 1 (tolerance {SUM_TOLERANCE:g}); "
                                "normalise it (divide by its sum)")
    return p


def _plogq(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """p · log q elementwise with 0 · log q = 0 (also for q = 0) and p · log 0 = −inf for p > 0."""
    with np.errstate(divide="ignore"):
        return np.where(p > 0, p * np.log(np.where(p > 0, q, 1.0)), 0.0)


def entropy(p: Sequence[float] | np.ndarray, base: float | None = None) -> np.ndarray | float:
    """H(p) = −Σ p log p over the last axis of p (..., K) -> (...)."""
    p = as_distribution(p)
    return _in_base(-_plogq(p, p).sum(-1), base)


def cross_entropy(p: Sequence[float] | np.ndarray, q: Sequence[float] | np.ndarray, base: float | None = None) -> np.ndarray | float:
    """H(p, q) = −Σ p log q over the last axis of p, q (..., K) -> (...); +inf where q = 0 < p."""
    p, q = as_distribution(p, "p"), as_distribution(q, "q")
    return _in_base(-_plogq(p, q).sum(-1), base)


def kl_divergence(p: Sequence[float] | np.ndarray, q: Sequence[float] | np.ndarray, base: float | None = None) -> np.ndarray | float:
    """KL(p‖q) = Σ p log(p / q) over the last axis of p, q (..., K) -> (...); +inf where q = 0 < p."""
    p, q = as_distribution(p, "p"), as_distribution(q, "q")
    return _in_base((_plogq(p, p) - _plogq(p, q)).sum(-1), base)


def joint_entropy(pxy: Sequence[Sequence[float]] | np.ndarray, base: float | None = None) -> np.ndarray | float:
    """H(X, Y) = −Σᵢⱼ P log P of joint tables (..., X, Y) -> (...)."""
    pxy = as_distribution(pxy, "P(X, Y)", axes=2)
    return _in_base(-_plogq(pxy, pxy).sum((-2, -1)), base)


def conditional_entropy(pxy: Sequence[Sequence[float]] | np.ndarray, base: float | None = None) -> np.ndarray | float:
    """H(X | Y) = H(X, Y) − H(Y) of joint tables (..., X, Y) (rows are X, columns Y) -> (...)."""
    pxy = as_distribution(pxy, "P(X, Y)", axes=2)
    return joint_entropy(pxy, base) - entropy(pxy.sum(-2), base)


def mutual_information(pxy: Sequence[Sequence[float]] | np.ndarray, base: float | None = None) -> np.ndarray | float:
    """I(X; Y) = Σᵢⱼ P log(P / (pₓ p_y)) of joint tables (..., X, Y) -> (...)."""
    pxy = as_distribution(pxy, "P(X, Y)", axes=2)
    independent = pxy.sum(-1, keepdims=True) * pxy.sum(-2, keepdims=True)
    return _in_base((_plogq(pxy, pxy) - _plogq(pxy, independent)).sum((-2, -1)), base)


def joint_distribution(x: Sequence, y: Sequence) -> np.ndarray:
    """The empirical joint table P[i, j] = #{n: xₙ = i-th value of x, yₙ = j-th value of y} / N of paired samples,
    values in sorted order: (distinct x, distinct y)."""
    if len(x) != len(y) or len(x) == 0:
        raise DistributionError(f"paired samples must be non-empty and of equal length, got {len(x)} and {len(y)}")
    _, xi = np.unique(np.asarray(x), return_inverse=True)
    _, yi = np.unique(np.asarray(y), return_inverse=True)
    table = np.zeros((xi.max() + 1, yi.max() + 1))
    np.add.at(table, (xi.ravel(), yi.ravel()), 1.0)
    return table / len(x)


def mutual_information_samples(x: Sequence, y: Sequence, base: float | None = None) -> float:
    """I(X; Y) of the empirical joint distribution of paired samples (sklearn's mutual_info_score in nats)."""
    return float(mutual_information(joint_distribution(x, y), base))


def _in_base(nats: np.ndarray, base: float | None) -> np.ndarray | float:
    value = nats / np.log(base) if base is not None else nats
    return float(value) if np.ndim(value) == 0 else value
