"""Lab `regularization`: L1 against L2 on MNIST pixels — how many weights each leaves at (nearly) zero, and at
what validation accuracy.

The model is `nlplab.scratch.Network([784, 10])` with the cross-entropy cost: ten logistic regressions over the
784 pixels (7,840 weights), trained by mini-batch SGD (η = 0.5, batches of 10) with Nielsen's penalties, n being
the training-set size:

    L2:  C = C₀ + (λ/2n) Σ w²     w ← (1 − ηλ/n) w − η ∂C₀/∂w     shrinks w in proportion: never exactly 0
    L1:  C = C₀ + (λ/n) Σ |w|     w ← w − (ηλ/n) sign(w) − η ∂C₀/∂w  a constant pull: w stops at 0 where |∂C₀/∂w| < λ/n

By subgradient, an L1 weight "at 0" jitters around it by about ηλ/n per step, so λ is kept where ηλ/n < 10⁻³,
the threshold counted. Each λ of the sweep trains one network per penalty from the same N(0, 1/784) start;
the table gives the validation accuracy and the fraction of weights with |w| < 10⁻³ (and < 10⁻²).
"""

from __future__ import annotations

import numpy as np

from nlplab.data.mnist import load_mnist
from nlplab.lab.base import Lab, LabContext, LabResult
from nlplab.scratch.network import Network

ETA, BATCH = 0.5, 10
PENALTIES = ("L1", "L2")


def train(penalty: str, lam: float, train_data: tuple, validation: tuple, epochs: int, seed: int) -> tuple[Network, float]:
    """Train the [784, 10] network under `penalty` ("L1" or "L2") of strength λ; return it and its validation accuracy."""
    net = Network([784, 10], cost="cross_entropy", seed=seed)
    strength = {"l1": lam} if penalty == "L1" else {"lmbda": lam}
    net.sgd(train_data, epochs, BATCH, ETA, **strength, monitor=[])
    return net, net.accuracy(validation)


def run(ctx: LabContext) -> LabResult:
    import matplotlib.pyplot as plt

    n, epochs, lambdas = (5_000, 5, (0.5, 1.0, 5.0)) if ctx.quick else (50_000, 20, (0.1, 1.0, 5.0, 20.0, 50.0))
    mnist = load_mnist()
    train_data, validation = mnist.train.head(n), mnist.validation.head()
    runs = {(p, lam): train(p, lam, train_data, validation, epochs, ctx.seed)
            for p, lam in ctx.bar([(p, lam) for lam in lambdas for p in PENALTIES], desc="L1/L2 × λ")}
    rows = []
    for (penalty, lam), (net, accuracy) in runs.items():
        w = np.abs(net.weights[0])
        rows.append({"penalty": penalty, "λ": lam, "ηλ/n": ETA * lam / n, "validation accuracy": accuracy,
                     "frac abs(w)<1e-3": float(np.mean(w < 1e-3)), "frac abs(w)<1e-2": float(np.mean(w < 1e-2)),
                     "mean abs w": float(w.mean()), "max abs w": float(w.max())})
    by = {(r["penalty"], r["λ"]): r for r in rows}
    best = {p: max((r for r in rows if r["penalty"] == p), key=lambda r: r["validation accuracy"]) for p in PENALTIES}
    shown = best["L1"]["λ"]

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for penalty in PENALTIES:
        w = runs[penalty, shown][0].weights[0].ravel()
        axes[0].hist(w, bins=np.linspace(-0.6, 0.6, 121), alpha=0.6, label=penalty)
        axes[1].hist(np.log10(np.maximum(np.abs(w), 1e-8)), bins=np.linspace(-8, 0.5, 86), alpha=0.6, label=penalty)
    axes[0].set_xlabel("w")
    axes[0].set_yscale("log")
    axes[1].set_xlabel("log₁₀ |w|  (−8 where |w| < 10⁻⁸)")
    axes[1].axvline(-3, color="k", lw=0.8, ls="--")
    for ax in axes:
        ax.set_ylabel("weights")
        ax.legend()
    fig.suptitle(f"weights of the [784, 10] network, λ = {shown:g}, {epochs} epochs on {n} images")
    ctx.save_plot(fig, "weights")

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for penalty in PENALTIES:
        axes[0].semilogx(lambdas, [by[penalty, lam]["validation accuracy"] for lam in lambdas], "o-", label=penalty)
        axes[1].semilogx(lambdas, [by[penalty, lam]["frac abs(w)<1e-3"] for lam in lambdas], "o-", label=penalty)
    axes[0].set_ylabel("validation accuracy")
    axes[1].set_ylabel("fraction of weights with |w| < 10⁻³")
    for ax in axes:
        ax.set_xlabel("λ")
        ax.legend()
    ctx.save_plot(fig, "lambda")

    l1, l2 = best["L1"], best["L2"]
    holds = l1["frac abs(w)<1e-3"] >= 3 * l2["frac abs(w)<1e-3"] and l1["validation accuracy"] >= l2["validation accuracy"] - 0.01
    summary = (f"at its best λ each: L1 (λ = {l1['λ']:g}) leaves {l1['frac abs(w)<1e-3']:.1%} of the 7,840 weights below 1e-3 at "
               f"{l1['validation accuracy']:.2%} validation accuracy, L2 (λ = {l2['λ']:g}) {l2['frac abs(w)<1e-3']:.1%} at "
               f"{l2['validation accuracy']:.2%}; at the same λ = {shown:g} L2 leaves {by['L2', shown]['frac abs(w)<1e-3']:.1%}")
    return LabResult(rows, summary, holds, {"train_images": n, "epochs": epochs, "eta": ETA, "mini_batch": BATCH,
                                            "best": {p: {"lambda": best[p]["λ"], "validation_accuracy": best[p]["validation accuracy"],
                                                         "below_1e-3": best[p]["frac abs(w)<1e-3"]} for p in PENALTIES}})


LAB = Lab("regularization", "L1 regularisation drives many weights to (nearly) zero while L2 only shrinks them: at comparable "
          "accuracy L1 leaves many more weights below 10⁻³ than L2.", run)
