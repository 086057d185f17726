"""Wrap any nlplab model for parameter-efficient fine-tuning, as Hugging Face PEFT wraps any nn.Module:

    model = get_peft_model(model, LoraConfig(r=8, alpha=16, target_modules=["q", "v"]), base="all-MiniLM-L6-v2")
    model.summary()                    # 'trainable 73,728 of 22,786,944 (0.32%)'
    ... train as before: forward is the wrapped model's, and only the method's parameters require grad ...
    model.save_adapter("RUN/adapter")  # adapter_config.json + adapter_model.safetensors, in PEFT's layout
    PeftModel.from_pretrained(base_model, "RUN/adapter")   # the base model and the adapter, ready to use
    model.merge_and_unload()           # the plain model, LoRA folded into its weights

Each method adapts the model in place, then freezes everything but its own parameters and `modules_to_save`:
LoRA / QLoRA wrap Linears in `LoraLinear` (QLoRA first stores them in NF4), BitFit trains the biases, adapters wrap
modules in `AdapterLayer`, prompt and prefix tuning fill the virtual-token slots of the model's BertEncoder or GPT.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from nlplab.errors import ConfigError
from nlplab.io import atomic_write, atomic_write_text, read_json_object
from nlplab.nn.layers import LayerNorm
from nlplab.peft.adapters import AdapterLayer, Bottleneck
from nlplab.peft.config import (
    AdapterConfig,
    BitFitConfig,
    LoraConfig,
    PeftConfig,
    PrefixTuningConfig,
    PromptTuningConfig,
    QLoraConfig,
)
from nlplab.peft.layout import import_config, lora_export, native_export, single_backbone, virtual_export
from nlplab.peft.lora import (
    LINEARS,
    LoraLinear,
    LoraUpdate,
    find_sites,
    inject_lora,
    layer_names,
    matches,
    set_submodule,
)
from nlplab.peft.qlora import Linear4bit
from nlplab.peft.virtual import PrefixEncoder, PromptEmbedding

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
SAVED_MODULES = "modules_to_save.safetensors"


def named(model: nn.Module, targets: tuple[str, ...], what: str) -> dict[str, nn.Module]:
    """The modules of `model` whose names match `targets` (a name or its end); ConfigError for a target that
    matches none, listing the model's module names."""
    modules = dict(model.named_modules())
    unknown = [t for t in targets if not any(matches(name, t) for name in modules)]
    if unknown:
        raise ConfigError(f"{what} {', '.join(map(repr, unknown))} names no module of this model; its modules are: "
                          f"{layer_names([n for n in modules if n])}")
    return {name: m for name, m in modules.items() if name and any(matches(name, t) for t in targets)}


