"""Lab `hyperparams`: learning curves of Nielsen's [784, 30, 10] sigmoid network (cross-entropy cost,
`nlplab.scratch.Network`) on MNIST as three hyper-parameters move (Nielsen, ch. 3).

- **epochs** — 1,000 training images, η = 0.5, mini-batch 10, no regularisation (the book's overfitting run):
  training and validation accuracy and cost per epoch; the early-stopping point is where the "no improvement in
  10 epochs" rule (`nlplab.optim.EarlyStopping`, patience 10, on validation accuracy) stops.
- **learning rate** — η ∈ {0.025, 0.25, 2.5, 25}, λ = 5, mini-batch 10: the training cost (penalty included) per
  epoch. Too small a step creeps (a higher cost after the first epoch); too large a step overshoots the valley,
  so the cost stays high and goes up and down (its total rise Σ max(0, Cₜ₊₁ − Cₜ)) instead of falling.
- **mini-batch size** — m ∈ {1, 10, 100, 1000} at η = 0.5 (the gradient is the batch mean, so a bigger batch makes
  fewer, less noisy steps per epoch, each a bigger matrix product): validation accuracy per epoch and per second.

The full run uses the sizes above (50,000 images for the learning rate, 10,000 for the batch size, 30 and 10
epochs); `--quick` uses 500 / 2,000 / 2,000 images and 40 / 5 / 3 epochs.
"""

from __future__ import annotations

import numpy as np
import torch

from nlplab.data.mnist import load_mnist
from nlplab.lab.base import Lab, LabContext, LabResult
from nlplab.optim import EarlyStopping
from nlplab.scratch.network import Network

SIZES, PATIENCE = [784, 30, 10], 10
ETAS = (0.025, 0.25, 2.5, 25.0)


def train(data: tuple, validation: tuple, epochs: int, batch: int, eta: float, lmbda: float, seed: int) -> dict[str, list[float]]:
    """One [784, 30, 10] run; its history (training/evaluation cost and accuracy per epoch, seconds per epoch)."""
    return Network(SIZES, cost="cross_entropy", seed=seed).sgd(data, epochs, batch, eta, lmbda=lmbda, evaluation_data=validation)


def stopping_epoch(accuracies: list[float], patience: int = PATIENCE) -> int | None:
    """The epoch (1-based) at which "no improvement in `patience` epochs" stops, None if it never does."""
    stopper, weightless = EarlyStopping(patience), torch.nn.Module()  # only the rule: there are no weights to keep
    return next((epoch for epoch, value in enumerate(accuracies, 1) if stopper.step(value, weightless)), None)


def row(experiment: str, setting: str, h: dict[str, list[float]]) -> dict:
    cost = h["training_cost"]
    return {"experiment": experiment, "setting": setting, "epochs": len(cost),
            "training accuracy": h["training_accuracy"][-1], "validation accuracy": h["evaluation_accuracy"][-1],
            "best validation accuracy": max(h["evaluation_accuracy"]),
            "best epoch": int(np.argmax(h["evaluation_accuracy"])) + 1, "training cost after epoch 1": cost[0],
            "training cost": cost[-1], "total rise of the cost": total_rise(cost), "seconds per epoch": float(np.mean(h["seconds"]))}


def total_rise(cost: list[float]) -> float:
    """Σ max(0, C_{t+1} − C_t): how much the training cost went up along the run (0 for a monotone descent)."""
    return float(np.sum(np.clip(np.diff(cost), 0, None)))


