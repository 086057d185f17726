"""Lab `dropout-bn`: the variance shift of Dropout placed before BatchNorm (Li et al., 2019).

Inverted dropout keeps the mean of a unit, E[x·m/(1−p)] = E[x], but not its variance: in training
Var = E[x²]/(1−p) − E[x]², at inference Var = E[x²] − E[x]². A BatchNorm after it learns its running variance from
the training (dropped) inputs and then, at inference, divides inputs of smaller variance by it: the network sees a
different scale in eval mode than it was trained on, and the shift compounds from layer to layer.

An MLP on MNIST, 784 → [Linear → BN → ReLU] × DEPTH → Linear → 10, in three arrangements:
  "dropout → BN": Dropout(p) before every Linear after the first, so BN layers 2..DEPTH see dropped inputs;
  "BN → dropout": Dropout(p) only after the last BN, before the classifier (Li et al.'s remedy);
  "no dropout".
Per BN layer after training: its running variance, the variance of its input over training examples with dropout
on (train mode) and off (eval mode), and the ratio eval / running (1 = no shift), averaged over channels. Test accuracy
in eval mode, and again after recomputing every BN's statistics from the training set with dropout off.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nlplab.data.mnist import load_mnist
from nlplab.lab.base import Lab, LabContext, LabResult
from nlplab.nn.activations import get_activation
from nlplab.nn.layers import BatchNorm1d, Dropout, Linear
from nlplab.optim import build_optimizer

DEPTH, HIDDEN = 4, 256


def mlp(arrangement: str, p: float) -> nn.Sequential:
    """The MLP of the module docstring; x (N, 784) -> logits (N, 10)."""
    layers: list[nn.Module] = []
    for i in range(DEPTH):
        if arrangement == "dropout → BN" and i > 0:
            layers.append(Dropout(p))
        layers += [Linear(784 if i == 0 else HIDDEN, HIDDEN), BatchNorm1d(HIDDEN), get_activation("relu", "fused")]
    if arrangement == "BN → dropout":
        layers.append(Dropout(p))
    return nn.Sequential(*layers, Linear(HIDDEN, 10))


def batch_norms(model: nn.Module) -> list[BatchNorm1d]:
    return [m for m in model.modules() if isinstance(m, BatchNorm1d)]


def set_modes(model: nn.Module, dropout_on: bool, bn_train: bool) -> None:
    """Dropout and BatchNorm modes chosen separately."""
    for m in model.modules():
        if isinstance(m, Dropout):
            m.train(dropout_on)
        elif isinstance(m, BatchNorm1d):
            m.train(bn_train)


@torch.no_grad()
def bn_input_variances(model: nn.Module, x: Tensor, dropout_on: bool) -> list[Tensor]:
    """Per-channel variance (HIDDEN,) of each BN layer's input over x, with BN in eval mode and dropout on or off."""
    seen: list[Tensor] = []
    hooks = [bn.register_forward_pre_hook(lambda _, args: seen.append(args[0].var(0))) for bn in batch_norms(model)]
    set_modes(model, dropout_on, bn_train=False)
    model(x)
    for hook in hooks:
        hook.remove()
    return seen


@torch.no_grad()
def accuracy(model: nn.Module, x: Tensor, y: Tensor) -> float:
    model.eval()
    return (model(x).argmax(-1) == y).float().mean().item()


@torch.no_grad()
def recalibrate(model: nn.Module, x: Tensor) -> None:
    """Replace every BN's running statistics by those of x with dropout off: one pass with BN in train mode and
    momentum 1, so each layer's statistics are taken on inputs already normalised by the layers below."""
    set_modes(model, dropout_on=False, bn_train=True)
    for bn in batch_norms(model):
        bn.momentum = 1.0
    model(x)
    for bn in batch_norms(model):
        bn.momentum = 0.1


