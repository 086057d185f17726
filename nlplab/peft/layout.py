"""Hugging Face PEFT's adapter layout: `adapter_config.json` + `adapter_model.safetensors` under the names of the
matching transformers model, so that an adapter trained in nlplab loads with peft's `PeftModel.from_pretrained` on
that model, and one saved by peft loads in nlplab.

    nlplab                transformers model (PEFT saves its modules as base_model.model.<name>)
    BertEncoder      ↔    BertModel         blocks.{i}.attn.q ↔ encoder.layer.{i}.attention.self.query, attn.k ↔ …key,
                                            attn.v ↔ …value, attn.out ↔ …attention.output.dense, ffn.fc1 ↔
                                            …intermediate.dense, ffn.fc2 ↔ …output.dense, pooler ↔ pooler.dense
    GPT              ↔    GPT2LMHeadModel   blocks.{i}.attn.qkv ↔ transformer.h.{i}.attn.c_attn, attn.out ↔ …attn.c_proj,
                                            ffn.fc1 ↔ …mlp.c_fc, ffn.fc2 ↔ …mlp.c_proj

Tensors: LoRA `base_model.model.<module>.lora_A.weight` (r, in) and `.lora_B.weight` (out, r) — GPT-2's Conv1D too
(PEFT transposes ΔW for it, not A and B); prompt and prefix tuning one `prompt_embeddings`, (n, d) or (n, L·2·d).
`target_modules` lists the adapted modules by full name, so that PEFT matches exactly those (a suffix such as
"output.dense" would also match BERT's attention.output.dense). A LoRA site without a transformers counterpart (a
task head; `q` alone in GPT-2, whose q, k and v are one Conv1D: target `qkv` instead) keeps its nlplab name, which
only nlplab reads; so do BitFit and Houlsby adapters, which PEFT does not have (their peft_type starts NLPLAB_).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torch import Tensor, nn

from nlplab.errors import ConfigError
from nlplab.models.encoder import HF_LAYER_NAMES as BERT_LAYER_NAMES
from nlplab.models.encoder import BertEncoder
from nlplab.models.gpt import GPT
from nlplab.models.gpt import HF_LAYER_NAMES as GPT_LAYER_NAMES
from nlplab.peft.config import (
    CONFIGS,
    LoraConfig,
    PeftConfig,
    PrefixTuningConfig,
    PromptTuningConfig,
    QLoraConfig,
)
from nlplab.peft.lora import Segment, candidate_sites

PREFIX = "base_model.model."
NATIVE = {"bitfit": "NLPLAB_BITFIT", "adapter": "NLPLAB_ADAPTER"}


@dataclass
class Backbone:
    """The BertEncoder or GPT at `path` of a model (path "" for the model itself)."""

    path: str
    module: BertEncoder | GPT

    @property
    def is_gpt(self) -> bool:
        return isinstance(self.module, GPT)

    @property
    def hf_class(self) -> str:
        return "GPT2LMHeadModel" if self.is_gpt else "BertModel"

    @property
    def task_type(self) -> str:
        return "CAUSAL_LM" if self.is_gpt else "FEATURE_EXTRACTION"

    @property
    def shape(self) -> tuple[int, int, int]:
        """(layers, heads, width)."""
        if self.is_gpt:
            c = self.module.cfg
            return c.n_layer, c.n_head, c.n_embd
        c = self.module.cfg
        return c.num_layers, c.num_heads, c.hidden_size

    def hf_names(self) -> dict[str, str]:
        """nlplab LoRA site (full name in the model) -> the transformers module it stands for."""
        at = f"{self.path}." if self.path else ""
        names = {}
        for i in range(self.shape[0]):
            if self.is_gpt:
                table = {"attn.qkv": "attn.c_attn", **GPT_LAYER_NAMES}
                names |= {f"{at}blocks.{i}.{ours}": f"transformer.h.{i}.{theirs}" for ours, theirs in table.items()}
            else:
                table = {"attn.k": "attention.self.key", "attn.v": "attention.self.value",
                         **{ours: theirs for ours, theirs in BERT_LAYER_NAMES.items() if "norm" not in ours}}
                names |= {f"{at}blocks.{i}.{ours}": f"encoder.layer.{i}.{theirs}" for ours, theirs in table.items()}
        if not self.is_gpt:
            names[f"{at}pooler"] = "pooler.dense"
        return names

    def hf_path(self, name: str) -> str:
        """A module name from a PEFT file, as the class `hf_class` names it (BertForX adds 'bert.', GPT2Model
        lacks 'transformer.')."""
        if self.is_gpt:
            return name if name.startswith("transformer.") else "transformer." + name
        return name.removeprefix("bert.")


def find_backbones(model: nn.Module) -> list[Backbone]:
    """Every BertEncoder and GPT inside `model` (itself included)."""
    return [Backbone(name, m) for name, m in model.named_modules() if isinstance(m, (BertEncoder, GPT))]


def single_backbone(model: nn.Module, what: str) -> Backbone:
    """The one BertEncoder or GPT of `model`; ConfigError when there is none or several."""
    found = find_backbones(model)
    if len(found) != 1:
        names = ", ".join(b.path or "(the model)" for b in found) or "none"
        raise ConfigError(f"{what} needs a model with one transformer (a BertEncoder: classify, match or tag with "
                          f"--model transformer; or a GPT language model); this model has {len(found)}: {names}")
    return found[0]


def head_modules(model: nn.Module) -> tuple[str, ...]:
    """The modules beside the one transformer of `model` that hold parameters: its task head (a classifier's `head`,
    a tagger's `head` and `crf`, a bi-encoder's projection `encoder.head`), which trains in full beside an adapter
    (modules_to_save). A GPT language model has none: its output layer is its token embedding."""
    heads, at, module = [], "", model
    path = single_backbone(model, "an adapter").path
    for part in path.split(".") if path else []:
        heads += [at + name for name, child in module.named_children()
                  if name != part and next(child.parameters(), None) is not None]
        module, at = getattr(module, part), at + part + "."
    return tuple(heads)


def lone_backbone(model: nn.Module) -> Backbone | None:
    """The BertEncoder or GPT of `model` if it has exactly one (its LoRA sites then take transformers' names)."""
    found = find_backbones(model)
    return found[0] if len(found) == 1 else None


def lora_export(sites: dict[str, list[Segment]], state: dict[str, Tensor], model: nn.Module,
                cfg: LoraConfig) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """(adapter_config, tensors) of a LoRA whose sites and nlplab state are given."""
    backbone = lone_backbone(model)
    hf = backbone.hf_names() if backbone else {}
    tensors, targets = {}, []
    for site, segments in sites.items():
        key = site.rsplit(".", 1)[-1]
        name = hf.get(site, site)
        targets.append(name)
        tensors[f"{PREFIX}{name}.lora_A.weight"] = state[f"{segments[0].path}.lora.{key}.A"]
        tensors[f"{PREFIX}{name}.lora_B.weight"] = torch.cat([state[f"{s.path}.lora.{key}.B"] for s in segments])
    config = {"peft_type": "LORA", "r": cfg.r, "lora_alpha": cfg.alpha, "lora_dropout": cfg.dropout,
              "target_modules": sorted(targets), "bias": "none", "init_lora_weights": True, "use_rslora": False,
              "use_dora": False, "rank_pattern": {}, "alpha_pattern": {}, "modules_to_save": None}
    if backbone:
        config |= {"task_type": backbone.task_type, "fan_in_fan_out": backbone.is_gpt}
    return config, tensors


def virtual_export(cfg: PromptTuningConfig | PrefixTuningConfig, table: Tensor,
                   backbone: Backbone) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """(adapter_config, tensors) of prompt or prefix tuning whose trained table is given."""
    layers, heads, width = backbone.shape
    config = {"task_type": backbone.task_type, "num_virtual_tokens": cfg.num_virtual_tokens, "token_dim": width,
              "num_transformer_submodules": 1, "num_attention_heads": heads, "num_layers": layers,
              "modules_to_save": None}
    if isinstance(cfg, PrefixTuningConfig):
        config |= {"peft_type": "PREFIX_TUNING", "prefix_projection": cfg.projection > 0,
                   "encoder_hidden_size": cfg.projection or width}
    else:
        config |= {"peft_type": "PROMPT_TUNING", "prompt_tuning_init": "RANDOM"}
    return config, {"prompt_embeddings": table}


def native_export(cfg: PeftConfig, state: dict[str, Tensor]) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """(adapter_config, tensors) of BitFit or adapters: the trained tensors under their nlplab names."""
    options = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(cfg).items() if k != "modules_to_save"}
    return {"peft_type": NATIVE[cfg.method], **options}, {PREFIX + k: v for k, v in state.items()}


