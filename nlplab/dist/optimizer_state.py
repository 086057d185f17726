"""One optimizer state for any number of processes: what a strategy saves in a checkpoint and takes back.

An engine that splits the model (ZeRO's shards, tensor-parallel pieces) keeps, on each rank, an optimizer over its
pieces only: rank r's Adam moments are the moments of its piece. The consolidated state is the one a single process
training the whole model would hold, in torch's `Optimizer.state_dict()` layout:

    {"state": {i: {"step": …, "exp_avg": (shape of parameter i), …}}, "param_groups": [{…, "params": [0, 1, …]}]}

with i the position of the parameter among the model's trainable parameters (`[p for p in model.parameters() if
p.requires_grad]`). A state value shaped like its piece (momentum, variance: one number per element) is gathered
into the whole tensor; anything else (step counts) is the same on every rank and kept as it is. Loading cuts each
whole tensor back into this rank's piece, so a checkpoint saved by N processes loads in M processes or in one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

Gather = Callable[[list[int], list[Tensor]], list[Tensor]]
Cut = Callable[[int, Tensor], Tensor]


def per_element(value: Any, shape: torch.Size) -> bool:
    """True for a state tensor holding one value per element of a parameter (or piece) of `shape`."""
    return isinstance(value, Tensor) and value.shape == shape


def gathered_state(local: dict[str, Any], pieces: Sequence[Tensor], gather: Gather) -> dict[str, Any]:
    """The consolidated state from this rank's `local` optimizer state_dict over `pieces` (its parts of the
    trainable parameters, index for index): per-element values go through gather(indices, tensors) -> whole
    tensors, one collective per state key (call on every rank; the result is complete where `gather` completes)."""
    state = {i: dict(values) for i, values in local["state"].items()}
    keys = sorted({key for i, values in state.items() for key, value in values.items() if per_element(value, pieces[i].shape)})
    for key in keys:
        indices = sorted(i for i in state if key in state[i])
        for i, whole in zip(indices, gather(indices, [state[i][key] for i in indices])):
            state[i][key] = whole
    return {"state": state, "param_groups": local["param_groups"]}


def state_pieces(state: dict[str, Any], shapes: Sequence[torch.Size], cut: Cut) -> dict[str, Any]:
    """This rank's optimizer state_dict from a consolidated one: every value shaped like the whole parameter i
    (`shapes[i]`) becomes cut(i, value), this rank's piece of it."""
    local = {i: {key: cut(i, value) if per_element(value, shapes[i]) else value for key, value in values.items()}
             for i, values in state["state"].items()}
    return {"state": local, "param_groups": state["param_groups"]}
