"""QLoRA's frozen base (Dettmers et al., 2023): Linear layers whose weights are stored in NF4 and dequantised on
the fly, y = x Ŵᵀ + b with Ŵ = dequantise(NF4 codes) — LoRA (`nlplab.peft.lora`) then trains beside them.

Gradients flow through Ŵ to the input (so the LoRA layers below receive them) but Ŵ itself is a buffer: nothing
of the base is trained. The memory of the base weights drops from 32 bits (float32) or 16 (bf16) to about 4.13 bits
per weight (`memory_report`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nlplab.peft.nf4 import NF4Weight, dequantize_nf4, quantize_nf4


class Linear4bit(nn.Module):
    """A frozen Linear in NF4: x (..., in_features) -> (..., out_features), y = x Ŵᵀ + b.

    Built from a Linear (nlplab's or torch's): its weight is quantised once (`quantize_nf4`); the bias stays as it
    was, frozen. `weight` is the dequantised float32 weight (out, in). The quantisation state lives in buffers
    (uint8 codes, float32 scales): keep the module in float32 or let autocast lower the compute, since casting the
    model with .half() or .bfloat16() would round its float32 scales."""

    def __init__(self, linear: nn.Module) -> None:
        super().__init__()
        self.out_features, self.in_features = linear.weight.shape
        q = quantize_nf4(linear.weight)
        for name in ("packed", "absmax", "absmax2", "offset"):
            self.register_buffer(name, getattr(q, name))
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().clone(), requires_grad=False)

    def quantized(self) -> NF4Weight:
        shape = torch.Size((self.out_features, self.in_features))
        return NF4Weight(self.packed, self.absmax, self.absmax2, self.offset, shape)

    @property
    def weight(self) -> Tensor:
        return dequantize_nf4(self.quantized())

    def forward(self, x: Tensor) -> Tensor:
        bias = None if self.bias is None else self.bias.to(x.dtype)
        return F.linear(x, self.weight.to(x.dtype), bias)

    def nbytes(self) -> int:
        """Bytes of the stored weight: packed codes, 8-bit absmax codes, their float32 scales and offset."""
        return self.quantized().nbytes()


def memory_report(model: nn.Module) -> dict[str, float]:
    """The base weights' memory: the NF4 layers' weights as stored against the same weights in float32 and bf16,
    and the other frozen parameters (embeddings, norms, biases) as they are."""
    layers = [m for m in model.modules() if isinstance(m, Linear4bit)]
    weights = sum(m.out_features * m.in_features for m in layers)
    stored = sum(m.nbytes() for m in layers)
    frozen = sum(p.numel() * p.element_size() for p in model.parameters() if not p.requires_grad)
    share = (lambda part: part / weights) if weights else (lambda part: 0.0)
    return {"nf4_weights": weights, "nf4_bytes": stored, "float32_bytes": 4 * weights, "bf16_bytes": 2 * weights,
            "of_float32": share(stored / 4), "of_bf16": share(stored / 2), "bits_per_weight": share(8 * stored),
            "other_frozen_bytes": frozen}