class PeftModel(nn.Module):
    """`model` adapted by `config`; forward and every attribute the wrapper lacks are the model's. `base` names the
    base model (a folder or "all-MiniLM-L6-v2"), written to adapter_config.json as base_model_name_or_path."""

    def __init__(self, model: nn.Module, config: PeftConfig, base: str | None = None) -> None:
        super().__init__()
        self.model, self.config, self.base = model, config, base
        self.saved = named(model, config.modules_to_save, "modules_to_save")
        self.sites = {}
        if isinstance(config, QLoraConfig):
            self.quantize(config.quantize_modules)
        if isinstance(config, LoraConfig):
            self.sites = find_sites(model, config.target_modules, "QLoRA" if isinstance(config, QLoraConfig) else "LoRA")
            inject_lora(model, self.sites, config.r, config.alpha, config.dropout)
        elif isinstance(config, AdapterConfig):
            for name, module in named(model, config.target_modules, "adapter target").items():
                if not isinstance(module, LINEARS):
                    raise ConfigError(f"an adapter follows a Linear layer; {name} is a {type(module).__name__}")
                adapter = Bottleneck(module.weight.shape[0], config.size, config.activation).to(module.weight)
                set_submodule(model, name, AdapterLayer(module, adapter))
        elif isinstance(config, (PromptTuningConfig, PrefixTuningConfig)):
            self.add_virtual_tokens(config)
        self.freeze()

    def quantize(self, names: tuple[str, ...] | None) -> None:
        """Store the Linears `names` matches (None: all outside modules_to_save) in NF4."""
        if names is None:
            chosen = {n: m for n, m in self.model.named_modules() if isinstance(m, LINEARS)
                      and not any(n == s or n.startswith(s + ".") for s in self.saved)}
        else:
            chosen = named(self.model, names, "QLoRA quantize module")
            for name, module in chosen.items():
                if not isinstance(module, LINEARS):
                    raise ConfigError(f"QLoRA stores Linear layers in 4 bits; {name} is a {type(module).__name__}; "
                                      f"name Linear layers only")
        for name, module in chosen.items():
            set_submodule(self.model, name, Linear4bit(module))

    def add_virtual_tokens(self, config: PromptTuningConfig | PrefixTuningConfig) -> None:
        method = "prefix tuning" if isinstance(config, PrefixTuningConfig) else "prompt tuning"
        backbone = single_backbone(self.model, method)
        layers, heads, width = backbone.shape
        like = next(backbone.module.parameters())
        n = config.num_virtual_tokens
        if isinstance(config, PrefixTuningConfig):
            backbone.module.prefix = PrefixEncoder(n, layers, width, heads, config.projection).to(like)
        else:
            backbone.module.prompt = PromptEmbedding(n, width).to(like)

    def freeze(self) -> None:
        """Only the method's parameters and modules_to_save keep requires_grad."""
        for p in self.model.parameters():
            p.requires_grad_(False)
        trained: list[nn.Module] = list(self.saved.values())
        for module in self.model.modules():
            if isinstance(module, (LoraUpdate, Bottleneck, PromptEmbedding, PrefixEncoder)):
                trained.append(module)
            elif isinstance(module, LayerNorm) and isinstance(self.config, AdapterConfig) and self.config.train_norms:
                trained.append(module)
        for module in trained:
            for p in module.parameters():
                p.requires_grad_(True)
        if isinstance(self.config, BitFitConfig):
            for name, p in self.model.named_parameters():
                if name.rsplit(".", 1)[-1] == "bias":
                    p.requires_grad_(True)

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == "model":
                raise
            return getattr(self.model, name)

    def forward(self, *args, **kwargs):
        return self.model(*args, **kwargs)

    def trainable_parameters(self) -> tuple[int, int]:
        """(trainable, total) numbers of parameters, as peft's get_nb_trainable_parameters (`parameter_counts`)."""
        return parameter_counts(self.model)

    def summary(self) -> str:
        """One line: 'trainable 73,728 of 22,786,944 (0.32%)'."""
        return parameter_summary(self.model)

    def lora_layers(self, action: str) -> list[LoraLinear]:
        if not isinstance(self.config, LoraConfig):
            raise ConfigError(f"only LoRA folds into the weights; {self.config.method} cannot be {action}")
        return [m for m in self.model.modules() if isinstance(m, LoraLinear)]

    def merge(self) -> None:
        """Fold every LoRA update into its weight: W ← W + (α/r)·B A."""
        for layer in self.lora_layers("merged"):
            layer.merge()

    def unmerge(self) -> None:
        """Take the LoRA updates out of the weights again."""
        for layer in self.lora_layers("unmerged"):
            layer.unmerge()

    def merge_and_unload(self) -> nn.Module:
        """The model without the wrapper: LoRA merged into plain Linears (4-bit ones dequantised), BitFit's biases
        in place; every parameter requires grad again. Adapters, prompts and prefixes cannot be folded in."""
        if isinstance(self.config, LoraConfig):
            for name, layer in list(self.model.named_modules()):
                if isinstance(layer, LoraLinear):
                    set_submodule(self.model, name, layer.unload())
        elif not isinstance(self.config, BitFitConfig):
            raise ConfigError(f"{self.config.method} adds modules that cannot be folded into the weights; "
                              f"keep the base model and the adapter (only LoRA, QLoRA and BitFit merge)")
        for p in self.model.parameters():
            p.requires_grad_(True)
        return self.model

    def trainable_state(self) -> dict[str, Tensor]:
        """Every tensor training changes (the method's and modules_to_save's) by its name in the model, a shared
        tensor once: with the base, all `load_state` needs to restore the adapted model."""
        return {name: p.detach() for name, p in self.model.named_parameters() if p.requires_grad}

    def adapter_state(self) -> dict[str, Tensor]:
        """The method's trained tensors by their names in the model (shared tensors under each name)."""
        saved = tuple(self.saved)
        return {name: p.detach() for name, p in self.model.named_parameters(remove_duplicate=False)
                if p.requires_grad and not any(name.startswith(s + ".") for s in saved)}

    def export(self) -> tuple[dict, dict[str, Tensor]]:
        """(adapter_config, tensors) in PEFT's layout (see `nlplab.peft.layout`)."""
        cfg = self.config
        if isinstance(cfg, LoraConfig):
            config, tensors = lora_export(self.sites, self.adapter_state(), self.model, cfg)
        elif isinstance(cfg, (PromptTuningConfig, PrefixTuningConfig)):
            backbone = single_backbone(self.model, cfg.method)
            prefix = isinstance(cfg, PrefixTuningConfig)
            table = backbone.module.prefix.table() if prefix else backbone.module.prompt.weight
            config, tensors = virtual_export(cfg, table.detach(), backbone)
        else:
            config, tensors = native_export(cfg, self.adapter_state())
        return {**config, "base_model_name_or_path": self.base, "inference_mode": True}, tensors

    def save_adapter(self, folder: str | Path) -> Path:
        """Write `folder`/adapter_config.json and adapter_model.safetensors (PEFT's layout), and the modules_to_save
        under their nlplab names in modules_to_save.safetensors; each file atomically."""
        folder = Path(folder)
        config, tensors = self.export()
        write_tensors(folder / ADAPTER_WEIGHTS, tensors)
        if self.saved:
            write_tensors(folder / SAVED_MODULES, {f"{name}.{k}": v for name, m in self.saved.items()
                                                   for k, v in m.state_dict().items()})
        atomic_write_text(folder / ADAPTER_CONFIG, json.dumps(config, indent=2, sort_keys=True) + "\n")
        return folder

    @classmethod
    def from_pretrained(cls, model: nn.Module, folder: str | Path, quantize: bool = False,
                        modules_to_save: tuple[str, ...] = ()) -> PeftModel:
        """`model` (the base) with the adapter saved in `folder`, by nlplab or by peft; `quantize` stores the base
        in NF4 under a LoRA adapter (QLoRA); the modules_to_save saved beside the adapter are loaded too."""
        folder = Path(folder)
        fix = f"pass a folder holding {ADAPTER_CONFIG} and {ADAPTER_WEIGHTS}"
        config = read_json_object(folder / ADAPTER_CONFIG, ConfigError, fix)
        saved = read_tensors(folder / SAVED_MODULES, fix) if (folder / SAVED_MODULES).exists() else {}
        cfg, state = import_config(config, read_tensors(folder / ADAPTER_WEIGHTS, fix), model, str(folder), quantize)
        cfg.modules_to_save = tuple(dict.fromkeys([*modules_to_save, *saved_module_names(saved, model)]))
        peft_model = cls(model, cfg, base=config.get("base_model_name_or_path"))
        peft_model.load_state(state | saved, str(folder))
        return peft_model

    def load_state(self, state: dict[str, Tensor], source: str) -> None:
        """Copy `state` (names in the adapted model) in; names the model lacks raise ConfigError."""
        own = self.model.state_dict()
        wrong = [n for n, t in state.items() if n not in own or own[n].shape != t.shape]
        if wrong:
            raise ConfigError(f"{source}: tensors that do not fit this model: {', '.join(sorted(wrong)[:5])}; "
                              f"is the adapter for another base model?")
        with torch.no_grad():
            for name, tensor in state.items():
                own[name].copy_(tensor)