def train(model: nn.Module, x: Tensor, y: Tensor, epochs: int, seed: int) -> None:
    optimizer = build_optimizer("adam", model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        for rows in torch.randperm(len(x), generator=generator).split(128):
            loss = F.cross_entropy(model(x[rows]), y[rows])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()


def run(ctx: LabContext) -> LabResult:
    import matplotlib.pyplot as plt

    mnist = load_mnist()
    n_train, n_test, epochs = (8_000, 2_000, 2) if ctx.quick else (50_000, 10_000, 10)
    x, y = map(torch.from_numpy, mnist.train.head(n_train))
    x_test, y_test = map(torch.from_numpy, mnist.test.head(n_test))
    setups = [("dropout → BN", 0.5), ("BN → dropout", 0.5), ("no dropout", 0.0)]
    if not ctx.quick:
        setups.insert(1, ("dropout → BN", 0.2))
    rows, layers = [], []
    for arrangement, p in ctx.bar(setups, desc="arrangements"):
        torch.manual_seed(ctx.seed)
        model = mlp(arrangement, p)
        train(model, x, y, epochs, ctx.seed)
        var_train, var_eval = bn_input_variances(model, x[:n_test], True), bn_input_variances(model, x[:n_test], False)
        ratios = []
        for i, (bn, v_tr, v_ev) in enumerate(zip(batch_norms(model), var_train, var_eval), start=1):
            ratios.append((v_ev / bn.running_var).mean().item())
            layers.append({"arrangement": arrangement, "p": p, "layer": i, "running var": bn.running_var.mean().item(),
                           "input var, dropout on": v_tr.mean().item(), "input var, dropout off": v_ev.mean().item(),
                           "eval / running": ratios[-1]})
        acc = accuracy(model, x_test, y_test)
        recalibrate(model, x)
        rows.append({"arrangement": arrangement, "p": p, **{f"var ratio L{i}": r for i, r in enumerate(ratios, start=1)},
                     "test acc": acc, "acc, BN stats recomputed": accuracy(model, x_test, y_test)})

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4))
    depth = list(range(1, DEPTH + 1))
    for row in rows:
        ax1.plot(depth, [row[f"var ratio L{i}"] for i in depth], marker="o", label=f"{row['arrangement']}, p={row['p']}")
    ax1.axhline(1.0, color="grey", linestyle=":")
    ax1.set_xticks(depth)
    ax1.set_xlabel("BN layer")
    ax1.set_ylabel("inference var of BN input / running var")
    ax1.set_title("variance shift, layer by layer")
    ax1.legend()
    names = [f"{r['arrangement']}\np={r['p']}" for r in rows]
    positions = torch.arange(len(rows)).float()
    ax2.bar(positions - 0.2, [100 * r["test acc"] for r in rows], 0.4, label="as trained")
    ax2.bar(positions + 0.2, [100 * r["acc, BN stats recomputed"] for r in rows], 0.4, label="BN stats recomputed")
    ax2.set_xticks(positions.tolist(), names)
    ax2.set_ylim(min(100 * min(r["test acc"], r["acc, BN stats recomputed"]) for r in rows) - 1, 100)
    ax2.set_ylabel("test accuracy (%)")
    ax2.legend()
    ctx.save_plot(fig, "variance_shift")

    shifted, remedy = rows[0], next(r for r in rows if r["arrangement"] == "BN → dropout")
    after_dropout = [shifted[f"var ratio L{i}"] for i in depth[1:]]
    remedy_ratios = [remedy[f"var ratio L{i}"] for i in depth]
    unshifted = [r[f"var ratio L{i}"] for r in rows if r["arrangement"] != "dropout → BN" for i in depth]
    holds = (max(after_dropout) < min(unshifted) - 0.1 and abs(shifted["var ratio L1"] - 1) < 0.1
             and all(abs(r - 1) < 0.1 for r in unshifted))
    summary = (f"with dropout p=0.5 before BN, the inference variance of BN layers 2–{DEPTH} is "
               f"{min(after_dropout):.2f}–{max(after_dropout):.2f} of the running variance learned in training (layer 1, "
               f"no dropout before it: {shifted['var ratio L1']:.2f}); with dropout after the last BN: "
               f"{min(remedy_ratios):.2f}–{max(remedy_ratios):.2f}. Test accuracy {100 * shifted['test acc']:.2f}% "
               f"({100 * shifted['acc, BN stats recomputed']:.2f}% after recomputing BN's statistics without dropout) "
               f"against {100 * remedy['test acc']:.2f}% with dropout after BN")
    return LabResult(rows, summary, holds, {"layers": layers, "train_examples": n_train, "test_examples": n_test,
                                            "epochs": epochs, "depth": DEPTH, "hidden": HIDDEN})


LAB = Lab("dropout-bn", "Dropout before BatchNorm shifts the variance between training and inference: the running "
          "variance BN learns with dropout on is larger than the variance of its inputs at inference, layer after "
          "layer; with dropout after the last BN there is no shift.", run)
