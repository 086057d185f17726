"""The notes' first example: fit y = w1·x² + w2·x + w3 by gradient descent with hand-derived gradients (NumPy only).

With features φ(x) = (x², x, 1), prediction ŷ = φ(x)·w and the mean squared error over n points

    L(w) = (1/n) Σᵢ (ŷᵢ − yᵢ)²
    ∂L/∂w1 = (1/n) Σᵢ 2(ŷᵢ − yᵢ)·xᵢ²,   ∂L/∂w2 = (1/n) Σᵢ 2(ŷᵢ − yᵢ)·xᵢ,   ∂L/∂w3 = (1/n) Σᵢ 2(ŷᵢ − yᵢ)
    H = ∂²L/∂w² = (2/n) ΦᵀΦ      (Φ the (n, 3) matrix of features; constant, since L is quadratic in w)

so Newton's step w ← w − H⁻¹∇L lands on the least-squares solution in one iteration. ``fit`` runs one of
batch GD, SGD, mini-batch SGD, momentum, Adam or Newton and counts iterations and seconds until
L(w) − L(w*) ≤ tol, w* being the least-squares solution.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from nlplab.errors import ConfigError

METHODS = ("gd", "sgd", "minibatch", "momentum", "adam", "newton")
DEFAULTS: dict[str, dict[str, float]] = {
    "gd": {"lr": 0.5},
    "sgd": {"lr": 0.05, "batch_size": 1},
    "minibatch": {"lr": 0.2, "batch_size": 16},
    "momentum": {"lr": 0.1, "beta": 0.9},
    "adam": {"lr": 0.02},
    "newton": {},
}


def make_data(
    n: int = 200,
    w: tuple[float, float, float] = (2.0, -3.0, 1.0),
    noise: float = 0.0,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """x ~ U(−1, 1) of shape (n,) and y = w1·x² + w2·x + w3 + ε, ε ~ N(0, noise²), shape (n,).

    Without noise every point's gradient vanishes at w*, so SGD with a constant step converges; with noise it
    only reaches a neighbourhood of w* whose size grows with lr (the gradient noise), unless lr decays.
    """
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, n)
    return x, features(x) @ np.asarray(w, dtype=float) + noise * rng.standard_normal(n)


def features(x: np.ndarray) -> np.ndarray:
    """Φ of shape (n, 3), rows (x², x, 1), for x of shape (n,)."""
    return np.stack([x**2, x, np.ones_like(x)], axis=1)


def loss(w: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
    """L(w) = (1/n) Σ (ŷ − y)² with ŷ = Φw; w (3,), x and y (n,)."""
    return float(np.mean((features(x) @ w - y) ** 2))


def gradient(w: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """∇L = (mean 2(ŷ − y)·x², mean 2(ŷ − y)·x, mean 2(ŷ − y)), shape (3,)."""
    residual = features(x) @ w - y
    return np.array(
        [np.mean(2 * residual * x**2), np.mean(2 * residual * x), np.mean(2 * residual)]
    )


def hessian(x: np.ndarray) -> np.ndarray:
    """H = (2/n) ΦᵀΦ, shape (3, 3); independent of w and y."""
    phi = features(x)
    return 2.0 * phi.T @ phi / len(x)


def least_squares(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """w* = argmin_w ‖Φw − y‖², shape (3,), by ``numpy.linalg.lstsq``."""
    return np.linalg.lstsq(features(x), y, rcond=None)[0]


@dataclass
class Fit:
    """One optimiser's run: final w (3,), iterations (parameter updates) to reach the tolerance, wall seconds,
    the loss curve (L before the first update, then after each) and whether the tolerance was reached."""

    method: str
    w: np.ndarray
    iterations: int
    seconds: float
    converged: bool
    losses: list[float] = field(default_factory=list)


def fit(
    x: np.ndarray,
    y: np.ndarray,
    method: str,
    tol: float = 1e-8,
    max_iter: int = 20_000,
    seed: int = 0,
    w0: np.ndarray | None = None,
    **hyper: float,
) -> Fit:
    """Minimise L from w0 (default zeros) with ``method`` until L(w) − L(w*) ≤ tol or ``max_iter`` updates.

    Methods and their hyperparameters (defaults in ``DEFAULTS``), g the gradient of the batch used:
      gd         w ← w − lr·g on all n points
      sgd        the same on one random point per step (``batch_size`` = 1), reshuffled every epoch
      minibatch  the same on ``batch_size`` random points per step
      momentum   v ← beta·v − lr·g;  w ← w + v                      (all n points)
      adam       m ← β1 m + (1−β1) g;  v ← β2 v + (1−β2) g²;  w ← w − lr·m̂ / (√v̂ + eps)   (all n points)
      newton     w ← w − H⁻¹ g                                       (all n points)
    The loss curve and the stopping test use L on all n points; ``seconds`` includes those evaluations.
    """
    if method not in METHODS:
        raise ConfigError(f"unknown method {method!r}; choose one of {list(METHODS)}")
    unknown = sorted(set(hyper) - {"lr", "batch_size", "beta", "beta1", "beta2", "eps"})
    if unknown:
        raise ConfigError(
            f"unknown hyperparameters {unknown}; fit takes lr, batch_size, beta, beta1, beta2, eps"
        )
    options = {**DEFAULTS[method], "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, **hyper}
    target = loss(least_squares(x, y), x, y)
    w = np.zeros(3) if w0 is None else np.array(w0, dtype=float)
    rng = np.random.default_rng(seed)
    batches = _batches(len(x), int(options.get("batch_size", len(x))), rng)
    inverse_hessian = np.linalg.inv(hessian(x))
    velocity, m, v = np.zeros(3), np.zeros(3), np.zeros(3)
    losses = [loss(w, x, y)]
    start = time.perf_counter()
    iterations = 0
    while losses[-1] - target > tol and iterations < max_iter:
        iterations += 1
        batch = next(batches)
        g = gradient(w, x[batch], y[batch])
        if method == "newton":
            w = w - inverse_hessian @ g
        elif method == "momentum":
            velocity = options["beta"] * velocity - options["lr"] * g
            w = w + velocity
        elif method == "adam":
            m = options["beta1"] * m + (1 - options["beta1"]) * g
            v = options["beta2"] * v + (1 - options["beta2"]) * g**2
            m_hat, v_hat = (
                m / (1 - options["beta1"] ** iterations),
                v / (1 - options["beta2"] ** iterations),
            )
            w = w - options["lr"] * m_hat / (np.sqrt(v_hat) + options["eps"])
        else:
            w = w - options["lr"] * g
        losses.append(loss(w, x, y))
    seconds = time.perf_counter() - start
    return Fit(method, w, iterations, seconds, losses[-1] - target <= tol, losses)


def compare(
    x: np.ndarray, y: np.ndarray, tol: float = 1e-8, seed: int = 0
) -> dict[str, Fit]:
    """Every method of ``METHODS`` with its ``DEFAULTS`` on the same data and tolerance, from w0 = 0."""
    return {method: fit(x, y, method, tol=tol, seed=seed) for method in METHODS}


def _batches(n: int, size: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Endless index arrays of ``size`` points, each epoch a fresh permutation; all n points in order when size ≥ n."""
    if size >= n:
        everything = np.arange(n)
        while True:
            yield everything
    while True:
        order = rng.permutation(n)
        for k in range(0, n - size + 1, size):
            yield order[k : k + size]