def parameter_counts(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) numbers of parameters of any model; a 4-bit weight counts as its number of entries."""
    params = list(model.parameters())
    packed = sum(m.out_features * m.in_features for m in model.modules() if isinstance(m, Linear4bit))
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params) + packed


def parameter_summary(model: nn.Module) -> str:
    """One line: 'trainable 73,728 of 22,786,944 (0.32%)'."""
    trainable, total = parameter_counts(model)
    return f"trainable {trainable:,} of {total:,} ({100 * trainable / max(total, 1):.2f}%)"


def saved_module_names(state: dict[str, Tensor], model: nn.Module) -> list[str]:
    """The modules of `model` that tensors of a modules_to_save file belong to."""
    modules = dict(model.named_modules())
    return list(dict.fromkeys(n.rsplit(".", 1)[0] for n in state if n.rsplit(".", 1)[0] in modules))


def write_tensors(path: Path, tensors: dict[str, Tensor]) -> None:
    atomic_write(path, lambda tmp: save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, tmp))


def read_tensors(path: Path, fix: str) -> dict[str, Tensor]:
    if not path.exists():
        raise ConfigError(f"{path}: not found; {fix}")
    try:
        return load_file(path)
    except (SafetensorError, OSError) as e:
        raise ConfigError(f"{path}: not a valid safetensors file ({e}); {fix}") from None


def get_peft_model(model: nn.Module, config: PeftConfig, base: str | None = None) -> PeftModel:
    """`model` adapted in place by `config` and wrapped (see `PeftModel`)."""
    return PeftModel(model, config, base)
