"""Linear learners by hand (NumPy): linear regression, logistic regression, perceptron, linear SVM, naive Bayes.

Each draws a straight decision boundary (a hyperplane x·w + b = 0 in the input space; naive Bayes in the space of
counts, since its log-posterior is linear in them).

    LinearRegression   min ‖Xw + b − y‖²: closed form (least squares on centred data) or gradient descent
    LogisticRegression min C Σ log(1 + exp(−yᵢ f(xᵢ))) + ½‖w‖²  (y ∈ {−1, +1}, b unpenalised), Newton-CG
    Perceptron         for each xᵢ in turn: if yᵢ f(xᵢ) ≤ 0 then w += yᵢ xᵢ, b += yᵢ   (Rosenblatt)
    LinearSVM          min ½‖w‖² + C Σ max(0, 1 − yᵢ f(xᵢ)), by dual coordinate descent (Hsieh et al., 2008) with
                       the bias as an extra feature of value 1 (penalised, as liblinear does)
    MultinomialNB      log P(c | x) ∝ log π_c + Σⱼ xⱼ log θ_cj,  θ_cj = (N_cj + α) / (N_c + α d)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nlplab.classic.base import BinaryLinear, Classifier, row
from nlplab.errors import ConfigError


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0.0, -z))


class LinearRegression:
    """Least squares y ≈ X w + b. solver="closed": w = lstsq(X − x̄, y − ȳ), b = ȳ − x̄·w; solver="gd": gradient
    descent on the mean squared error (1/n)‖Xw + b − y‖² with step `lr` until the gradient's norm is below `tol`."""

    def __init__(self, solver: str = "closed", lr: float = 0.1, max_iter: int = 100_000, tol: float = 1e-10) -> None:
        if solver not in ("closed", "gd"):
            raise ConfigError(f"LinearRegression solver must be closed or gd, not {solver!r}")
        self.solver, self.lr, self.max_iter, self.tol = solver, lr, max_iter, tol

    def fit(self, X: np.ndarray, y: np.ndarray) -> LinearRegression:
        X, y = np.asarray(X, np.float64), np.asarray(y, np.float64)
        if self.solver == "closed":
            x_mean, y_mean = X.mean(0), y.mean()
            self.coef_ = np.linalg.lstsq(X - x_mean, y - y_mean, rcond=None)[0]
            self.intercept_ = float(y_mean - x_mean @ self.coef_)
            return self
        w, b = np.zeros(X.shape[1]), 0.0
        for self.n_iter_ in range(1, self.max_iter + 1):
            residual = X @ w + b - y
            grad_w, grad_b = 2 * X.T @ residual / len(y), 2 * residual.mean()
            w, b = w - self.lr * grad_w, b - self.lr * grad_b
            if np.sqrt(grad_w @ grad_w + grad_b**2) < self.tol:
                break
        self.coef_, self.intercept_ = w, float(b)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(X, np.float64) @ self.coef_ + self.intercept_


class LogisticRegression(BinaryLinear):
    """Binary logistic regression with an L2 penalty (scikit-learn's objective), minimised by Newton's method whose
    step solves H s = −g by conjugate gradients with Hessian-vector products Hv = C Xᵀ D X v + v (D = σ(1 − σ)),
    so it needs no d × d matrix and runs on sparse TF-IDF."""

    def __init__(self, C: float = 1.0, max_iter: int = 100, tol: float = 1e-8) -> None:
        self.C, self.max_iter, self.tol = C, max_iter, tol

    def _loss_grad(self, X: Any, y: np.ndarray, w: np.ndarray, b: float) -> tuple[float, np.ndarray, float, np.ndarray]:
        z = y * (np.asarray(X @ w).ravel() + b)
        loss = self.C * np.logaddexp(0.0, -z).sum() + 0.5 * w @ w
        dz = -self.C * y * _sigmoid(-z)
        return loss, np.asarray(X.T @ dz).ravel() + w, dz.sum(), _sigmoid(z) * _sigmoid(-z) * self.C

    def fit(self, X: Any, y: Any) -> LogisticRegression:
        y = self._signs(y)
        w, b = np.zeros(X.shape[1]), 0.0
        for self.n_iter_ in range(1, self.max_iter + 1):
            loss, gw, gb, d = self._loss_grad(X, y, w, b)
            if max(np.abs(gw).max(initial=0.0), abs(gb)) < self.tol:
                break

            def hess(vw: np.ndarray, vb: float) -> tuple[np.ndarray, float]:
                u = d * (np.asarray(X @ vw).ravel() + vb)
                return np.asarray(X.T @ u).ravel() + vw, u.sum()

            sw, sb = _conjugate_gradient(hess, -gw, -gb)
            step = 1.0
            while step > 1e-10 and self._loss_grad(X, y, w + step * sw, b + step * sb)[0] > loss + 1e-4 * step * (gw @ sw + gb * sb):
                step /= 2
            w, b = w + step * sw, b + step * sb
        self.coef_, self.intercept_ = w, float(b)
        return self


