"""The torch side of the `nielsen` lab: the book's networks as `nn.Module`s, its expanded training data, and one
mini-batch SGD loop that records validation and test accuracy after every epoch.

Images are x (N, 784) float32 in [0, 1] (or (N, 1, 28, 28) for the convolutional nets), labels y (N,) int64.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nlplab.errors import ConfigError
from nlplab.nn import Dropout, Linear
from nlplab.optim import SGD
from nlplab.optim.schedules import build_scheduler
from nlplab.runtime import evaluating
from nlplab.scratch.network import Network

COSTS = ("quadratic", "cross_entropy", "log_likelihood")


def expand_mnist(x: np.ndarray, y: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The book's `expand_mnist`: every image, plus its four copies shifted by one pixel up, down, left and right
    (the vacated row or column set to 0), shuffled. x (N, 784) -> (5N, 784), y (N,) -> (5N,)."""
    images = x.reshape(-1, 28, 28)
    copies = [images]
    for shift, axis in ((1, 1), (-1, 1), (1, 2), (-1, 2)):
        moved = np.roll(images, shift, axis=axis)
        edge = 0 if shift == 1 else -1
        if axis == 1:
            moved[:, edge, :] = 0
        else:
            moved[:, :, edge] = 0
        copies.append(moved)
    order = np.random.default_rng(seed).permutation(5 * len(x))
    return np.concatenate(copies).reshape(-1, 784)[order], np.tile(y, 5)[order]


class MLP(nn.Module):
    """Fully connected net, x (B, sizes[0]) -> logits z (B, sizes[-1]); hidden aˡ = act(wˡ aˡ⁻¹ + bˡ).

    Weights start as torch's default U(±1/√n_in); `from_network` copies a NumPy `Network`'s instead.
    dropout: inverted dropout on each hidden layer's output, input_dropout on the input.
    """

    def __init__(self, sizes: Sequence[int], activation: str = "sigmoid", dropout: float = 0.0,
                 input_dropout: float = 0.0) -> None:
        super().__init__()
        if activation not in ("sigmoid", "relu"):
            raise ConfigError(f"MLP takes activation sigmoid or relu; got {activation}")
        self.layers = nn.ModuleList(Linear(n_in, n_out) for n_in, n_out in pairwise(sizes))
        self.act = torch.sigmoid if activation == "sigmoid" else torch.relu
        self.drop, self.drop_in = Dropout(dropout), Dropout(input_dropout)

    @classmethod
    def from_network(cls, net: Network) -> MLP:
        """The sigmoid MLP with the weights and biases of the NumPy network `net` (in torch's default dtype)."""
        model = cls(net.sizes, "sigmoid")
        with torch.no_grad():
            for layer, w, b in zip(model.layers, net.weights, net.biases):
                layer.weight.copy_(torch.from_numpy(w))
                layer.bias.copy_(torch.from_numpy(b[:, 0]))
        return model

    def forward(self, x: Tensor) -> Tensor:
        a = self.drop_in(x.flatten(1))
        for layer in self.layers[:-1]:
            a = self.drop(self.act(layer(a)))
        return self.layers[-1](a)


class BookCNN(nn.Module):
    """Chapter 6's network: x (B, 1, 28, 28) -> conv 5×5 (20) -> max-pool 2 -> conv 5×5 (40) -> max-pool 2
    -> (B, 640) -> fully connected ReLU layers `fc` (each with dropout `dropout`) -> logits (B, 10)."""

    def __init__(self, fc: Sequence[int] = (100,), dropout: float = 0.0, channels: tuple[int, int] = (20, 40)) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, channels[0], 5), nn.ReLU(), nn.MaxPool2d(2),
                                      nn.Conv2d(channels[0], channels[1], 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten())
        self.head = MLP([channels[1] * 16, *fc, 10], activation="relu", dropout=dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x.view(-1, 1, 28, 28)))


