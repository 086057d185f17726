"""A fully connected sigmoid network trained by mini-batch SGD, with backpropagation derived by hand (NumPy only).

Notation (Nielsen, *Neural Networks and Deep Learning*, ch. 2-3). Layers l = 1..L after the input layer 0;
wˡ has shape (sizes[l], sizes[l-1]) and bˡ shape (sizes[l], 1). Examples are **columns**: a batch of m
inputs is x of shape (n_in, m), so one matrix product per layer serves the whole batch:

    zˡ = wˡ aˡ⁻¹ + bˡ,   aˡ = σ(zˡ),   a⁰ = x,   σ(z) = 1 / (1 + e⁻ᶻ),   σ′(z) = σ(z)(1 − σ(z))

Data sets (``training_data``, ``evaluation_data``) are pairs ``(X, labels)`` in the usual row layout:
X of shape (n, n_in) and integer labels of shape (n,) in [0, n_out); targets y are their one-hot columns.

The cost of a batch is the mean of the per-example costs plus the penalties, n being the training-set size:

    C = (1/m) Σₓ Cₓ + (λ/2n) Σ_w w² + (λ₁/n) Σ_w |w|
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nlplab.errors import ConfigError, DataError

Data = tuple[np.ndarray, np.ndarray]
MONITORS = (
    "training_cost",
    "training_accuracy",
    "evaluation_cost",
    "evaluation_accuracy",
)
INITS = ("scaled", "large")


def sigmoid(z: np.ndarray) -> np.ndarray:
    """σ(z) = 1 / (1 + e⁻ᶻ), computed as (1 + tanh(z/2)) / 2, which never overflows; any shape."""
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def sigmoid_prime(z: np.ndarray) -> np.ndarray:
    """σ′(z) = σ(z)(1 − σ(z)); any shape."""
    s = sigmoid(z)
    return s * (1.0 - s)


class QuadraticCost:
    """Cₓ = ½ ‖aᴸ − y‖², so ∇ₐC = aᴸ − y and δᴸ = (aᴸ − y) ⊙ σ′(zᴸ): learning slows when σ saturates."""

    name = "quadratic"

    @staticmethod
    def fn(z: np.ndarray, a: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Per-example costs, shape (m,), from zᴸ, aᴸ and y of shape (n_out, m)."""
        return 0.5 * np.sum((a - y) ** 2, axis=0)

    @staticmethod
    def delta(z: np.ndarray, a: np.ndarray, y: np.ndarray) -> np.ndarray:
        """δᴸ = ∂Cₓ/∂zᴸ = (aᴸ − y) ⊙ σ′(zᴸ), shape (n_out, m), with σ′(zᴸ) = aᴸ(1 − aᴸ)."""
        return (a - y) * a * (1.0 - a)


