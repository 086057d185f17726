"""Lab `attention-scale`: why attention divides the scores by √d_k.

With q, k ~ N(0, I_d) the dot product q·k = Σ_i q_i k_i has variance d, so the raw scores spread like √d. Softmax
of widely spread scores is nearly one-hot, and its Jacobian diag(w) − w wᵀ then nearly vanishes: the gradient
that reaches the scores, ∂L/∂s = w ⊙ (∂L/∂w − w·∂L/∂w), goes to zero. Dividing by √d keeps Var(s) = 1 for every d.

For each d_k: queries and keys (n, T, d_k) drawn from N(0, 1), values from N(0, 1/d_k) (rows of unit length, so
that the gradient arriving at the weights, ∂L/∂w = g vᵀ, has unit-variance entries for every d_k); the scaled run is
`scaled_dot_product_attention(q, k, v)`, the unscaled one the same call with q·√d_k (so the softmax sees q·kᵀ).
L = ⟨output, g⟩ with a random upstream gradient g ~ N(0, 1) (n, T, d_k); ∂L/∂w by autograd, ∂L/∂s through the softmax
Jacobian. Per query row: the largest weight, the entropy of the weights over log T_k, and ‖∂L/∂s‖.
"""

from __future__ import annotations

import math

import torch

from nlplab.lab.base import Lab, LabContext, LabResult
from nlplab.nn.activations import softmax_jacobian
from nlplab.nn.attention import scaled_dot_product_attention

KEYS = 32


def measure(d_k: int, scaled: bool, n: int, generator: torch.Generator) -> dict[str, float]:
    """Saturation and score-gradient figures of one attention over n × KEYS queries and KEYS keys, float64."""
    q, k, v, g = (torch.randn(n, KEYS, d_k, generator=generator, dtype=torch.float64) for _ in range(4))
    v = v / math.sqrt(d_k)
    q_in = (q if scaled else q * math.sqrt(d_k)).requires_grad_()
    out, weights = scaled_dot_product_attention(q_in, k, v, return_weights=True)
    (grad_w,) = torch.autograd.grad((out * g).sum(), weights)
    scores = q_in.detach() @ k.transpose(-2, -1) / math.sqrt(d_k)
    grad_s = (softmax_jacobian(scores).transpose(-2, -1) @ grad_w.unsqueeze(-1)).squeeze(-1)
    weights = weights.detach()
    max_w = weights.max(-1).values
    entropy = -(weights * weights.clamp_min(1e-300).log()).sum(-1) / math.log(KEYS)
    grad_norm = grad_s.norm(dim=-1)
    return {"score std": scores.std().item(), "mean max weight": max_w.mean().item(),
            "rows max > 0.99": (max_w > 0.99).double().mean().item(), "entropy / log T": entropy.mean().item(),
            "mean ‖∂L/∂s‖": grad_norm.mean().item(), "median ‖∂L/∂s‖": grad_norm.median().item()}


def run(ctx: LabContext) -> LabResult:
    import matplotlib.pyplot as plt

    dims = [16, 64, 256, 1024] if ctx.quick else [16, 32, 64, 128, 256, 512, 1024]
    n = 16 if ctx.quick else 128
    generator = torch.Generator().manual_seed(ctx.seed)
    rows = [{"d_k": d, "scale": "1/√d_k" if scaled else "none", **measure(d, scaled, n, generator)}
            for d in ctx.bar(dims, desc="d_k") for scaled in (True, False)]

    def series(scale: str, key: str) -> list[float]:
        return [r[key] for r in rows if r["scale"] == scale]

    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    for ax, key in zip(axes, ("mean max weight", "entropy / log T", "median ‖∂L/∂s‖")):
        for scale in ("1/√d_k", "none"):
            ax.plot(dims, series(scale, key), marker="o", label=f"scale {scale}")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("d_k")
        ax.set_title(key)
        ax.legend()
    axes[2].set_yscale("log")
    fig.suptitle(f"softmax(q·kᵀ/√d_k) vs softmax(q·kᵀ), q, k ~ N(0, 1), {KEYS} keys")
    ctx.save_plot(fig, "saturation")

    first, last = dims[0], dims[-1]

    def at(d: int, scale: str) -> dict[str, float]:
        return next(r for r in rows if r["d_k"] == d and r["scale"] == scale)

    raw_lo, raw_hi = at(first, "none"), at(last, "none")
    std_growth = raw_hi["score std"] / raw_lo["score std"]
    grad_drop = raw_lo["median ‖∂L/∂s‖"] / raw_hi["median ‖∂L/∂s‖"]
    scaled_grads = series("1/√d_k", "median ‖∂L/∂s‖")
    scaled_spread = max(scaled_grads) / min(scaled_grads)
    scaled_max = series("1/√d_k", "mean max weight")
    holds = (abs(std_growth / math.sqrt(last / first) - 1) < 0.2 and raw_hi["mean max weight"] > 0.9
             and grad_drop > 10 and scaled_spread < 1.5 and max(scaled_max) - min(scaled_max) < 0.1)
    summary = (f"without the scale the score std grows {std_growth:.1f}× from d_k={first} to {last} "
               f"(√ ratio {math.sqrt(last / first):.0f}), the mean max weight goes {raw_lo['mean max weight']:.2f} → "
               f"{raw_hi['mean max weight']:.3f} ({raw_hi['rows max > 0.99']:.0%} of rows above 0.99) and the median "
               f"‖∂L/∂s‖ falls {grad_drop:.0f}× ({raw_lo['median ‖∂L/∂s‖']:.3g} → {raw_hi['median ‖∂L/∂s‖']:.2g}); "
               f"with 1/√d_k the max weight stays {min(scaled_max):.2f}–{max(scaled_max):.2f} and the "
               f"gradient within {scaled_spread:.2f}× across d_k")
    return LabResult(rows, summary, holds, {"keys": KEYS, "queries_per_d": n * KEYS, "dims": dims,
                                            "score_std_growth": std_growth, "unscaled_grad_drop": grad_drop,
                                            "scaled_grad_spread": scaled_spread})


LAB = Lab("attention-scale", "Without the 1/√d_k scale, q·k grows like √d_k, softmax saturates towards one-hot and the "
          "gradient through it vanishes as d_k grows; with the scale, saturation and gradient stay steady.", run)