UNSUPPORTED_LORA = {"use_dora": False, "use_rslora": False, "rank_pattern": {}, "alpha_pattern": {}, "bias": "none"}


def import_config(config: dict[str, Any], tensors: dict[str, Tensor], model: nn.Module, source: str,
                  quantize: bool = False) -> tuple[PeftConfig, dict[str, Tensor]]:
    """The nlplab config and state (names of `model` once adapted) of an adapter read from `source`."""
    kind = config.get("peft_type")
    if kind == "LORA":
        return import_lora(config, tensors, model, source, quantize)
    if kind in ("PROMPT_TUNING", "PREFIX_TUNING"):
        return import_virtual(config, tensors, model, source)
    for method, name in NATIVE.items():
        if kind == name:
            cls = CONFIGS[method]
            options = {f.name: config[f.name] for f in fields(cls) if f.name in config}
            options = {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}
            return cls(**options), {k.removeprefix(PREFIX): v for k, v in tensors.items()}
    raise ConfigError(f"{source}: peft_type {kind!r} is not supported; nlplab reads LORA, PROMPT_TUNING, "
                      f"PREFIX_TUNING and its own {', '.join(NATIVE.values())}")


def import_lora(config: dict[str, Any], tensors: dict[str, Tensor], model: nn.Module, source: str,
                quantize: bool) -> tuple[LoraConfig, dict[str, Tensor]]:
    for option, plain in UNSUPPORTED_LORA.items():
        if config.get(option, plain) != plain:
            raise ConfigError(f"{source}: LoRA with {option}={config[option]!r} is not supported (only {option}={plain!r})")
    backbone = lone_backbone(model)
    inverse = {theirs: ours for ours, theirs in backbone.hf_names().items()} if backbone else {}
    candidates = candidate_sites(model)
    sites: dict[str, tuple[Tensor, Tensor]] = {}
    leftover = set(tensors)
    for name, a in tensors.items():
        if not (name.startswith(PREFIX) and name.endswith(".lora_A.weight")):
            continue
        module = name[len(PREFIX):-len(".lora_A.weight")]
        site = inverse.get(backbone.hf_path(module), module) if backbone else module
        b = f"{PREFIX}{module}.lora_B.weight"
        if site not in candidates or b not in tensors:
            raise ConfigError(f"{source}: {name} adapts {module!r}, which this model does not have (or its lora_B is "
                              f"missing); is the adapter for another base model?")
        sites[site] = (a, tensors[b])
        leftover -= {name, b}
    if leftover:
        raise ConfigError(f"{source}: tensors nlplab cannot place: {', '.join(sorted(leftover)[:5])}")
    if not sites:
        raise ConfigError(f"{source}: no LoRA weights (…lora_A.weight) in the adapter")
    ranks = {a.shape[0] for a, _ in sites.values()}
    if ranks != {config["r"]}:
        raise ConfigError(f"{source}: LoRA ranks {sorted(ranks)} do not match r={config['r']} of adapter_config.json")
    cls = QLoraConfig if quantize else LoraConfig
    cfg = cls(r=config["r"], alpha=config["lora_alpha"], dropout=config.get("lora_dropout", 0.0),
              target_modules=tuple(sites))
    state = {}
    for site, (a, b) in sites.items():
        key, start = site.rsplit(".", 1)[-1], 0
        for seg in candidates[site]:
            state[f"{seg.path}.lora.{key}.A"] = a
            state[f"{seg.path}.lora.{key}.B"] = b[start:start + seg.stop - seg.start]
            start += seg.stop - seg.start
    return cfg, state


def import_virtual(config: dict[str, Any], tensors: dict[str, Tensor], model: nn.Module,
                   source: str) -> tuple[PeftConfig, dict[str, Tensor]]:
    prefix = config["peft_type"] == "PREFIX_TUNING"
    backbone = single_backbone(model, "prefix tuning" if prefix else "prompt tuning")
    layers, heads, width = backbone.shape
    n = config["num_virtual_tokens"]
    expected = (n, layers * 2 * width if prefix else width)
    table = tensors.get("prompt_embeddings")
    if table is None or tuple(table.shape) != expected or config.get("num_transformer_submodules", 1) != 1:
        raise ConfigError(f"{source}: expected prompt_embeddings of shape {expected} for this model "
                          f"({layers} layers of width {width}); is the adapter for another base model?")
    at = f"{backbone.path}." if backbone.path else ""
    if prefix:
        return PrefixTuningConfig(num_virtual_tokens=n), {f"{at}prefix.weight": table}
    return PromptTuningConfig(num_virtual_tokens=n), {f"{at}prompt.weight": table}
