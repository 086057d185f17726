"""LoRA (Hu et al., 2021): a trainable low-rank update beside a frozen weight matrix.

    y = W x + b + (α/r) · B A dropout(x)        A (r, in) random, B (out, r) zero: training starts from W itself

For a d×d matrix that is 2·d·r trainable numbers instead of d². `merge()` folds the update into the weight,
W ← W + (α/r)·B A (the layer then costs nothing extra at inference), `unmerge()` takes it out again.

Where the update goes is said by name, as in Hugging Face PEFT: a target matches every Linear whose name is the
target or ends with "." + target. Attention layers (`MultiHeadAttention`) project queries with `q` and keys and
values together with `kv`, so three more targets name parts of them:
    k    the rows of `kv` that make the keys      (Hugging Face BERT's `key`)
    v    the rows of `kv` that make the values    (BERT's `value`)
    qkv  `q` and `kv` with one A between them     (GPT-2's fused `c_attn`: B has 3·d rows, one update of rank r)
Each such place is a *site*: one A and one B over one or more (Linear, rows) segments that read the same input.
(With LoRA dropout, `q` and `kv` of a `qkv` site draw their dropout masks apart; PEFT draws one for c_attn.)
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nlplab.errors import ConfigError
from nlplab.nn import init
from nlplab.nn.attention import MultiHeadAttention
from nlplab.nn.layers import Dropout, Linear
from nlplab.peft.qlora import Linear4bit

LINEARS = (Linear, nn.Linear, Linear4bit)
ATTENTION_TARGETS = ("k", "v", "qkv")


@dataclass(frozen=True)
class Segment:
    """Rows [start, stop) of the output of the Linear at `path`."""

    path: str
    start: int
    stop: int


def candidate_sites(model: nn.Module) -> dict[str, list[Segment]]:
    """Every place of `model` a LoRA update can go, by name: each Linear, and `k`, `v`, `qkv` of each attention."""
    sites = {name: [Segment(name, 0, m.weight.shape[0])] for name, m in model.named_modules() if isinstance(m, LINEARS)}
    for name, m in model.named_modules():
        if isinstance(m, MultiHeadAttention):
            d, at = m.d_model, f"{name}." if name else ""
            sites[f"{at}k"] = [Segment(f"{at}kv", 0, d)]
            sites[f"{at}v"] = [Segment(f"{at}kv", d, 2 * d)]
            sites[f"{at}qkv"] = [Segment(f"{at}q", 0, d), Segment(f"{at}kv", 0, 2 * d)]
    return sites


def matches(name: str, target: str) -> bool:
    return name == target or name.endswith("." + target)


def layer_names(names: list[str]) -> str:
    """Module names with their layer numbers folded into '*', each once, in order: 'blocks.*.attn.q, head'."""
    return ", ".join(dict.fromkeys(re.sub(r"\.\d+\.", ".*.", f".{n}.")[1:-1] for n in names))


def find_sites(model: nn.Module, targets: list[str] | tuple[str, ...], method: str = "LoRA") -> dict[str, list[Segment]]:
    """The sites of `model` the targets name; a target that names none raises ConfigError listing the choices."""
    candidates = candidate_sites(model)
    unknown = [t for t in targets if not any(matches(name, t) for name in candidates)]
    if unknown:
        raise ConfigError(f"{method} target {', '.join(map(repr, unknown))} names no Linear layer of this model; its "
                          f"Linear layers are: {layer_names(list(candidates))} (a target matches a name or its end, "
                          f"e.g. 'q' or 'attn.q'; k, v and qkv name parts of an attention's kv)")
    return {name: segs for name, segs in candidates.items() if any(matches(name, t) for t in targets)}


class LoraUpdate(nn.Module):
    """The update (α/r)·B A x of rows [start, stop) of a layer's output: x (..., in) -> (..., stop - start).

    A (r, in) starts as nn.Linear's weight does (Kaiming-uniform, a = √5), B (stop - start, r) at zero. A may be
    shared with the updates of other segments of the same site (pass it as `shared_A`)."""

    def __init__(self, in_features: int, start: int, stop: int, r: int, alpha: float,
                 shared_A: nn.Parameter | None = None, dtype: torch.dtype | None = None,
                 device: torch.device | None = None) -> None:
        super().__init__()
        self.start, self.stop, self.r, self.scaling = start, stop, r, alpha / r
        if shared_A is None:
            shared_A = nn.Parameter(torch.empty(r, in_features, dtype=dtype, device=device))
            init.kaiming_uniform_(shared_A, a=math.sqrt(5))
        self.A = shared_A
        self.B = nn.Parameter(torch.zeros(stop - start, r, dtype=dtype, device=device))

    def delta_weight(self) -> Tensor:
        """ΔW = (α/r)·B A, (stop - start, in)."""
        return self.scaling * (self.B @ self.A)

    def forward(self, x: Tensor) -> Tensor:
        return self.scaling * F.linear(F.linear(x, self.A), self.B)


class LoraLinear(nn.Module):
    """A frozen Linear (`base`, nlplab's, torch's or a `Linear4bit`) with LoRA updates on rows of its output:
    y = base(x) + Σ_u pad_u(u(dropout(x))), pad_u placing update u's rows. `lora` maps a site's short name (`q`,
    `v`, `qkv` …) to its update; dropout hits the LoRA input only."""

    def __init__(self, base: nn.Module, dropout: float = 0.0) -> None:
        super().__init__()
        self.base, self.dropout, self.lora, self.merged = base, Dropout(dropout), nn.ModuleDict(), False

    def forward(self, x: Tensor) -> Tensor:
        y = self.base(x)
        if self.merged or not self.lora:
            return y
        h = self.dropout(x)
        for u in self.lora.values():
            y = y + F.pad(u(h), (u.start, y.shape[-1] - u.stop))
        return y

    def merge(self) -> None:
        """W ← W + ΔW of every update (no-op when merged)."""
        self.fold(+1)

    def unmerge(self) -> None:
        """W ← W - ΔW of every update (no-op when not merged)."""
        self.fold(-1)

    @torch.no_grad()
    def fold(self, sign: int) -> None:
        if self.merged == (sign > 0):
            return
        if isinstance(self.base, Linear4bit):
            raise ConfigError("a LoRA over 4-bit (QLoRA) weights cannot be merged into them; use merge_and_unload(), "
                              "which dequantises the base weights first")
        for u in self.lora.values():
            self.base.weight[u.start:u.stop] += sign * u.delta_weight()
        self.merged = sign > 0

    def unload(self) -> nn.Module:
        """A plain Linear with ΔW merged into it (a 4-bit base is dequantised to a float32 Linear)."""
        base = self.base
        if isinstance(base, Linear4bit):
            plain = Linear(base.in_features, base.out_features, bias=base.bias is not None)
            with torch.no_grad():
                plain.weight.copy_(base.weight)
                if base.bias is not None:
                    plain.bias.copy_(base.bias)
            base = plain.to(device=base.packed.device)
        if not self.merged:
            with torch.no_grad():
                for u in self.lora.values():
                    base.weight[u.start:u.stop] += u.delta_weight().to(base.weight.dtype)
        for p in base.parameters():
            p.requires_grad_(True)
        return base


def inject_lora(model: nn.Module, sites: dict[str, list[Segment]], r: int, alpha: float, dropout: float) -> None:
    """Wrap the Linears the sites cover in `LoraLinear` and give each site its update (one A, B split by segment)."""
    for site, segments in sites.items():
        key = site.rsplit(".", 1)[-1]
        shared = None
        for seg in segments:
            layer = model.get_submodule(seg.path)
            if not isinstance(layer, LoraLinear):
                layer = LoraLinear(layer, dropout)
                set_submodule(model, seg.path, layer)
            quantized = isinstance(layer.base, Linear4bit)
            ref = layer.base.packed if quantized else layer.base.weight
            dtype = torch.float32 if quantized else ref.dtype
            update = LoraUpdate(layer.base.in_features, seg.start, seg.stop, r, alpha, shared, dtype, ref.device)
            layer.lora[key] = update
            shared = update.A


def set_submodule(model: nn.Module, path: str, module: nn.Module) -> None:
    """Replace the submodule at `path` (dotted) by `module`."""
    parent, _, name = path.rpartition(".")
    setattr(model.get_submodule(parent), name, module)