class CrossEntropyCost:
    """Cₓ = −Σⱼ [yⱼ ln aⱼ + (1 − yⱼ) ln(1 − aⱼ)]; σ′ cancels in the output error: δᴸ = aᴸ − y."""

    name = "cross_entropy"

    @staticmethod
    def fn(z: np.ndarray, a: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Per-example costs, shape (m,), from zᴸ so that saturated units stay finite.

        −ln σ(z) = ln(1 + e⁻ᶻ) and −ln(1 − σ(z)) = ln(1 + eᶻ), both computed by ``np.logaddexp(0, ·)``.
        """
        return np.sum(
            y * np.logaddexp(0.0, -z) + (1.0 - y) * np.logaddexp(0.0, z), axis=0
        )

    @staticmethod
    def delta(z: np.ndarray, a: np.ndarray, y: np.ndarray) -> np.ndarray:
        """δᴸ = ∂Cₓ/∂zᴸ = aᴸ − y, shape (n_out, m)."""
        return a - y


COSTS = {cost.name: cost for cost in (QuadraticCost, CrossEntropyCost)}


def one_hot(labels: np.ndarray, classes: int) -> np.ndarray:
    """Target columns y of shape (classes, n): y[labels[i], i] = 1, every other entry 0."""
    y = np.zeros((classes, len(labels)))
    y[labels, np.arange(len(labels))] = 1.0
    return y


class Network:
    """Sigmoid network with layer sizes ``sizes`` (input first), e.g. ``Network([784, 30, 10])``.

    ``cost``: "cross_entropy" or "quadratic". ``init``: "scaled" draws w ~ N(0, 1/n_in), "large" draws
    w ~ N(0, 1); biases are N(0, 1) in both. ``seed`` fixes the initial weights, the order of the
    mini-batches and the dropout masks.
    """

    def __init__(
        self,
        sizes: Sequence[int],
        cost: str = "cross_entropy",
        init: str = "scaled",
        seed: int = 0,
    ) -> None:
        if len(sizes) < 2 or any(int(size) != size or size < 1 for size in sizes):
            raise ConfigError(
                f"sizes must list at least two positive integers, e.g. [784, 30, 10]; got {list(sizes)}"
            )
        if cost not in COSTS:
            raise ConfigError(f"unknown cost {cost!r}; choose one of {sorted(COSTS)}")
        if init not in INITS:
            raise ConfigError(
                f"unknown init {init!r}; choose 'scaled' (N(0, 1/n_in)) or 'large' (N(0, 1))"
            )
        self.sizes = [int(size) for size in sizes]
        self.cost = COSTS[cost]
        self.init = init
        self.rng = np.random.default_rng(seed)
        self.biases = [self.rng.standard_normal((n_out, 1)) for n_out in self.sizes[1:]]
        self.weights = [
            self.rng.standard_normal((n_out, n_in))
            / (np.sqrt(n_in) if init == "scaled" else 1.0)
            for n_in, n_out in zip(self.sizes[:-1], self.sizes[1:])
        ]

    def feedforward(self, x: np.ndarray) -> np.ndarray:
        """Output activations aᴸ of shape (n_out, m) for inputs x of shape (n_in, m), one column per example."""
        a = self._check_inputs(x)
        for b, w in zip(self.biases, self.weights):
            a = sigmoid(w @ a + b)
        return a

    def backprop(
        self,
        x: np.ndarray,
        y: np.ndarray,
        lmbda: float = 0.0,
        l1: float = 0.0,
        n: int | None = None,
        masks: Sequence[np.ndarray] | None = None,
    ) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Gradients (∂C/∂bˡ, ∂C/∂wˡ) of the batch cost C (see the module docstring), shaped like bˡ and wˡ.

        x: inputs (n_in, m); y: targets (n_out, m); n: training-set size of the penalties (default m).
        masks: optional inverted-dropout masks rˡ, one per hidden layer, shape (sizes[l], m), entries
        0 or 1/(1 − p); then aˡ = σ(zˡ) ⊙ rˡ. The four fundamental equations, for all m columns at once:

            (BP1) δᴸ = ∇ₐC ⊙ σ′(zᴸ)                   (= aᴸ − y for the cross-entropy cost)
            (BP2) δˡ = ((wˡ⁺¹)ᵀ δˡ⁺¹) ⊙ σ′(zˡ)         (⊙ rˡ with dropout)
            (BP3) ∂C/∂bˡ = δˡ                        averaged over the m columns
            (BP4) ∂C/∂wˡ = δˡ (aˡ⁻¹)ᵀ                the product sums over the m columns; divided by m

        and the penalties add (λ/n) wˡ + (λ₁/n) sign(wˡ) to ∂C/∂wˡ.
        """
        m = self._check_inputs(x).shape[1]
        n = m if n is None else n
        activations, zs, sigmas = self._forward(x, masks)
        delta = self.cost.delta(zs[-1], activations[-1], y) / m
        grad_b, grad_w = [], []
        for layer in range(len(self.weights) - 1, -1, -1):
            if layer < len(self.weights) - 1:
                s = sigmas[layer]
                delta = (self.weights[layer + 1].T @ delta) * (s * (1.0 - s))
                if masks is not None:
                    delta = delta * masks[layer]
            grad_b.append(delta.sum(axis=1, keepdims=True))
            grad_w.append(delta @ activations[layer].T)
        grad_b.reverse()
        grad_w.reverse()
        for gw, w in zip(grad_w, self.weights):
            if lmbda:
                gw += (lmbda / n) * w
            if l1:
                gw += (l1 / n) * np.sign(w)
        return grad_b, grad_w

    def cost_value(
        self,
        x: np.ndarray,
        y: np.ndarray,
        lmbda: float = 0.0,
        l1: float = 0.0,
        n: int | None = None,
    ) -> float:
        """The batch cost C = (1/m) Σₓ Cₓ + (λ/2n) Σ w² + (λ₁/n) Σ |w| for x (n_in, m), y (n_out, m); n defaults to m."""
        m = self._check_inputs(x).shape[1]
        n = m if n is None else n
        activations, zs, _ = self._forward(x, None)
        squares = sum(float(np.sum(w**2)) for w in self.weights)
        absolutes = sum(float(np.sum(np.abs(w))) for w in self.weights)
        return (
            float(np.mean(self.cost.fn(zs[-1], activations[-1], y)))
            + lmbda / (2 * n) * squares
            + l1 / n * absolutes
        )

    def total_cost(self, data: Data, lmbda: float = 0.0, l1: float = 0.0) -> float:
        """The cost C of a whole data set ``(X, labels)``, its own size n in the penalties."""
        x, y, _ = self._columns(data)
        return self.cost_value(x, y, lmbda, l1)

    def accuracy(self, data: Data) -> float:
        """Fraction of examples of ``(X, labels)`` whose most active output neuron is the label."""
        x, _, labels = self._columns(data)
        return float(np.mean(np.argmax(self.feedforward(x), axis=0) == labels))

    def dropout_masks(self, m: int, p: float) -> list[np.ndarray]:
        """Inverted-dropout masks for the hidden layers: each unit kept with probability 1 − p, then scaled by 1/(1 − p).

        Returns one array of shape (sizes[l], m) per hidden layer l = 1..L−1, entries 0 or 1/(1 − p).
        """
        return [
            (self.rng.random((size, m)) >= p) / (1.0 - p) for size in self.sizes[1:-1]
        ]

    def update_mini_batch(
        self,
        x: np.ndarray,
        y: np.ndarray,
        eta: float,
        lmbda: float = 0.0,
        l1: float = 0.0,
        n: int | None = None,
        dropout: float = 0.0,
    ) -> None:
        """One gradient step on the batch x (n_in, m), y (n_out, m): w ← w − η ∂C/∂w, b ← b − η ∂C/∂b.

        With the L2 term this is Nielsen's w ← (1 − ηλ/n) w − (η/m) Σₓ ∂Cₓ/∂w; L1 subtracts (ηλ₁/n) sign(w).
        """
        masks = self.dropout_masks(x.shape[1], dropout) if dropout > 0 else None
        grad_b, grad_w = self.backprop(x, y, lmbda, l1, n, masks)
        for b, gb in zip(self.biases, grad_b):
            b -= eta * gb
        for w, gw in zip(self.weights, grad_w):
            w -= eta * gw

    def sgd(
        self,
        training_data: Data,
        epochs: int,
        mini_batch_size: int,
        eta: float,
        lmbda: float = 0.0,
        l1: float = 0.0,
        dropout: float = 0.0,
        evaluation_data: Data | None = None,
        monitor: Sequence[str] | None = None,
    ) -> dict[str, list[float]]:
        """Mini-batch stochastic gradient descent; returns the per-epoch history.

        Each epoch shuffles ``training_data`` = (X (n, n_in), labels (n,)), cuts it into mini-batches of
        ``mini_batch_size`` and calls ``update_mini_batch`` on each (step η, L2 strength λ = ``lmbda``, L1
        strength λ₁ = ``l1``, inverted dropout of probability ``dropout`` on the hidden layers).
        ``monitor`` names what to record after each epoch, among "training_cost", "training_accuracy",
        "evaluation_cost", "evaluation_accuracy" (default: all that the given data allow). The history maps
        each of them, and "seconds" (training time of the epoch, monitoring excluded), to a list per epoch.
        """
        if (
            epochs < 0
            or mini_batch_size < 1
            or eta <= 0
            or lmbda < 0
            or l1 < 0
            or not 0 <= dropout < 1
        ):
            raise ConfigError(
                "sgd needs epochs >= 0, mini_batch_size >= 1, eta > 0, lmbda >= 0, l1 >= 0 and 0 <= dropout < 1; "
                f"got epochs={epochs}, mini_batch_size={mini_batch_size}, eta={eta}, lmbda={lmbda}, l1={l1}, dropout={dropout}"
            )
        if monitor is None:
            monitor = MONITORS if evaluation_data is not None else MONITORS[:2]
        unknown = [key for key in monitor if key not in MONITORS]
        if unknown:
            raise ConfigError(
                f"unknown monitor keys {unknown}; choose among {list(MONITORS)}"
            )
        if evaluation_data is None and any(
            key.startswith("evaluation") for key in monitor
        ):
            raise ConfigError(
                "monitoring evaluation_cost or evaluation_accuracy needs evaluation_data"
            )
        x, y, _ = self._columns(training_data)
        n = x.shape[1]
        sets = {"training": training_data, "evaluation": evaluation_data}
        history: dict[str, list[float]] = {key: [] for key in (*monitor, "seconds")}
        for _ in range(epochs):
            start = time.perf_counter()
            order = self.rng.permutation(n)
            for k in range(0, n, mini_batch_size):
                batch = order[k : k + mini_batch_size]
                self.update_mini_batch(
                    x[:, batch], y[:, batch], eta, lmbda, l1, n, dropout
                )
            history["seconds"].append(time.perf_counter() - start)
            for key in monitor:
                which, measure = key.split("_")
                value = (
                    self.total_cost(sets[which], lmbda, l1)
                    if measure == "cost"
                    else self.accuracy(sets[which])
                )
                history[key].append(value)
        return history

    def save(self, path: str | Path) -> None:
        """Write sizes, cost, init and the arrays ``w0.., b0..`` to an .npz file (no pickle), atomically."""
        path = Path(path)
        arrays = {f"w{i}": w for i, w in enumerate(self.weights)} | {
            f"b{i}": b for i, b in enumerate(self.biases)
        }
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz.tmp")
        with os.fdopen(fd, "wb") as f:
            np.savez(
                f,
                sizes=np.array(self.sizes),
                cost=np.array(self.cost.name),
                init=np.array(self.init),
                **arrays,
            )
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | Path, seed: int = 0) -> Network:
        """Read a network written by ``save``; ``seed`` seeds the generator of later training."""
        try:
            with np.load(path, allow_pickle=False) as f:
                net = cls(
                    [int(s) for s in f["sizes"]],
                    cost=str(f["cost"]),
                    init=str(f["init"]),
                    seed=seed,
                )
                net.weights = [
                    np.array(f[f"w{i}"], dtype=float) for i in range(len(net.weights))
                ]
                net.biases = [
                    np.array(f[f"b{i}"], dtype=float) for i in range(len(net.biases))
                ]
        except (OSError, KeyError, ValueError) as error:
            raise DataError(
                f"not a network saved by Network.save ({error}); save one with Network.save(path)",
                path,
            ) from error
        expected = [
            ((n_out, n_in), (n_out, 1))
            for n_in, n_out in zip(net.sizes[:-1], net.sizes[1:])
        ]
        if [(w.shape, b.shape) for w, b in zip(net.weights, net.biases)] != expected:
            raise DataError(
                f"array shapes do not match sizes {net.sizes}; the file is damaged, save it again",
                path,
            )
        return net

    def _forward(
        self, x: np.ndarray, masks: Sequence[np.ndarray] | None
    ) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
        """Activations [a⁰ .. aᴸ] (dropout masks applied to the hidden aˡ), weighted inputs [z¹ .. zᴸ] and
        [σ(z¹) .. σ(zᴸ)] before the masks (σ′ = σ(1 − σ) in backprop)."""
        activations, zs, sigmas = [x], [], []
        for layer, (b, w) in enumerate(zip(self.biases, self.weights)):
            z = w @ activations[-1] + b
            s = sigmoid(z)
            zs.append(z)
            sigmas.append(s)
            activations.append(s * masks[layer] if masks is not None and layer < len(self.weights) - 1 else s)
        return activations, zs, sigmas

    def _check_inputs(self, x: np.ndarray) -> np.ndarray:
        if x.ndim != 2 or x.shape[0] != self.sizes[0]:
            raise DataError(
                f"inputs must have shape (n_in={self.sizes[0]}, batch), one column per example; got {x.shape}"
            )
        return x

    def _columns(self, data: Data) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(X (n, n_in), labels (n,)) -> inputs x (n_in, n), one-hot targets y (n_out, n), labels (n,)."""
        features, labels = np.asarray(data[0], dtype=float), np.asarray(data[1])
        if (
            features.ndim != 2
            or features.shape[1] != self.sizes[0]
            or labels.shape != (len(features),)
        ):
            raise DataError(
                f"data must be (X, labels) with X of shape (n, {self.sizes[0]}) and labels of shape (n,); "
                f"got {features.shape} and {labels.shape}"
            )
        if (
            not np.issubdtype(labels.dtype, np.integer)
            or labels.min(initial=0) < 0
            or labels.max(initial=0) >= self.sizes[-1]
        ):
            raise DataError(
                f"labels must be integers in [0, {self.sizes[-1]}); got values in [{labels.min()}, {labels.max()}]"
            )
        return features.T, one_hot(labels, self.sizes[-1]), labels