def cost_fn(cost: str, logits: Tensor, y: Tensor) -> Tensor:
    """Mean over the batch of the per-example cost. logits z (B, 10), y (B,) class ids.

    quadratic: ½‖σ(z) − e_y‖²; cross_entropy: −Σⱼ [yⱼ ln σ(zⱼ) + (1 − yⱼ) ln(1 − σ(zⱼ))] (sigmoid outputs, as the
    book's network2); log_likelihood: −ln softmax(z)_y (the softmax layer of chapters 3 and 6).
    """
    if cost == "log_likelihood":
        return F.cross_entropy(logits, y)
    target = F.one_hot(y, logits.shape[1]).to(logits.dtype)
    if cost == "quadratic":
        return 0.5 * (torch.sigmoid(logits) - target).pow(2).sum(1).mean()
    return F.binary_cross_entropy_with_logits(logits, target, reduction="sum") / len(y)


@dataclass
class Recipe:
    """How to train: mini-batch SGD with step `eta` (cosine-decayed to 0 when `cosine`), `momentum`, the L2
    penalty (λ/2n) Σ w² on the weights (not the biases), n the training-set size, and optionally the max-norm
    constraint of Hinton et al. (after each step every unit's incoming weight vector is scaled back to
    ‖w‖ ≤ `max_norm`)."""

    epochs: int
    batch: int
    eta: float
    cost: str
    lmbda: float = 0.0
    momentum: float = 0.0
    cosine: bool = False
    max_norm: float | None = None


@dataclass
class History:
    """Per epoch: validation and test accuracy and training seconds (evaluation excluded)."""

    validation: list[float] = field(default_factory=list)
    test: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)


def accuracy(model: nn.Module, x: Tensor, y: Tensor, batch: int = 1000) -> float:
    """Fraction of rows of x whose largest logit is the label, in eval mode."""
    with evaluating(model):
        right = sum(int((model(x[k:k + batch]).argmax(1) == y[k:k + batch]).sum()) for k in range(0, len(x), batch))
    return right / len(x)


def train(model: nn.Module, recipe: Recipe, train_xy: tuple[np.ndarray, np.ndarray],
          validation: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray], rng: np.random.Generator,
          on_epoch: Callable[[History], None] | None = None) -> History:
    """Mini-batch SGD on `train_xy`, each epoch's order `rng.permutation(n)` (as the NumPy network draws it);
    after each epoch record accuracy on `validation` and `test`."""
    if recipe.cost not in COSTS:
        raise ConfigError(f"unknown cost {recipe.cost!r}; choose one of {COSTS}")
    x, y = (torch.from_numpy(a) for a in train_xy)
    (vx, vy), (tx, ty) = ((torch.from_numpy(a) for a in pair) for pair in (validation, test))
    weights = [p for name, p in model.named_parameters() if not name.endswith("bias")]
    biases = [p for name, p in model.named_parameters() if name.endswith("bias")]
    optimizer = SGD([{"params": weights, "weight_decay": recipe.lmbda / len(x)}, {"params": biases}],
                    lr=recipe.eta, momentum=recipe.momentum)
    steps = recipe.epochs * -(-len(x) // recipe.batch)
    scheduler = build_scheduler("cosine" if recipe.cosine else "constant", optimizer, steps)
    history = History()
    model.train()
    for _ in range(recipe.epochs):
        start = time.perf_counter()
        order = torch.from_numpy(rng.permutation(len(x)))
        for k in range(0, len(x), recipe.batch):
            batch = order[k:k + recipe.batch]
            loss = cost_fn(recipe.cost, model(x[batch]), y[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            if recipe.max_norm is not None:
                with torch.no_grad():
                    for w in weights:
                        w.copy_(torch.renorm(w, 2, 0, recipe.max_norm))
        history.seconds.append(time.perf_counter() - start)
        history.validation.append(accuracy(model, vx, vy))
        history.test.append(accuracy(model, tx, ty))
        if on_epoch is not None:
            on_epoch(history)
    return history
