"""NF4, the 4-bit NormalFloat of QLoRA (Dettmers et al., 2023), with double quantisation of its scales.

Pretrained weights are close to normal, so NF4's 16 code values are quantiles of N(0, 1): each of the 16 bins
holds about as many weights.

    code values   q = sort(Φ⁻¹(p_1 … p_8), 0, -Φ⁻¹(p'_1 … p'_7)) / max,  p = linspace(δ, ½, 9)[:-1],
                  p' = linspace(δ, ½, 8)[:-1],  δ = ½(1 − 1/30 + 1 − 1/32) = 0.9677083   (q_0 = -1, q_7 = 0, q_15 = 1)
    quantise      per block of 64 weights: a = max |w|;  code(w) = index of the q_i nearest to w · (1/a)
    dequantise    ŵ = q_code(w) · a
    double quant  the absmax values a (32 bits per 64 weights) are themselves quantised: c = mean(a), then
                  a - c blockwise in blocks of 256 over the signed 8-bit dynamic code (Dettmers, 2015), keeping one
                  float32 absmax per block: 8/64 + 32/(64·256) = 0.127 bits per weight instead of 0.5
    packing       two 4-bit codes per byte, the first in the high nibble

Bit for bit what bitsandbytes' `quantize_4bit(w, blocksize=64, compress_statistics=True, quant_type="nf4")` stores
on the CPU (tested): the nearest 4-bit code is found against the midpoints between code values (a tie goes down);
the nearest 8-bit code through a table of the nearest code at 65,536 points of [-1, 1] (see `quantize_8bit`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

NF4_OFFSET = 0.9677083
BLOCK_SIZE = 64
ABSMAX_BLOCK_SIZE = 256
LOOKUP_SIZE = 65536


def nf4_code_values() -> Tensor:
    """The 16 NF4 values (16,) float32, from -1 to 1 with an exact 0 (see the module docstring)."""
    positive = torch.special.ndtri(torch.linspace(NF4_OFFSET, 0.5, 9)[:-1].double())
    negative = -torch.special.ndtri(torch.linspace(NF4_OFFSET, 0.5, 8)[:-1].double())
    values = torch.cat([positive, torch.zeros(1, dtype=torch.float64), negative]).float().sort().values
    return values / values.max()


def dynamic_code_values() -> Tensor:
    """The signed 8-bit dynamic code (256,) float32, sorted: sign, exponent e = 0 … 6 (10^(e-6)), and 2^e linear
    fractions (the midpoints of linspace(0.1, 1, 2^e + 1)), plus 0 and 1. Small magnitudes get fine steps."""
    values = [torch.tensor([0.0, 1.0])]
    for e in range(7):
        bounds = torch.linspace(0.1, 1, 2**e + 1)
        magnitudes = 10.0 ** (e - 6) * (bounds[:-1] + bounds[1:]) / 2
        values += [magnitudes, -magnitudes]
    return torch.cat(values).sort().values


NF4 = nf4_code_values()
NF4_ZERO = 7
"""The index of NF4's exact 0."""
DYNAMIC = dynamic_code_values()


def blockwise_absmax(x: Tensor, block: int) -> Tensor:
    """max |x| over consecutive blocks of `block` values of x (n,) (the last one may be shorter): (⌈n/block⌉,)."""
    full = x.numel() - x.numel() % block
    maxima = [x[:full].view(-1, block).abs().amax(1)]
    if full < x.numel():
        maxima.append(x[full:].abs().amax().view(1))
    return torch.cat(maxima)


def per_element(values: Tensor, block: int, n: int) -> Tensor:
    """One value per block (⌈n/block⌉,) -> one per element (n,)."""
    return values.repeat_interleave(block)[:n]


def quantize_4bit(x: Tensor, code: Tensor = NF4, block: int = BLOCK_SIZE) -> tuple[Tensor, Tensor]:
    """Blockwise absmax quantisation of x (n,) float32 to the nearest of the 16 sorted `code` values:
    returns codes (n,) uint8 in 0 … 15 and absmax (⌈n/block⌉,) float32. The nearest value is found against the
    midpoints between neighbours, a value on a midpoint going to the lower code."""
    absmax = blockwise_absmax(x, block)
    scaled = (x * per_element(1.0 / absmax.clamp_min(1e-38), block, x.numel())).clamp(-1, 1)
    code = code.to(x.device)
    midpoints = (code[:-1] + code[1:]) / 2
    return torch.searchsorted(midpoints, scaled).to(torch.uint8), absmax


