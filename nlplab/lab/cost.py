"""Lab `cost`: the learning slowdown of a saturated sigmoid neuron under the quadratic cost, and its cure by the
cross-entropy cost (Nielsen, ch. 3, "The cross-entropy cost function").

One neuron (`nlplab.scratch.Network([1, 1])`) with input x = 1 and target y = 0 learns by gradient descent,
η = 0.15, 300 epochs of one example. Its output is a = σ(z), z = w·x + b, and the gradients are

    quadratic      C = (a − y)²/2                        ∂C/∂w = (a − y) σ′(z) x   (σ′(z) ≈ 0 when a ≈ 1)
    cross-entropy  C = −[y ln a + (1 − y) ln(1 − a)]     ∂C/∂w = (a − y) x          (no σ′ factor)

Started at w = 2, b = 2 (a = σ(4) ≈ 0.98, saturated) and at w = 0.6, b = 0.9 (a = σ(1.5) ≈ 0.82). The run is
a few milliseconds, so `--quick` is the full lab. The yardstick of speed is z₀ = w + b (the distance z must travel
to reach a = 0.5) divided by the epochs it takes.
"""

from __future__ import annotations

import numpy as np

from nlplab.lab.base import Lab, LabContext, LabResult
from nlplab.scratch.network import Network

ETA, EPOCHS = 0.15, 300
STARTS = {"saturated (w=2, b=2)": (2.0, 2.0), "unsaturated (w=0.6, b=0.9)": (0.6, 0.9)}
COSTS = ("quadratic", "cross_entropy")


def train_neuron(cost: str, w: float, b: float, eta: float = ETA, epochs: int = EPOCHS) -> dict[str, list[float]]:
    """Gradient descent on the single example x = 1, y = 0; the cost, output a and ∂C/∂w before each epoch and after the last."""
    net = Network([1, 1], cost=cost)
    net.weights, net.biases = [np.array([[w]])], [np.array([[b]])]
    x, y = np.ones((1, 1)), np.zeros((1, 1))
    curve: dict[str, list[float]] = {"cost": [], "output": [], "grad_w": []}
    for epoch in range(epochs + 1):
        curve["cost"].append(net.cost_value(x, y))
        curve["output"].append(float(net.feedforward(x)[0, 0]))
        curve["grad_w"].append(float(net.backprop(x, y)[1][0][0, 0]))
        if epoch < epochs:
            net.update_mini_batch(x, y, eta)
    return curve


def epochs_to_cross(outputs: list[float], level: float = 0.5) -> int | None:
    """The first epoch whose output is below `level` (None if it never gets there): same yardstick for both costs."""
    return next((epoch for epoch, a in enumerate(outputs) if a < level), None)


def run(ctx: LabContext) -> LabResult:
    import matplotlib.pyplot as plt

    curves = {(start, cost): train_neuron(cost, *STARTS[start]) for start in STARTS for cost in ctx.bar(COSTS, desc=start)}
    rows = [{"start": start, "cost": cost, "initial output": c["output"][0], "initial ∂C/∂w": c["grad_w"][0],
             "epochs to output < 0.5": epochs_to_cross(c["output"]),
             "speed z₀/epochs": sum(STARTS[start]) / (epochs_to_cross(c["output"]) or EPOCHS + 1), "output after 30 epochs": c["output"][30],
             f"output after {EPOCHS} epochs": c["output"][-1]} for (start, cost), c in curves.items()]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for (start, cost), c in curves.items():
        style = "-" if cost == "cross_entropy" else "--"
        axes[0].plot(np.array(c["cost"]) / c["cost"][0], style, label=f"{cost}, {start}")
        axes[1].plot(c["output"], style, label=f"{cost}, {start}")
    axes[0].set_ylabel("cost / initial cost")
    axes[1].set_ylabel("output a (target 0)")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.legend(fontsize=8)
    fig.suptitle(f"one sigmoid neuron, x = 1, y = 0, η = {ETA}")
    ctx.save_plot(fig, "curves")
    cross = {key: epochs_to_cross(c["output"]) or EPOCHS + 1 for key, c in curves.items()}
    grad = {key: abs(c["grad_w"][0]) for key, c in curves.items()}
    speed = {(start, cost): sum(STARTS[start]) / cross[start, cost] for start, cost in curves}
    sat, unsat = STARTS
    holds = (grad[sat, "quadratic"] < grad[unsat, "quadratic"] and speed[sat, "quadratic"] < speed[unsat, "quadratic"] / 2
             and grad[sat, "cross_entropy"] >= grad[unsat, "cross_entropy"]
             and speed[sat, "cross_entropy"] >= speed[unsat, "cross_entropy"])
    summary = (f"quadratic cost: initial ∂C/∂w {grad[sat, 'quadratic']:.4f} saturated vs {grad[unsat, 'quadratic']:.4f} "
               f"unsaturated, output below 0.5 after {cross[sat, 'quadratic']} vs {cross[unsat, 'quadratic']} epochs "
               f"(z moves {speed[sat, 'quadratic']:.3f} vs {speed[unsat, 'quadratic']:.3f} per epoch); "
               f"cross-entropy: ∂C/∂w {grad[sat, 'cross_entropy']:.3f} vs {grad[unsat, 'cross_entropy']:.3f}, "
               f"{cross[sat, 'cross_entropy']} vs {cross[unsat, 'cross_entropy']} epochs "
               f"({speed[sat, 'cross_entropy']:.3f} vs {speed[unsat, 'cross_entropy']:.3f} per epoch)")
    figures = {"eta": ETA, "epochs": EPOCHS,
               "curves": {f"{cost} | {start}": {k: [round(v, 6) for v in c[k]] for k in ("cost", "output")}
                          for (start, cost), c in curves.items()}}
    return LabResult(rows, summary, holds, figures)


LAB = Lab("cost", "With the quadratic cost a saturated sigmoid neuron (output near 1, target 0) learns slowly at first, "
          "because ∂C/∂w carries the factor σ′(z) ≈ 0; with the cross-entropy cost the factor cancels and the "
          "saturated neuron's gradient is the largest, so it does not slow down.", run)