def run(ctx: LabContext) -> LabResult:
    import matplotlib.pyplot as plt

    if ctx.quick:
        small, epochs, n_val = 500, 40, 2_000
        n_eta, eta_epochs, n_batch, batch_epochs, batches = 2_000, 5, 2_000, 3, (1, 10, 100)
    else:
        small, epochs, n_val = 1_000, 400, 10_000
        n_eta, eta_epochs, n_batch, batch_epochs, batches = 50_000, 30, 10_000, 10, (1, 10, 100, 1000)
    mnist = load_mnist()
    subset, validation = mnist.train.head, mnist.validation.head(n_val)
    jobs = [("epochs", f"{small} images, η = 0.5", (subset(small), epochs, 10, 0.5, 0.0))]
    jobs += [("learning rate", f"η = {eta:g}", (subset(n_eta), eta_epochs, 10, eta, 5.0)) for eta in ETAS]
    jobs += [("mini-batch", f"m = {m}", (subset(n_batch), batch_epochs, m, 0.5, 0.0)) for m in batches]
    histories = {}
    for experiment, setting, (data, n_epochs, batch, eta, lmbda) in ctx.bar(jobs, desc="runs"):
        histories[experiment, setting] = train(data, validation, n_epochs, batch, eta, lmbda, ctx.seed)
    rows = [row(experiment, setting, h) for (experiment, setting), h in histories.items()]

    over = histories["epochs", jobs[0][1]]
    stop = stopping_epoch(over["evaluation_accuracy"]) or epochs
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    x = np.arange(1, epochs + 1)
    axes[0].plot(x, over["training_accuracy"], label="training")
    axes[0].plot(x, over["evaluation_accuracy"], label="validation")
    axes[1].semilogy(x, over["training_cost"], label="training")
    axes[1].semilogy(x, over["evaluation_cost"], label="validation")
    for ax, what in zip(axes, ("accuracy", "cost")):
        ax.axvline(stop, color="k", ls="--", lw=0.8, label=f"early stop (epoch {stop})")
        ax.set_xlabel("epoch")
        ax.set_ylabel(what)
        ax.legend()
    fig.suptitle(f"{SIZES} on {small} training images: overfitting and the early-stopping point")
    ctx.save_plot(fig, "epochs")

    fig, ax = plt.subplots(figsize=(6, 4))
    for eta in ETAS:
        ax.semilogy(range(1, eta_epochs + 1), histories["learning rate", f"η = {eta:g}"]["training_cost"], "o-", ms=3, label=f"η = {eta:g}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training cost")
    ax.set_title(f"learning rate: {n_eta} images, λ = 5, mini-batch 10")
    ax.legend()
    ctx.save_plot(fig, "eta")

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for m in batches:
        h = histories["mini-batch", f"m = {m}"]
        axes[0].plot(range(1, batch_epochs + 1), h["evaluation_accuracy"], "o-", ms=3, label=f"m = {m}")
        axes[1].plot(np.cumsum(h["seconds"]), h["evaluation_accuracy"], "o-", ms=3, label=f"m = {m}")
    axes[0].set_xlabel("epoch")
    axes[1].set_xlabel("training seconds")
    axes[0].set_ylabel("validation accuracy")
    for ax in axes:
        ax.legend()
    fig.suptitle(f"mini-batch size: {n_batch} images, η = 0.5")
    ctx.save_plot(fig, "batch")

    i = stop - 1
    train_gain = over["training_accuracy"][-1] - over["training_accuracy"][i]
    val_gain = over["evaluation_accuracy"][-1] - over["evaluation_accuracy"][i]
    cost_drop = 1 - over["training_cost"][-1] / over["training_cost"][i]
    val_cost_min = int(np.argmin(over["evaluation_cost"])) + 1
    final = {eta: histories["learning rate", f"η = {eta:g}"]["training_cost"] for eta in ETAS}
    rises = {eta: total_rise(c) for eta, c in final.items()}
    slow, good, big = ETAS[0], ETAS[1], ETAS[-1]
    per_epoch = {m: next(r for r in rows if r["setting"] == f"m = {m}")["seconds per epoch"] for m in batches}
    holds = (stop < epochs and cost_drop > 0.25 and val_gain < 0.005 and val_cost_min < stop
             and final[slow][0] > final[good][0] and final[big][-1] > final[good][-1] and rises[big] > rises[good])
    summary = (f"epochs: early stopping at epoch {stop} of {epochs} (validation accuracy {over['evaluation_accuracy'][i]:.2%}, "
               f"validation cost lowest at epoch {val_cost_min}); from there to the end the training cost falls "
               f"{cost_drop:.0%} and training accuracy moves {train_gain:+.2%} while validation accuracy moves {val_gain:+.2%}; "
               f"learning rate: training cost after 1 and {eta_epochs} epochs "
               + ", ".join(f"{final[eta][0]:.3g} → {final[eta][-1]:.3g} (η = {eta:g}, rising by {rises[eta]:.2g} in all)"
                           for eta in ETAS)
               + "; mini-batch: seconds per epoch " + ", ".join(f"{per_epoch[m]:.2g} (m = {m})" for m in batches))
    figures = {"early_stopping_epoch": stop, "validation_cost_min_epoch": val_cost_min,
               "curves": {f"{e} | {s}": {k: [round(v, 5) for v in h[k]] for k in ("training_cost", "training_accuracy",
                                                                                "evaluation_cost", "evaluation_accuracy")}
                          for (e, s), h in histories.items()}}
    return LabResult(rows, summary, holds, figures)


LAB = Lab("hyperparams", "Trained long on little data, validation accuracy peaks and plateaus (its cost rises) while the "
          "training cost keeps falling — the early-stopping point; too small a learning rate learns slowly, too large "
          "a one makes the training cost oscillate.", run)
