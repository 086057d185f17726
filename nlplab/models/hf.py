"""Reading and writing Hugging Face checkpoints without transformers: a folder with `config.json` and
`model.safetensors`.

Each model maps the checkpoint's tensor names onto its own (see `BertEncoder.from_pretrained`,
`GPT.from_pretrained`) and back (`save_pretrained`); this module reads the folder, finds tensors under an optional
prefix (`bert.`, `transformer.`, written by the task heads' classes), and loads the mapped state strictly, so that a
missing or misshapen tensor fails loudly instead of leaving a layer at its random init; `write_checkpoint` writes
such a folder.
"""

from __future__ import annotations

import json
from pathlib import Path

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from nlplab.errors import ConfigError
from nlplab.io import atomic_write, atomic_write_text, read_json_object

ACTIVATIONS = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "relu": "relu"}
"""Hugging Face `hidden_act` / `activation_function` -> nlplab activation name."""
HF_ACTIVATIONS = {"gelu": "gelu", "gelu_tanh": "gelu_new", "relu": "relu"}
"""nlplab activation name -> the Hugging Face name written by `save_pretrained`."""


class HFCheckpoint:
    """The config (dict) and tensors of a Hugging Face model folder of one of `model_types`."""

    def __init__(self, folder: str | Path, model_types: tuple[str, ...], prefix: str = "") -> None:
        self.folder, self.prefix = Path(folder), prefix
        fix = f"pass a Hugging Face {'/'.join(model_types)} model folder (config.json + model.safetensors)"
        self.config = read_json_object(self.folder / "config.json", ConfigError, fix)
        if self.config.get("model_type") not in model_types:
            raise ConfigError(f"{self.folder}: model_type {self.config.get('model_type')!r} is not one of {model_types}; {fix}")
        weights = self.folder / "model.safetensors"
        if not weights.exists():
            raise ConfigError(f"{weights}: not found (pickled pytorch_model.bin files are not loaded); {fix}")
        try:
            self.tensors = load_file(weights)
        except (SafetensorError, OSError) as e:
            raise ConfigError(f"{weights}: not a valid safetensors file ({e}); download it again") from None

    def __getitem__(self, name: str) -> Tensor:
        """The tensor called `name`, or `prefix + name`."""
        for key in (name, self.prefix + name):
            if key in self.tensors:
                return self.tensors[key]
        raise ConfigError(f"{self.folder}: the checkpoint has no tensor {name!r}; is it a {self.config['model_type']} model?")

    def activation(self, key: str) -> str:
        """The nlplab name of the activation in config[key]."""
        name = self.config.get(key)
        if name not in ACTIVATIONS:
            raise ConfigError(f"{self.folder}: activation {name!r} is not supported; supported: {', '.join(ACTIVATIONS)}")
        return ACTIVATIONS[name]

    def load_into(self, model: nn.Module, state: dict[str, Tensor]) -> nn.Module:
        """Copy `state` (nlplab names) into `model`; every parameter must be given, with its shape."""
        own = model.state_dict()
        for name, tensor in state.items():
            if name in own and own[name].shape != tensor.shape:
                raise ConfigError(f"{self.folder}: tensor for {name} has shape {tuple(tensor.shape)}, the model "
                                  f"expects {tuple(own[name].shape)}; config.json does not match model.safetensors")
        model.load_state_dict(state, strict=True)
        return model


def hf_activation(name: str) -> str:
    """The Hugging Face name of nlplab activation `name`, or ConfigError when transformers has no equal one."""
    if name not in HF_ACTIVATIONS:
        raise ConfigError(f"activation {name!r} has no Hugging Face equivalent; supported: {', '.join(HF_ACTIVATIONS)}")
    return HF_ACTIVATIONS[name]


def write_checkpoint(folder: str | Path, config: dict, tensors: dict[str, Tensor]) -> Path:
    """Write `folder`/config.json and model.safetensors (contiguous CPU copies of `tensors`), each atomically."""
    folder = Path(folder)
    state = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in tensors.items()}
    atomic_write(folder / "model.safetensors", lambda tmp: save_file(state, tmp, metadata={"format": "pt"}))
    atomic_write_text(folder / "config.json", json.dumps(config, indent=2, sort_keys=True) + "\n")
    return folder
