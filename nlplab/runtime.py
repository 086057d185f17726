"""Where work runs: the device, mixed precision, compilation, eval mode. What every floor above needs to place work.

`--device auto` picks CUDA when present (bf16 autocast on it), else the CPU. `--compile` runs a model's forward
(and so its backward) through `torch.compile`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import torch

from nlplab.errors import ConfigError


def resolve_device(name: str) -> torch.device:
    """`auto` -> CUDA when available, else CPU; `cuda` without a CUDA device is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("--device cuda asked for, but no CUDA device is available; use --device cpu or auto")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ConfigError(f"--device must be auto, cpu, cuda or cuda:N, got {name!r}") from None


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """Move a batch's tensors to `device`; lengths and row indices stay on the CPU (packed RNNs need them there)."""
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) and k not in ("lengths", "rows") else v
            for k, v in batch.items()}


def autocast(device: torch.device) -> torch.autocast:
    """bf16 autocast on CUDA; a no-op context elsewhere."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def compile_model(model: torch.nn.Module, dynamic: bool | None = None, backend: str = "inductor") -> torch.nn.Module:
    """`model`, compiled in place (`nn.Module.compile`): every later call runs through `torch.compile`, while the
    module keeps its class, parameters and state_dict keys (no `_orig_mod.` wrapper reaches a checkpoint). The first
    call for each new mode (train/eval), grad setting or input shape compiles (`dynamic` as torch.compile takes it:
    None compiles static shapes first and generalises a dimension once it changes); results equal eager ones up to
    float rounding. `backend` "eager" only captures the graphs (a quick check that a model compiles)."""
    model.compile(dynamic=dynamic, backend=backend)
    return model


def compile_seconds() -> float:
    """Seconds this process has spent compiling with torch.compile so far: graph capture and the backend's code
    generation, forward and backward graphs (torch's own count)."""
    from torch._dynamo.utils import calculate_time_spent

    return calculate_time_spent().get("total_wall_time", 0.0)


@contextmanager
def evaluating(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """`model` in eval mode without gradients inside the block; its previous mode again afterwards."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield model
    finally:
        model.train(was_training)


def forward_batches(model: torch.nn.Module, batches: Iterable[dict[str, Any]], device: torch.device,
                    move: Callable[[dict[str, Any], torch.device], dict[str, Any]] = to_device,
                    forward: Callable[[dict[str, Any]], tuple[Any, Any]] | None = None) -> Iterator[tuple[dict[str, Any], Any, Any]]:
    """The one evaluation loop: each batch moved to `device` (by `move`) and through `forward` (default
    `model(batch) -> (loss, outputs)`) in eval mode, without gradients, under autocast; yields (batch, loss, outputs)."""
    forward = forward or model
    with evaluating(model):
        for batch in batches:
            batch = move(batch, device)
            with autocast(device):
                loss, outputs = forward(batch)
            yield batch, loss, outputs
