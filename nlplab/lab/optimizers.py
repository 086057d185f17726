"""Lab `optimizers`: the notes' quadratic fit y = w1·x² + w2·x + w3 solved by batch GD, SGD, mini-batch SGD,
momentum, Adam and Newton's method (`nlplab.scratch.quadratic`): updates and seconds to reach
L(w) − L(w*) ≤ tol, and the loss curves."""

from __future__ import annotations

from nlplab.lab.base import Lab, LabContext, LabResult
from nlplab.scratch.quadratic import METHODS, fit, make_data


def run(ctx: LabContext) -> LabResult:
    import matplotlib.pyplot as plt

    x, y = make_data(n=200 if ctx.quick else 2000, noise=0.1, seed=ctx.seed)
    tol = 1e-6 if ctx.quick else 1e-8
    fits = {method: fit(x, y, method, tol=tol, seed=ctx.seed) for method in ctx.bar(METHODS, desc="optimisers")}
    rows = [{"method": m, "updates": f.iterations, "seconds": f.seconds, "converged": f.converged,
             "final excess loss": f.losses[-1] - min(f.losses[-1] for f in fits.values())} for m, f in fits.items()]
    fig, ax = plt.subplots(figsize=(7, 4))
    for method, f in fits.items():
        ax.semilogy(range(len(f.losses)), [max(v - min(f.losses), 1e-16) + 1e-16 for v in f.losses], label=method)
    ax.set_xscale("symlog")
    ax.set_xlabel("update")
    ax.set_ylabel("L(w) − min L along the run")
    ax.legend()
    ax.set_title("quadratic fit: loss curves")
    ctx.save_plot(fig, "loss")
    newton, gd = fits["newton"], fits["gd"]
    holds = newton.iterations == 1 and newton.converged and max(fits, key=lambda m: fits[m].iterations) == "sgd"
    summary = (f"Newton converged in {newton.iterations} update, momentum in {fits['momentum'].iterations}, "
               f"Adam in {fits['adam'].iterations}, batch GD in {gd.iterations} (tol {tol:g}); "
               f"SGD {'converged' if fits['sgd'].converged else 'did not converge'} in {fits['sgd'].iterations} updates")
    return LabResult(rows, summary, holds, {"tol": tol, "n": len(x)})


LAB = Lab("optimizers", "Newton's method (second order, with the Hessian) reaches the minimum of a quadratic loss in one "
          "step, where first-order methods need tens to thousands of updates; single-example SGD, the noisiest, needs the most.", run)