def nearest_code_table(code: Tensor, size: int = LOOKUP_SIZE) -> Tensor:
    """For each of `size` evenly spaced points g_i = -1 + 2i/(size - 1) of [-1, 1], the index of the nearest of the
    sorted `code` values (size,) long: the number of midpoints between neighbours that lie below g_i."""
    grid = -1.0 + 2.0 * torch.arange(size, dtype=torch.float32, device=code.device) / (size - 1)
    return torch.searchsorted((code[:-1] + code[1:]) / 2, grid)


def quantize_8bit(x: Tensor, code: Tensor = DYNAMIC, block: int = ABSMAX_BLOCK_SIZE) -> tuple[Tensor, Tensor]:
    """Blockwise absmax quantisation of x (n,) float32 to the 256 sorted `code` values: returns codes (n,) uint8
    and absmax (⌈n/block⌉,) float32. s = x · (1/a) in [-1, 1] is rounded to the nearest point of a grid of 65,536
    over [-1, 1], whose nearest code is looked up (`nearest_code_table`), as bitsandbytes' CPU kernel does: the
    nearest code of s up to one grid step (3·10⁻⁵). A block of zeros gets code 0."""
    absmax = blockwise_absmax(x, block)
    nonzero = absmax > 0
    inverse = torch.where(nonzero, 1.0 / absmax, 0.0)
    scaled = (x * per_element(inverse, block, x.numel())).clamp(-1, 1)
    grid_index = ((scaled + 1) * 0.5 * (LOOKUP_SIZE - 1) + 0.5).long()
    codes = torch.where(per_element(nonzero, block, x.numel()), nearest_code_table(code.to(x.device))[grid_index], 0)
    return codes.to(torch.uint8), absmax


def dequantize(codes: Tensor, absmax: Tensor, code: Tensor, block: int) -> Tensor:
    """x̂ = code[codes] · absmax of the block: codes (n,) -> (n,) float32."""
    return code.to(codes.device)[codes.long()] * per_element(absmax, block, codes.numel())


def pack(codes: Tensor, fill: int = NF4_ZERO) -> Tensor:
    """4-bit codes (n,) uint8 -> bytes (⌈n/2⌉,) uint8, two per byte, the first in the high nibble; an odd n is
    padded with `fill` (the code of 0)."""
    if codes.numel() % 2:
        codes = torch.cat([codes, codes.new_full((1,), fill)])
    return codes[0::2] << 4 | codes[1::2]


def unpack(packed: Tensor, n: int) -> Tensor:
    """Bytes (⌈n/2⌉,) uint8 -> the n 4-bit codes (n,) uint8."""
    return torch.stack([packed >> 4, packed & 0xF], 1).flatten()[:n]


@dataclass
class NF4Weight:
    """A tensor in NF4 with double-quantised absmax: packed codes (⌈n/2⌉,) uint8, absmax codes (⌈n/64⌉,) uint8,
    absmax2 (⌈n/(64·256)⌉,) float32 and offset () float32 (the mean c of the absmax values), original shape."""

    packed: Tensor
    absmax: Tensor
    absmax2: Tensor
    offset: Tensor
    shape: torch.Size

    def nbytes(self) -> int:
        """Bytes of storage (the code tables, 16 + 256 shared float32 values, are not counted)."""
        return sum(t.numel() * t.element_size() for t in (self.packed, self.absmax, self.absmax2, self.offset))


def quantize_nf4(w: Tensor) -> NF4Weight:
    """w (any shape) -> NF4 codes in blocks of 64, absmax double-quantised in blocks of 256 (see the docstring)."""
    x = w.detach().float().flatten()
    codes, absmax = quantize_4bit(x)
    offset = absmax.mean()
    absmax_codes, absmax2 = quantize_8bit(absmax - offset)
    return NF4Weight(pack(codes), absmax_codes, absmax2, offset, w.shape)


def dequantize_nf4(q: NF4Weight) -> Tensor:
    """The float32 tensor (q.shape) an NF4Weight stands for: q_code · (dequantised absmax + offset)."""
    absmax = dequantize(q.absmax, q.absmax2.float(), DYNAMIC, ABSMAX_BLOCK_SIZE) + q.offset.float()
    n = q.shape.numel()
    return dequantize(unpack(q.packed, n), absmax, NF4, BLOCK_SIZE).view(q.shape)