def _conjugate_gradient(hess: Any, rw: np.ndarray, rb: float, iters: int = 200, tol: float = 1e-12) -> tuple[np.ndarray, float]:
    """Solve H s = r for s = (s_w, s_b) by conjugate gradients, H given as hess(v_w, v_b) -> (H v)_w, (H v)_b."""
    sw, sb = np.zeros_like(rw), 0.0
    pw, pb = rw.copy(), rb
    rr = rw @ rw + rb * rb
    for _ in range(iters):
        if rr < tol:
            break
        hw, hb = hess(pw, pb)
        alpha = rr / (pw @ hw + pb * hb)
        sw, sb = sw + alpha * pw, sb + alpha * pb
        rw, rb = rw - alpha * hw, rb - alpha * hb
        rr_new = rw @ rw + rb * rb
        pw, pb = rw + rr_new / rr * pw, rb + rr_new / rr * pb
        rr = rr_new
    return sw, sb


class Perceptron(BinaryLinear):
    """Rosenblatt's perceptron: `epochs` passes over the examples in order (or reshuffled each epoch when
    `shuffle`), updating w, b by ±x, ±1 on every example with yᵢ f(xᵢ) ≤ 0 (a mistake or a point on the boundary).
    Without shuffling it is scikit-learn's Perceptron(shuffle=False, tol=None, max_iter=epochs) step for step."""

    def __init__(self, epochs: int = 20, shuffle: bool = False, seed: int = 0) -> None:
        self.epochs, self.shuffle, self.seed = epochs, shuffle, seed

    def fit(self, X: Any, y: Any) -> Perceptron:
        y = self._signs(y)
        rng = np.random.default_rng(self.seed)
        w, b = np.zeros(X.shape[1]), 0.0
        for _ in range(self.epochs):
            for i in rng.permutation(len(y)) if self.shuffle else range(len(y)):
                cols, values = row(X, i)
                if y[i] * (w[cols] @ values + b) <= 0:
                    w[cols] += y[i] * values
                    b += y[i]
        self.coef_, self.intercept_ = w, float(b)
        return self


class LinearSVM(BinaryLinear):
    """Soft-margin linear SVM with the hinge loss, trained on its dual: max Σαᵢ − ½ Σᵢⱼαᵢαⱼyᵢyⱼx̃ᵢ·x̃ⱼ, 0 ≤ αᵢ ≤ C,
    where x̃ = (x, 1) carries the bias. Coordinate i moves to the box-clipped optimum
    αᵢ ← clip(αᵢ − (yᵢ w̃·x̃ᵢ − 1) / ‖x̃ᵢ‖², 0, C) with w̃ = Σ αᵢ yᵢ x̃ᵢ kept up to date; sweeps in random order stop
    when the projected gradient's spread falls below `tol` (liblinear's rule)."""

    def __init__(self, C: float = 1.0, max_iter: int = 1000, tol: float = 1e-4, seed: int = 0) -> None:
        self.C, self.max_iter, self.tol, self.seed = C, max_iter, tol, seed

    def fit(self, X: Any, y: Any) -> LinearSVM:
        y = self._signs(y)
        rng = np.random.default_rng(self.seed)
        w, b, alpha = np.zeros(X.shape[1]), 0.0, np.zeros(len(y))
        norms = np.asarray(X.multiply(X).sum(1)).ravel() + 1.0 if hasattr(X, "multiply") else (X * X).sum(1) + 1.0
        for self.n_iter_ in range(1, self.max_iter + 1):
            high, low = -np.inf, np.inf
            for i in rng.permutation(len(y)):
                cols, values = row(X, i)
                g = y[i] * (w[cols] @ values + b) - 1.0
                pg = min(g, 0.0) if alpha[i] == 0 else max(g, 0.0) if alpha[i] == self.C else g
                high, low = max(high, pg), min(low, pg)
                if pg != 0.0:
                    new = min(max(alpha[i] - g / norms[i], 0.0), self.C)
                    w[cols] += (new - alpha[i]) * y[i] * values
                    b += (new - alpha[i]) * y[i]
                    alpha[i] = new
            if high - low < self.tol:
                break
        self.coef_, self.intercept_ = w, float(b)
        return self


class MultinomialNB(Classifier):
    """Naive Bayes over counts (or TF-IDF weights): log π_c = log(N_c / N), log θ_cj = log((F_cj + α) / Σⱼ(F_cj + α))
    with F_cj the summed feature j over class c; predict_proba is the softmax of log π_c + x·log θ_c."""

    def __init__(self, alpha: float = 1.0) -> None:
        self.alpha = alpha

    def fit(self, X: Any, y: Any) -> MultinomialNB:
        indices = self._encode(y)
        onehot = np.eye(len(self.classes_))[indices]
        counts = np.asarray(X.T @ onehot).T + self.alpha
        self.class_log_prior_ = np.log(onehot.sum(0) / len(indices))
        self.feature_log_prob_ = np.log(counts) - np.log(counts.sum(1, keepdims=True))
        return self

    def predict_log_proba(self, X: Any) -> np.ndarray:
        joint = np.asarray(X @ self.feature_log_prob_.T) + self.class_log_prior_
        return joint - np.logaddexp.reduce(joint, axis=1, keepdims=True)

    def predict_proba(self, X: Any) -> np.ndarray:
        return np.exp(self.predict_log_proba(X))
