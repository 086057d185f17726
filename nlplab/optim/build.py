"""Build an optimiser by name, hand-written (``impl="manual"``) or torch's own (``impl="fused"``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from nlplab.errors import ConfigError
from nlplab.optim.adam import Adam, AdamW
from nlplab.optim.sgd import SGD

OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam", "adamw")
IMPLS = ("manual", "fused")


def _all_on_cuda(params: list[Any]) -> bool:
    """True when every tensor in ``params`` (tensors or param-group dicts) lives on a CUDA device."""
    tensors = [t for item in params for t in (item["params"] if isinstance(item, dict) else [item])]
    return bool(tensors) and all(t.is_cuda for t in tensors)


def build_optimizer(
    name: str,
    params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
    lr: float,
    weight_decay: float = 0.0,
    momentum: float = 0.9,
    impl: str = "fused",
) -> torch.optim.Optimizer:
    """Return the optimiser ``name`` over ``params``.

    ``name``: "sgd" (no momentum), "momentum" (SGD with ``momentum``), "nesterov" (SGD with Nesterov
    ``momentum``), "adam" (L2 ``weight_decay``) or "adamw" (decoupled ``weight_decay``).
    ``impl="manual"`` gives the hand-written classes of :mod:`nlplab.optim`; ``impl="fused"`` gives the
    ``torch.optim`` class, with ``fused=True`` when every parameter is on CUDA (torch's ``foreach`` default
    otherwise). Both follow the same update rule and are tested equal.
    """
    if name not in OPTIMIZERS:
        raise ConfigError(f"unknown optimizer {name!r}; choose one of: {', '.join(OPTIMIZERS)}")
    if impl not in IMPLS:
        raise ConfigError(f"unknown optimizer impl {impl!r}; choose one of: {', '.join(IMPLS)}")
    params = list(params)
    if impl == "manual":
        sgd, adam, adamw, extra = SGD, Adam, AdamW, {}
    else:
        sgd, adam, adamw = torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW
        extra = {"fused": True} if _all_on_cuda(params) else {}
    if name in ("sgd", "momentum", "nesterov"):
        mu = 0.0 if name == "sgd" else momentum
        return sgd(params, lr=lr, momentum=mu, nesterov=name == "nesterov", weight_decay=weight_decay, **extra)
    return (adam if name == "adam" else adamw)(params, lr=lr, weight_decay=weight_decay, **extra)
