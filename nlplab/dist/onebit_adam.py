"""1-bit Adam (Tang et al., 2021): data-parallel Adam that, after a warm-up, communicates one bit per parameter.

Adam's variance v settles early in training, while its momentum m keeps moving. So:
- warm-up (steps t ≤ freeze_step): plain Adam; the ranks average their gradients with a full-precision all-reduce;
- compression (t > freeze_step): v is frozen; each rank moves its own momentum with its own gradient,
  m_r = β₁·m + (1 − β₁)·g_r, and the ranks average the m_r by a *compressed* all-reduce; then
  p ← p − lr · m̂ / (√v̂ + ε) with v̂ the bias-corrected variance of the freeze step.
The average of the m_r is exactly Adam's β₁·m + (1 − β₁)·mean(g), so compression is the only approximation.
Signs cannot say zero: an element whose gradient was always 0 in warm-up (v = 0: an input pixel that is never
on, an unused embedding row) would receive ±s/ε. Its momentum is kept at 0, as Adam keeps it (DeepSpeed asks the
user for this mask, `exp_avg_mask`; here it is read off the frozen variance).

Compression of a vector x of n elements: C(x) = s · sign(x), s = ‖x‖₁ / n (the scale minimising ‖x − s·sign(x)‖₂),
sent as n bits plus one number. Error feedback keeps what compression dropped and adds it back next time:
c = x + e, e ← c − C(c). The compressed all-reduce has two rounds, each with its own error feedback:
1. every rank sends the signs of chunk j of its compensated momentum (and its scale) to rank j; rank j averages
   the p decompressed chunks (a "server" for chunk j);
2. each server compresses its averaged chunk again and sends it to every rank (an all-gather of bits).
Per rank that is 2(p − 1)/p·n bits plus 2(p − 1) scales, against 2(p − 1)/p·n numbers of 32 (or 64) bits for the
ring all-reduce: about 32× (64× in float64) less.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from nlplab.dist.collectives import Group, all_reduce, chunk_sizes
from nlplab.errors import ConfigError
from nlplab.optim.adam import Adam

BITS = torch.tensor([1, 2, 4, 8, 16, 32, 64, 128], dtype=torch.uint8)


def pack_signs(x: Tensor) -> Tensor:
    """x (n,) -> ⌈n/8⌉ bytes, bit k of byte i set when x[8i + k] ≥ 0."""
    bits = torch.zeros(-(-x.numel() // 8) * 8, dtype=torch.uint8)
    bits[: x.numel()] = (x >= 0).to(torch.uint8)
    return (bits.view(-1, 8) * BITS).sum(1, dtype=torch.uint8)


def unpack_signs(packed: Tensor, n: int, dtype: torch.dtype) -> Tensor:
    """The n signs (+1 or −1) that `pack_signs` packed, as `dtype`."""
    bits = (packed.unsqueeze(1) & BITS) > 0
    return bits.flatten()[:n].to(dtype) * 2 - 1


def compress(x: Tensor, error: Tensor) -> tuple[Tensor, Tensor]:
    """(packed signs, scale) of c = x + error, with error ← c − scale·sign(c) in place (error feedback)."""
    c = x + error
    scale = c.abs().mean() if c.numel() else c.new_zeros(())
    error.copy_(c - scale * torch.where(c >= 0, 1.0, -1.0).to(c.dtype))
    return pack_signs(c), scale.reshape(1)


def compressed_all_reduce(x: Tensor, worker_error: Tensor, server_error: Tensor, group: Group) -> Tensor:
    """≈ the mean over ranks of x (1-D), one bit per element each way (see the module docstring). worker_error is
    shaped like x, server_error like this rank's chunk; both are updated in place."""
    p, r = group.size, group.rank
    sizes = chunk_sizes(x.numel(), p)
    errors = worker_error.split(sizes)
    parts = [compress(chunk, error) for chunk, error in zip(x.split(sizes), errors)]
    scales = [torch.empty(1, dtype=x.dtype) for _ in range(p)]
    signs = [torch.empty_like(parts[r][0]) for _ in range(p)]
    signs[r], scales[r] = parts[r]
    for s in range(1, p):
        to, source = (r + s) % p, (r - s) % p
        group.exchange(parts[to][0], to, signs[source], source)
        group.exchange(parts[to][1], to, scales[source], source)
    mine = sum(scale * unpack_signs(bits, sizes[r], x.dtype) for bits, scale in zip(signs, scales)) / p
    bits, scale = compress(mine, server_error)
    gathered_bits = [bits if i == r else torch.empty(-(-sizes[i] // 8), dtype=torch.uint8) for i in range(p)]
    gathered_scales = [scale if i == r else torch.empty(1, dtype=x.dtype) for i in range(p)]
    for s in range(1, p):
        to, source = (r + s) % p, (r - s) % p
        group.exchange(bits, to, gathered_bits[source], source)
        group.exchange(scale, to, gathered_scales[source], source)
    return torch.cat([s * unpack_signs(b, n, x.dtype) for b, s, n in zip(gathered_bits, gathered_scales, sizes)])


class OneBitAdam(Adam):
    """1-bit Adam over parameters replicated on every rank of `group`: call step() after backward with each rank's
    own gradients (not averaged); the optimizer does the communication. Warm-up: one all-reduce of all gradients
    flattened together. Compression: one compressed all-reduce per parameter tensor, so that each tensor has its
    own scales (as DeepSpeed does: one scale for a whole model would hand the mean momentum of the large-gradient
    tensors to every small-gradient one, which its small frozen variance then magnifies). Equal to Adam on the
    averaged gradients up to and including step freeze_step. Same arguments as `nlplab.optim.Adam` plus group and
    freeze_step; the state of a parameter adds worker_error and server_error once compression starts."""

    def __init__(self, params: Iterable[Tensor] | Iterable[dict[str, Any]], group: Group, freeze_step: int,
                 lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0) -> None:
        if freeze_step < 1:
            raise ConfigError(f"1-bit Adam needs freeze_step >= 1 (warm-up steps of plain Adam), got {freeze_step}")
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
        self.group, self.freeze_step = group, freeze_step

    def warming_up(self) -> bool:
        """True until freeze_step steps have been taken."""
        return all(state.get("step", 0) < self.freeze_step for state in self.state.values())

    @torch.no_grad()
    def step(self, closure: Any = None) -> Tensor | None:
        if self.warming_up():
            params = [p for group in self.param_groups for p in group["params"] if p.grad is not None]
            flat = all_reduce(torch.cat([p.grad.flatten() for p in params]), self.group) / self.group.size
            for p, g in zip(params, flat.split([p.numel() for p in params])):
                p.grad = g.view_as(p)
        return super().step(closure)

    def update(self, p: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        """Adam's update during warm-up; afterwards the compressed average of the ranks' momenta over the frozen
        variance."""
        if state.get("step", 0) < self.freeze_step:
            super().update(p, state, group)
            return
        (beta1, beta2), eps = group["betas"], group["eps"]
        if "worker_error" not in state:
            state["worker_error"] = torch.zeros(p.numel(), dtype=p.dtype, device=p.device)
            size = chunk_sizes(p.numel(), self.group.size)[self.group.rank]
            state["server_error"] = torch.zeros(size, dtype=p.dtype, device=p.device)
        state["step"] += 1
        g = p.grad + group["weight_decay"] * p
        local = state["exp_avg"] * beta1 + (1 - beta1) * g
        m = compressed_all_reduce(local.flatten(), state["worker_error"], state["server_error"], self.group)
        v_hat = state["exp_avg_sq"] / (1 - beta2**self.freeze_step)
        state["exp_avg"].copy_(m.view_as(p) * (v_hat > 0))
        m_hat = state["exp_avg"] / (1 - beta1 ** state["step"])
        p.addcdiv_(m_hat, v_hat.sqrt() + eps, value=-group["lr"])
