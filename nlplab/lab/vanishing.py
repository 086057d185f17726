"""Lab `vanishing`: the vanishing gradient — how fast each hidden layer learns in a deep sigmoid network and in
the same network with ReLU (Nielsen, ch. 5).

Backpropagation multiplies the error by wˡ⁺¹ and σ′(zˡ) once per layer going down, δˡ = ((wˡ⁺¹)ᵀ δˡ⁺¹) ⊙ σ′(zˡ),
and σ′ ≤ 1/4, so with weights of order one the early layers get the smallest gradients. ReLU's derivative is 1
where the unit is active. The book's speed of learning of layer l is ‖δˡ‖ = ‖∂C/∂bˡ‖, the norm of the bias
gradient (shape (30,)) of the mean cost C over a fixed probe of 1,000 training images, measured at
initialisation and at log-spaced steps of training. The ratio ‖δ⁴‖/‖δ¹‖ (last hidden layer over first) is
summarised at initialisation, over the first epoch, and over the second half of training: the book follows 500
batch updates from the start, and a sigmoid net that has left its initial plateau may balance its layers.

Both networks are [784, 30, 30, 30, 30, 10] (`nlplab.nn.Linear` + `nlplab.nn.get_activation`), softmax output,
cross-entropy, mini-batch SGD (η = 0.1, batches of 10). Initialisation: sigmoid as in the book (w ~ N(0, 1/n_in),
b ~ N(0, 1)); ReLU as He (w ~ N(0, 2/n_in), b = 0), the initialisation that goes with it.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch
from torch import nn

from nlplab.data.mnist import load_mnist
from nlplab.lab.base import Lab, LabContext, LabResult
from nlplab.nn import Linear, cross_entropy, get_activation
from nlplab.nn.init import kaiming_normal_, normal_, scaled_normal_
from nlplab.optim import SGD

SIZES, ETA, BATCH, PROBE = [784, 30, 30, 30, 30, 10], 0.1, 10, 1_000
ACTIVATIONS = ("sigmoid", "relu")


def make_network(activation: str) -> nn.Sequential:
    """Linear → activation for each hidden layer, then a Linear output (logits); initialised for `activation`."""
    layers: list[nn.Module] = []
    for k, (n_in, n_out) in enumerate(itertools.pairwise(SIZES)):
        linear = Linear(n_in, n_out)
        if activation == "sigmoid":
            scaled_normal_(linear.weight)
            normal_(linear.bias)
        else:
            kaiming_normal_(linear.weight, nonlinearity="relu")
            nn.init.zeros_(linear.bias)
        layers += [linear] if k == len(SIZES) - 2 else [linear, get_activation(activation)]
    return nn.Sequential(*layers)


def layer_speeds(model: nn.Sequential, x: torch.Tensor, y: torch.Tensor) -> list[float]:
    """‖∂C/∂bˡ‖ for each hidden layer l = 1..L−1, C the mean cross-entropy over (x (n, 784), y (n,))."""
    hidden = [m for m in model if isinstance(m, Linear)][:-1]
    grads = torch.autograd.grad(cross_entropy(model(x), y), [m.bias for m in hidden])
    return [float(g.norm()) for g in grads]


def run(ctx: LabContext) -> LabResult:
    import matplotlib.pyplot as plt

    n, epochs, points = (5_000, 2, 20) if ctx.quick else (50_000, 10, 100)
    mnist = load_mnist()
    x, y = map(torch.from_numpy, mnist.train.head(n))
    probe = x[:PROBE], y[:PROBE]
    per_epoch = n // BATCH
    steps = epochs * per_epoch
    record = set(np.geomspace(1, steps, points).astype(int).tolist())
    traces: dict[str, tuple[list[int], list[list[float]]]] = {}
    accuracy = {}
    for activation in ACTIVATIONS:
        torch.manual_seed(ctx.seed)
        model = make_network(activation)
        optimizer = SGD(model.parameters(), lr=ETA)
        order = torch.Generator().manual_seed(ctx.seed)
        at, speeds = [0], [layer_speeds(model, *probe)]
        bar = ctx.bar(total=steps, desc=activation)
        for step in range(1, steps + 1):
            if (step - 1) % per_epoch == 0:
                batches = torch.randperm(n, generator=order)[: per_epoch * BATCH].view(-1, BATCH)
            batch = batches[(step - 1) % per_epoch]
            optimizer.zero_grad()
            cross_entropy(model(x[batch]), y[batch]).backward()
            optimizer.step()
            if step in record:
                at.append(step)
                speeds.append(layer_speeds(model, *probe))
            bar.update()
        bar.close()
        traces[activation] = (at, speeds)
        with torch.no_grad():
            accuracy[activation] = float((model(torch.from_numpy(mnist.validation.x)).argmax(1)
                                          == torch.from_numpy(mnist.validation.y)).float().mean())

    rows, ratio = [], {}
    for activation, (at, speeds) in traces.items():
        s, at_ = np.array(speeds), np.array(at)
        r = s[:, -1] / s[:, 0]
        ratio[activation] = {"init": float(r[0]), "first epoch": float(np.median(r[at_ <= per_epoch])),
                             "second half": float(np.median(r[at_ > steps / 2]))}
        for layer in range(s.shape[1]):
            rows.append({"activation": activation, "hidden layer": layer + 1, "‖δ‖ at init": float(s[0, layer]),
                         "‖δ‖ first epoch (median)": float(np.median(s[at_ <= per_epoch, layer])),
                         "‖δ‖ second half (median)": float(np.median(s[at_ > steps / 2, layer])),
                         "‖δ‖ at end": float(s[-1, layer])})

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, (activation, (at, speeds)) in zip(axes, traces.items()):
        s = np.array(speeds)
        for layer in range(s.shape[1]):
            ax.loglog(np.maximum(at, 1), s[:, layer], label=f"hidden layer {layer + 1}")
        ax.axvline(per_epoch, color="k", ls="--", lw=0.8)
        ax.set_title(f"{activation}: validation accuracy {accuracy[activation]:.2%}")
        ax.set_xlabel("update (dashed: end of epoch 1; step 0 drawn at 1)")
        ax.legend(fontsize=8)
    axes[0].set_ylabel("speed of learning ‖∂C/∂bˡ‖")
    fig.suptitle(f"{SIZES}, η = {ETA}, mini-batch {BATCH}, {n} training images")
    ctx.save_plot(fig, "speeds")

    sig, relu = ratio["sigmoid"], ratio["relu"]
    init_speeds = np.array(traces["sigmoid"][1][0])
    holds = bool(np.all(np.diff(init_speeds) > 0)) and sig["init"] > 4 and sig["first epoch"] > 2 * relu["first epoch"]
    summary = (f"sigmoid: the last hidden layer learns {sig['init']:.1f}× faster than the first at initialisation, "
               f"{sig['first epoch']:.1f}× (median) over the first epoch, {sig['second half']:.3g}× over the second half "
               f"of training; ReLU: {relu['init']:.3g}×, {relu['first epoch']:.3g}×, {relu['second half']:.3g}×; "
               f"validation accuracy sigmoid {accuracy['sigmoid']:.2%}, ReLU {accuracy['relu']:.2%} after {epochs} epochs")
    return LabResult(rows, summary, holds, {"train_images": n, "epochs": epochs, "ratio_last_to_first": ratio,
                                            "validation_accuracy": accuracy,
                                            "speeds": {a: {"step": at, "speed": [[round(v, 8) for v in s] for s in sp]}
                                                       for a, (at, sp) in traces.items()}})


LAB = Lab("vanishing", "In a deep sigmoid network started as usual, the early hidden layers learn much more slowly than "
          "the later ones (‖δˡ‖ shrinks layer by layer going down); with ReLU the gap is much smaller.", run)
