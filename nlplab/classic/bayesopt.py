"""Bayesian optimisation, the readable version (NumPy): a Gaussian process with an RBF kernel as the surrogate of
an expensive function f on a box, expected improvement to choose the next point to evaluate (minimisation).

Gaussian process (inputs scaled to the unit cube, outputs standardised to mean 0 and variance 1):

    k(x, x') = exp(−‖x − x'‖² / (2ℓ²)),   K = k(X, X) + σₙ² I
    μ(x)  = k(x, X) K⁻¹ y                    posterior mean
    σ²(x) = k(x, x) − k(x, X) K⁻¹ k(X, x)    posterior variance
    log p(y | X) = −½ yᵀK⁻¹y − Σ log Lᵢᵢ − (n/2) log 2π      (L the Cholesky factor of K)

The length scale ℓ is the one of a log-spaced grid with the largest marginal likelihood. Expected improvement over
the best value so far y* (a margin ξ trades exploration for exploitation), with z = (y* − μ − ξ) / σ:

    EI(x) = (y* − μ − ξ) Φ(z) + σ φ(z)

maximised over random points of the box and perturbations of the best points seen. The first `n_initial` points
are drawn uniformly at random, which is also the whole of random search.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from nlplab.errors import ConfigError

LENGTH_SCALES = np.logspace(-2, 0.5, 26)
_erf = np.vectorize(math.erf, otypes=[np.float64])


def rbf_kernel(a: np.ndarray, b: np.ndarray, length_scale: float) -> np.ndarray:
    """exp(−‖a − b‖² / (2ℓ²)) for rows of a (n, d) and b (m, d) -> (n, m)."""
    d2 = (a**2).sum(1)[:, None] - 2 * a @ b.T + (b**2).sum(1)[None, :]
    return np.exp(-np.maximum(d2, 0.0) / (2 * length_scale**2))


class GaussianProcess:
    """GP regression with an RBF kernel of unit variance and noise variance `noise` on (n, d) inputs, (n,) outputs
    (standardise them first: the prior variance is 1). `length_scale=None` picks ℓ from LENGTH_SCALES by marginal
    likelihood."""

    def __init__(self, length_scale: float | None = None, noise: float = 1e-6) -> None:
        self.length_scale, self.noise = length_scale, noise

    def fit(self, X: np.ndarray, y: np.ndarray) -> GaussianProcess:
        self.X_, self.y_ = np.asarray(X, np.float64), np.asarray(y, np.float64)
        scales = LENGTH_SCALES if self.length_scale is None else [self.length_scale]
        self.length_scale_ = max(scales, key=self.log_marginal_likelihood)
        self.L_ = self._cholesky(self.length_scale_)
        self.alpha_ = np.linalg.solve(self.L_.T, np.linalg.solve(self.L_, self.y_))
        return self

    def _cholesky(self, length_scale: float) -> np.ndarray:
        return np.linalg.cholesky(rbf_kernel(self.X_, self.X_, length_scale) + self.noise * np.eye(len(self.X_)))

    def log_marginal_likelihood(self, length_scale: float) -> float:
        L = self._cholesky(length_scale)
        v = np.linalg.solve(L, self.y_)
        return float(-0.5 * v @ v - np.log(np.diag(L)).sum() - 0.5 * len(self.y_) * np.log(2 * np.pi))

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and standard deviation at X (m, d): (m,), (m,)."""
        k = rbf_kernel(np.asarray(X, np.float64), self.X_, self.length_scale_)
        v = np.linalg.solve(self.L_, k.T)
        return k @ self.alpha_, np.sqrt(np.maximum(1.0 - (v**2).sum(0), 0.0))


def expected_improvement(mean: np.ndarray, std: np.ndarray, best: float, xi: float = 0.01) -> np.ndarray:
    """EI of a minimisation at points with posterior `mean`, `std`, the best value so far `best` (0 where std = 0)."""
    gain = best - mean - xi
    z = np.divide(gain, std, out=np.zeros_like(gain), where=std > 0)
    cdf, pdf = 0.5 * (1 + _erf(z / np.sqrt(2))), np.exp(-0.5 * z**2) / np.sqrt(2 * np.pi)
    return np.where(std > 0, gain * cdf + std * pdf, 0.0)


class BayesianOptimizer:
    """Ask/tell minimisation on the unit cube [0, 1]^dim: `ask()` proposes a point, `tell(x, y)` records f(x)."""

    def __init__(self, dim: int, n_initial: int = 5, seed: int = 0, candidates: int = 2000, xi: float = 0.01) -> None:
        if dim < 1 or n_initial < 1:
            raise ConfigError("BayesianOptimizer needs dim >= 1 and n_initial >= 1")
        self.dim, self.n_initial, self.candidates, self.xi = dim, n_initial, candidates, xi
        self.rng = np.random.default_rng(seed)
        self.X: list[np.ndarray] = []
        self.y: list[float] = []

    def ask(self) -> np.ndarray:
        if len(self.y) < self.n_initial:
            return self.rng.random(self.dim)
        y = np.array(self.y)
        scale = y.std() or 1.0
        gp = GaussianProcess().fit(np.array(self.X), (y - y.mean()) / scale)
        best = np.array(self.X)[np.argsort(y)[:5]]
        local = best[self.rng.integers(0, len(best), self.candidates // 2)] + self.rng.normal(0, 0.05, (self.candidates // 2, self.dim))
        pool = np.vstack([self.rng.random((self.candidates - len(local), self.dim)), np.clip(local, 0, 1)])
        mean, std = gp.predict(pool)
        return pool[np.argmax(expected_improvement(mean, std, (y.min() - y.mean()) / scale, self.xi))]

    def tell(self, x: np.ndarray, value: float) -> None:
        self.X.append(np.asarray(x, np.float64))
        self.y.append(float(value))


@dataclass
class Search:
    """The points evaluated (n, d) in order, their values (n,), and the best of them."""

    xs: np.ndarray
    values: np.ndarray

    @property
    def best(self) -> tuple[np.ndarray, float]:
        i = int(np.argmin(self.values))
        return self.xs[i], float(self.values[i])

    def best_so_far(self) -> np.ndarray:
        return np.minimum.accumulate(self.values)


def minimize(f: Callable[[np.ndarray], float], bounds: Sequence[tuple[float, float]], n_calls: int,
             n_initial: int = 5, seed: int = 0, method: str = "gp") -> Search:
    """Minimise f over the box `bounds` (one (low, high) per dimension) with `n_calls` evaluations: by the GP and
    expected improvement (method "gp") or by uniform random points (method "random")."""
    if method not in ("gp", "random"):
        raise ConfigError(f"method must be gp or random, not {method!r}")
    low, high = np.array(bounds, dtype=np.float64).T
    optimizer = BayesianOptimizer(len(low), n_initial if method == "gp" else n_calls, seed)
    for _ in range(n_calls):
        u = optimizer.ask()
        optimizer.tell(u, f(low + u * (high - low)))
    return Search(low + np.array(optimizer.X) * (high - low), np.array(optimizer.y))
