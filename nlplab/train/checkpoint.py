"""Save and load nested training state (model, optimizer, early stopping, history) as ONE safetensors file.

Tensors go into the safetensors body under their path in the nested structure; everything else (numbers,
strings, the structure itself) goes into the file's metadata as JSON. No pickle anywhere, and the file
is written atomically, so a run killed mid-save keeps its previous checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from nlplab.errors import RunError
from nlplab.io import atomic_write, read_json_object

_TENSOR, _DICT, _TUPLE = "__tensor__", "__dict__", "__tuple__"
WEIGHTS = "model.safetensors"
"""A run's best weights (`save_weights`)."""


def run_json(run_dir: str | Path, name: str) -> dict[str, Any]:
    """A JSON object a trained run keeps beside its weights (model.json, labels.json, ...), or RunError."""
    return read_json_object(Path(run_dir) / name, RunError, "the run is incomplete; train it again or finish it with --resume")


def flatten(obj: Any, tensors: dict[str, torch.Tensor], path: str = "s") -> Any:
    """Replace each tensor in `obj` by a reference {"__tensor__": key}, storing it in `tensors[key]`.
    Dicts become key/value pair lists so that non-string keys (optimizer state uses ints) survive JSON."""
    if isinstance(obj, torch.Tensor):
        tensors[path] = obj.detach().cpu().contiguous()
        return {_TENSOR: path}
    if isinstance(obj, dict):
        return {_DICT: [[k, flatten(v, tensors, f"{path}.{k}")] for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {_TUPLE: [flatten(v, tensors, f"{path}.{i}") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [flatten(v, tensors, f"{path}.{i}") for i, v in enumerate(obj)]
    return obj


def unflatten(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of `flatten`."""
    if isinstance(obj, dict):
        if _TENSOR in obj:
            return tensors[obj[_TENSOR]]
        if _DICT in obj:
            return {k: unflatten(v, tensors) for k, v in obj[_DICT]}
        if _TUPLE in obj:
            return tuple(unflatten(v, tensors) for v in obj[_TUPLE])
    if isinstance(obj, list):
        return [unflatten(v, tensors) for v in obj]
    return obj


def save_state(path: str | Path, state: dict[str, Any]) -> Path:
    """Write nested `state` to `path` (safetensors, atomically)."""
    tensors: dict[str, torch.Tensor] = {}
    structure = flatten(state, tensors)
    return atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata={"nlplab_state": json.dumps(structure)}))


def load_state(path: str | Path) -> dict[str, Any]:
    """Read a state written by `save_state`."""
    path = Path(path)
    if not path.is_file():
        raise RunError(f"{path}: no checkpoint to resume from; start the run without --resume")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        tensors = load_file(str(path))
        return unflatten(json.loads(metadata["nlplab_state"]), tensors)
    except (SafetensorError, KeyError, json.JSONDecodeError, OSError) as e:
        raise RunError(f"{path}: unreadable checkpoint ({e}); delete it and start the run again") from None


def save_weights(path: str | Path, module: torch.nn.Module) -> Path:
    """The module's state_dict as a plain safetensors file (readable by any safetensors loader)."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    return atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata={"format": "pt"}))


def load_weights(path: str | Path, module: torch.nn.Module) -> torch.nn.Module:
    """Load `save_weights` output into `module` (strict)."""
    path = Path(path)
    try:
        tensors = load_file(str(path))
    except FileNotFoundError:
        raise RunError(f"{path}: model weights missing; the run did not finish, finish it with --resume") from None
    except (SafetensorError, OSError) as e:
        raise RunError(f"{path}: the file is corrupt or incomplete (its header cannot be read: {e}); rewrite it from the "
                       f"run's checkpoint with `nlplab train --out {path.parent} --resume`, or train the run again") from None
    try:
        module.load_state_dict(tensors)
    except RuntimeError as e:
        raise RunError(f"{path}: weights do not fit this model ({str(e).splitlines()[0]})") from None
    return module
