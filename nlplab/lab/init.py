"""Lab `init`: weight initialisation and saturated hidden units (Nielsen, ch. 3, "Weight initialization").

A hidden unit's weighted input is z = Σⱼ wⱼ xⱼ + b over n_in = 784 pixels. With w ~ N(0, 1) its variance is
Σⱼ xⱼ² + 1 (≈ 100 on an MNIST image), so |z| is typically 10 and σ(z) sits at 0 or 1, where σ′(z) ≈ 0 and the
unit hardly learns. Three initialisations of the weights (biases N(0, 1) in all, as in the book):

    N(0, 1)                          Network(init="large")
    N(0, 1/n_in)                     Network(init="scaled")
    Xavier N(0, 2/(n_in + n_out))    `nlplab.nn.init.xavier_normal_`

A unit counts as saturated on an image when |z| > 4 (σ′(z) < 0.018, under a fourteenth of its peak 1/4); the
table gives the share of (unit, validation image) pairs saturated at initialisation and after training, and the
validation accuracy per epoch of the book's set-up: [784, 30, 10], cross-entropy, η = 0.1, mini-batch 10, λ = 5.
"""

from __future__ import annotations

import numpy as np
import torch

from nlplab.data.mnist import load_mnist
from nlplab.lab.base import Lab, LabContext, LabResult
from nlplab.nn.init import xavier_normal_
from nlplab.scratch.network import Network

SIZES, ETA, BATCH, LMBDA, SATURATED = [784, 30, 10], 0.1, 10, 5.0, 4.0
INITS = {"N(0,1)": "large", "N(0,1/n_in)": "scaled", "Xavier": "xavier"}


def make_network(init: str, seed: int) -> Network:
    """The [784, 30, 10] cross-entropy network with `init` "large", "scaled" or "xavier" weights."""
    net = Network(SIZES, cost="cross_entropy", init="scaled" if init == "xavier" else init, seed=seed)
    if init == "xavier":
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            net.weights = [xavier_normal_(torch.empty(w.shape, dtype=torch.float64)).numpy() for w in net.weights]
    return net


def saturated_share(net: Network, x: np.ndarray) -> float:
    """Share of (hidden unit, image) pairs with |z¹| > SATURATED for images x of shape (n, 784)."""
    z = net.weights[0] @ x.T.astype(np.float64) + net.biases[0]
    return float(np.mean(np.abs(z) > SATURATED))


def run(ctx: LabContext) -> LabResult:
    import matplotlib.pyplot as plt

    n, epochs = (5_000, 3) if ctx.quick else (50_000, 30)
    mnist = load_mnist()
    train_data, validation = mnist.train.head(n), mnist.validation.head()
    curves, saturation = {}, {}
    for label, init in INITS.items():
        net = make_network(init, ctx.seed)
        saturation[label] = [saturated_share(net, validation[0])]
        curves[label] = [net.accuracy(validation)]
        for _ in ctx.bar(range(epochs), desc=label):
            net.sgd(train_data, 1, BATCH, ETA, lmbda=LMBDA, monitor=[])
            curves[label].append(net.accuracy(validation))
        saturation[label].append(saturated_share(net, validation[0]))
    rows = [{"init": label, "saturated at init": saturation[label][0], f"saturated after {epochs} epochs": saturation[label][1],
             "accuracy after 1 epoch": curves[label][1], f"accuracy after {epochs} epochs": curves[label][-1],
             "best accuracy": max(curves[label])} for label in INITS]

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for label, accuracy in curves.items():
        axes[0].plot(range(1, epochs + 1), accuracy[1:], "o-", ms=3, label=label)
    axes[0].set_xlabel("epoch")
    axes[0].set_ylabel("validation accuracy")
    axes[0].legend()
    axes[1].bar(list(INITS), [saturation[label][0] for label in INITS])
    axes[1].set_ylabel(f"share of hidden units with |z| > {SATURATED:g} at initialisation")
    fig.suptitle(f"{SIZES}, cross-entropy, η = {ETA}, λ = {LMBDA}, {n} training images")
    ctx.save_plot(fig, "curves")

    large, scaled, xavier = (next(r for r in rows if r["init"] == label) for label in INITS)
    holds = all(large["saturated at init"] > 2 * r["saturated at init"] and r["accuracy after 1 epoch"] > large["accuracy after 1 epoch"]
                for r in (scaled, xavier))
    summary = (f"hidden units with |z| > {SATURATED:g} at initialisation: N(0,1) {large['saturated at init']:.1%}, "
               f"N(0,1/n_in) {scaled['saturated at init']:.1%}, Xavier {xavier['saturated at init']:.1%}; validation accuracy "
               f"after epoch 1: {large['accuracy after 1 epoch']:.2%} / {scaled['accuracy after 1 epoch']:.2%} / "
               f"{xavier['accuracy after 1 epoch']:.2%}, after {epochs}: {large[f'accuracy after {epochs} epochs']:.2%} / "
               f"{scaled[f'accuracy after {epochs} epochs']:.2%} / {xavier[f'accuracy after {epochs} epochs']:.2%}")
    return LabResult(rows, summary, holds, {"train_images": n, "epochs": epochs, "saturation_threshold": SATURATED,
                                            "validation_accuracy": curves})


LAB = Lab("init", "Weights drawn from N(0, 1) saturate most sigmoid hidden units from the start (|z| ≫ 1, σ′ ≈ 0); the "
          "scaled N(0, 1/n_in) and Xavier initialisations saturate far fewer and learn faster in the first epochs.", run)
