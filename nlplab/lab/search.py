"""Lab `search`: grid, random and Bayesian search (TPE, and the hand-written GP with expected improvement) for the
same budget of trials on the ChnSentiCorp bag-of-words recipe, through `nlplab tune`.

The recipe is that of configs/chnsenticorp.yaml (bag of jieba words, Adam, batches of 64). Searched: the learning
rate (1e-4 … 3e-2, log scale), dropout (0 … 0.6), the embedding size (32 … 256, log scale) and the number of
epochs (1 … 8). Each method gets the same budget of trials, the median pruner and the same seed. Trials train on
80% of the train split and select on 10% of it (seed 0); the official dev split, never seen by the search, is the
held-out figure of each method's best recipe (its run's selected epoch, evaluated once). With 16 trials and four
ranges the grid holds two values per range (the centres of two equal cells), 2⁴ = 16 points.
--quick: the first 800 reviews of the train split, characters instead of words, batches of 16, 3 trials per method,
learning rate 1e-3 … 1e-1, 1–3 epochs, 300 held-out reviews.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import optuna

from nlplab.data.registry import find_data
from nlplab.lab.base import Lab, LabContext, LabResult
from nlplab.lab.tune import Param, tune
from nlplab.runs import load_run

METHODS = {"grid": "grid", "random": "random", "TPE": "bayes", "GP + EI": "gp"}
RECIPE = {"task": "classify", "model": "bow", "tokenizer": "word", "min_freq": 2, "window_size": 256, "hidden_size": 128,
          "optimizer": "adam", "batch_size": 64, "metric": "accuracy", "seed": 0, "device": "cpu"}


def space(quick: bool) -> dict[str, Param]:
    return {"lr": Param("lr", 1e-3 if quick else 1e-4, 1e-1 if quick else 3e-2, log=True), "dropout": Param("dropout", 0.0, 0.6),
            "embed_dim": Param("embed_dim", 16 if quick else 32, 64 if quick else 256, log=True),
            "epochs": Param("epochs", 1, 3 if quick else 8)}


def search(method: str, data: Path, trials: int, quick: bool, seed: int, held_out: Path) -> dict[str, Any]:
    """One method's study in a temporary folder: its trials' dev accuracy in order, the best recipe and the best
    run's accuracy on the held-out examples."""
    overrides = {**RECIPE, "data": str(data), **({"tokenizer": "char", "hidden_size": 32, "batch_size": 16} if quick else {})}
    with tempfile.TemporaryDirectory() as folder:
        result = tune(None, space(quick), METHODS[method], trials, folder, overrides=overrides, seed=seed)
        trials_done = result.study.trials
        best = result.best
        held = load_run(Path(folder) / best["run"], "cpu").evaluate(str(held_out)) if best else {}
    return {"values": [t.value if t.state == optuna.trial.TrialState.COMPLETE else None for t in trials_done],
            "states": [t.state.name.lower() for t in trials_done],
            "params": [t.params for t in trials_done],
            "seconds": [t.duration.total_seconds() for t in trials_done],
            "best": best and {"trial": best["trial"], "value": best["value"], "params": best["params"]},
            "held_out_accuracy": held.get("accuracy")}


def run(ctx: LabContext) -> LabResult:
    import matplotlib.pyplot as plt

    trials = 3 if ctx.quick else 16
    folder = find_data("chnsenticorp")
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            data, held_out = folder / "train.tsv", folder / "dev.tsv"
            if ctx.quick:
                for name, rows in (("train.tsv", 800), ("dev.tsv", 300)):
                    lines = (folder / name).read_text(encoding="utf-8").splitlines(keepends=True)
                    (Path(tmp) / name).write_text("".join(lines[: rows + 1]), encoding="utf-8")
                data, held_out = Path(tmp) / "train.tsv", Path(tmp) / "dev.tsv"
            outcomes = {method: ctx.step(method, lambda m=method: search(m, data, trials, ctx.quick, ctx.seed, held_out))
                        for method in ctx.bar(METHODS, desc="methods")}
    finally:
        optuna.logging.set_verbosity(level)

    curves = {}
    rows = []
    for method, o in outcomes.items():
        values = np.array([v if v is not None else -np.inf for v in o["values"]])
        curves[method] = np.maximum.accumulate(values).tolist()
        best = o["best"]
        rows.append({"method": method, "trials": len(values), "pruned": o["states"].count("pruned"),
                     "best dev accuracy": best["value"] if best else float("nan"),
                     "reached at trial": best["trial"] + 1 if best else None,
                     "held-out accuracy of the best": o["held_out_accuracy"],
                     "best recipe": ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}"
                                              for k, v in (best["params"] if best else {}).items()),
                     "minutes": sum(o["seconds"]) / 60})

    fig, ax = plt.subplots(figsize=(6, 4))
    for method, curve in curves.items():
        ax.step(range(1, len(curve) + 1), curve, where="post", label=method)
    ax.set_xlabel("trials")
    ax.set_ylabel("best dev accuracy so far")
    ax.set_title(f"ChnSentiCorp bag of words: {trials} trials per method")
    ax.legend()
    ctx.save_plot(fig, "best_so_far")

    best = {row["method"]: row["best dev accuracy"] for row in rows}
    holds = bool(best["TPE"] >= best["grid"] and best["GP + EI"] >= best["grid"])
    summary = ("best dev accuracy after " + f"{trials} trials: "
               + ", ".join(f"{row['method']} {row['best dev accuracy']:.4f} (trial {row['reached at trial']}, held-out "
                           f"{row['held-out accuracy of the best']:.4f})" for row in rows))
    return LabResult(rows, summary, holds, {"curves": curves, "trials": {m: o for m, o in outcomes.items()}})


LAB = Lab("search", "For the same budget of trials, Bayesian optimisation (TPE, or a GP with expected improvement) finds "
          "a recipe at least as good as grid search, which spends the budget on a coarse lattice.", run)
