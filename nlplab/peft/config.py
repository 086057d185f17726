"""What to adapt and how: one small config per parameter-efficient method, checked when built.

Every config names `modules_to_save`: modules trained in full beside the method (the task head, e.g. "head"),
found by name as LoRA targets are. `build_config(method, lora_r=…, …)` makes one from a recipe's options.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar

from nlplab.errors import ConfigError
from nlplab.nn.activations import ACTIVATIONS
from nlplab.nn.layers import check_dropout


@dataclass
class PeftConfig:
    method: ClassVar[str] = ""
    modules_to_save: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.modules_to_save = tuple(self.modules_to_save)
        self.check()

    def check(self) -> None:
        """Raise ConfigError on a value that cannot work."""


def at_least_one(name: str, value: int) -> None:
    if value < 1:
        raise ConfigError(f"{name} must be at least 1, got {value}")


@dataclass
class LoraConfig(PeftConfig):
    """LoRA of rank r, scale alpha / r, dropout on its input, on the Linears `target_modules` names
    (see `nlplab.peft.lora`: e.g. "q", "v", "attn.out", "fc1"; "k", "v", "qkv" name parts of attention)."""

    method: ClassVar[str] = "lora"
    r: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    target_modules: tuple[str, ...] = ("q", "v")

    def check(self) -> None:
        at_least_one("LoRA rank r", self.r)
        if self.alpha <= 0:
            raise ConfigError(f"LoRA alpha must be positive, got {self.alpha}")
        check_dropout(self.dropout)
        self.target_modules = tuple(self.target_modules)
        if not self.target_modules:
            raise ConfigError("LoRA needs at least one target module, e.g. q,v")


@dataclass
class QLoraConfig(LoraConfig):
    """LoRA over a base whose Linears are stored in NF4: `quantize_modules` names them (None: every Linear
    outside `modules_to_save`)."""

    method: ClassVar[str] = "qlora"
    quantize_modules: tuple[str, ...] | None = None


@dataclass
class BitFitConfig(PeftConfig):
    """BitFit (Ben Zaken et al., 2022): every bias trains (attention, feed-forward, LayerNorm β), all else is frozen."""

    method: ClassVar[str] = "bitfit"


@dataclass
class AdapterConfig(PeftConfig):
    """Houlsby adapters of bottleneck `size` after each module `target_modules` names (by default the attention's
    output projection and the feed-forward's second layer: after attention and after the FFN of every block);
    `train_norms` also trains the LayerNorms, as Houlsby et al. do."""

    method: ClassVar[str] = "adapter"
    size: int = 64
    target_modules: tuple[str, ...] = ("attn.out", "ffn.fc2")
    activation: str = "gelu"
    train_norms: bool = True

    def check(self) -> None:
        at_least_one("adapter size", self.size)
        if self.activation not in ACTIVATIONS:
            raise ConfigError(f"unknown adapter activation {self.activation!r}; choose one of {', '.join(ACTIVATIONS)}")
        self.target_modules = tuple(self.target_modules)


@dataclass
class PromptTuningConfig(PeftConfig):
    """Prompt tuning: `num_virtual_tokens` trainable embeddings in front of the input."""

    method: ClassVar[str] = "prompt"
    num_virtual_tokens: int = 20

    def check(self) -> None:
        at_least_one("num_virtual_tokens", self.num_virtual_tokens)


@dataclass
class PrefixTuningConfig(PeftConfig):
    """Prefix tuning: `num_virtual_tokens` trainable keys and values in every layer; projection = h > 0 trains
    them through an MLP of hidden size h (the paper's reparameterisation), 0 trains them directly."""

    method: ClassVar[str] = "prefix"
    num_virtual_tokens: int = 20
    projection: int = 0

    def check(self) -> None:
        at_least_one("num_virtual_tokens", self.num_virtual_tokens)
        if self.projection < 0:
            raise ConfigError(f"prefix projection must be 0 (none) or a hidden size, got {self.projection}")


CONFIGS: dict[str, type[PeftConfig]] = {c.method: c for c in (LoraConfig, QLoraConfig, BitFitConfig, AdapterConfig,
                                                               PromptTuningConfig, PrefixTuningConfig)}
METHODS = tuple(CONFIGS)


RECIPE_OPTIONS = {"lora_r": "r", "lora_alpha": "alpha", "lora_dropout": "dropout", "lora_targets": "target_modules",
                  "adapter_size": "size", "num_virtual_tokens": "num_virtual_tokens", "prefix_projection": "projection",
                  "modules_to_save": "modules_to_save"}
"""Recipe option (as the CLI flag --lora-r …) -> the config field it sets."""


def build_config(method: str, **options: Any) -> PeftConfig:
    """The config of `method` (one of METHODS) from recipe options named as RECIPE_OPTIONS' keys; lora_targets may
    be "q,v". An option the method does not use (a lora_ option of a method other than LoRA's), or None, leaves the
    method's default; an unknown name is an error."""
    if method not in CONFIGS:
        raise ConfigError(f"unknown PEFT method {method!r}; choose one of {', '.join(METHODS)}")
    unknown = sorted(set(options) - set(RECIPE_OPTIONS))
    if unknown:
        raise ConfigError(f"unknown PEFT option {', '.join(unknown)}; the options are {', '.join(RECIPE_OPTIONS)}")
    cls = CONFIGS[method]
    used = {f.name for f in fields(cls)}
    values = {RECIPE_OPTIONS[k]: v for k, v in options.items() if v is not None and RECIPE_OPTIONS[k] in used
              and (issubclass(cls, LoraConfig) or not k.startswith("lora_"))}
    for name in ("target_modules", "modules_to_save"):
        if isinstance(values.get(name), str):
            values[name] = tuple(t.strip() for t in values[name].split(",") if t.strip())
    return cls(**values)
