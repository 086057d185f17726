"""Statistics over the real positions of padded batches: a mask (B, T), True (or 1) at the positions that count.

    masked_mean(x, m)   = Σ m·x / Σ m                                   (over everything, or along `dim`)
    masked_var(x, m)    = masked_mean((x − μ)², m) · n / (n − 1)          μ = masked_mean(x, m), n = Σ m;
                          the factor n / (n − 1) (Bessel) only when unbiased
    masked_whiten(x, m) = (x − μ) / √(var + 1e-8)   (+ μ again when shift_mean is False)

PPO whitens its advantages this way (and, optionally, its rewards) so that the step size does not follow the scale
of the reward model's scores. Positions outside the mask never enter a statistic, even when they hold inf or NaN.
"""

from __future__ import annotations

from torch import Tensor

WHITEN_EPS = 1e-8


def masked_mean(values: Tensor, mask: Tensor, dim: int | tuple[int, ...] | None = None) -> Tensor:
    """Σ mask·values / Σ mask over all positions (dim None) or along `dim`; mask of values' shape (bool or 0/1)."""
    mask = mask.bool()
    kept = values.where(mask, 0)
    if dim is None:
        return kept.sum() / mask.sum()
    return kept.sum(dim) / mask.sum(dim)


def masked_var(values: Tensor, mask: Tensor, unbiased: bool = True) -> Tensor:
    """The variance of the masked values (one number); unbiased multiplies by n / (n − 1), n = Σ mask."""
    centered = values - masked_mean(values, mask)
    variance = masked_mean(centered**2, mask)
    if unbiased:
        n = mask.bool().sum()
        variance = variance * n / (n - 1)
    return variance


def masked_whiten(values: Tensor, mask: Tensor, shift_mean: bool = True, unbiased: bool = True) -> Tensor:
    """(values − μ) / √(σ² + 1e-8) with the masked mean and variance; shift_mean=False adds μ back (only the
    spread is normalised). Positions outside the mask are 0."""
    mean, var = masked_mean(values, mask), masked_var(values, mask, unbiased)
    whitened = (values - mean) * (var + WHITEN_EPS).rsqrt()
    if not shift_mean:
        whitened = whitened + mean
    return whitened.where(mask.bool(), 0)
