"""The causal LM a run starts from (`init_from` of lm and the align stages): an nlplab run of a causal LM (lm, sft,
ppo or dpo, model gpt) or a Hugging Face GPT-2 folder. Its shape, weights and tokenizer come with it; the recipe
sets only the dropout.

A ppo run keeps its policy and its value model in one file (`ActorCritic`: `policy.*`, `value.*`) and its
model.json reads {"model": "gpt", "policy": LMConfig, "value": LMConfig}; every other causal run's model.json is
its LMConfig.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from torch import nn

from nlplab.errors import ConfigError
from nlplab.models.gpt import GPT
from nlplab.models.lm import LMConfig, build_lm, gpt_config
from nlplab.models.reward import ActorCritic, RewardModel
from nlplab.text import Tokenizer, load_tokenizer
from nlplab.train.checkpoint import WEIGHTS, load_weights, run_json
from nlplab.train.trainer import run_config

CAUSAL_RUNS = ("lm", "sft", "ppo", "dpo")
"""Tasks whose runs are causal LMs another run can start from."""


@dataclass
class StartingLM:
    """The starting point: its shape (dropout and impl as asked), the GPT with its weights, the tokenizer."""

    shape: LMConfig
    model: nn.Module
    tokenizer: Tokenizer
    name: str


def causal_module(described: dict[str, Any], **changes: Any) -> nn.Module:
    """The untrained module a causal run's model.json describes (a GPT, or an ActorCritic for ppo); `changes`
    (dropout, impl) apply to every LMConfig in it."""
    if "policy" in described:
        return ActorCritic(build_lm(replace(LMConfig(**described["policy"]), **changes)),
                           RewardModel.build(replace(LMConfig(**described["value"]), **changes)))
    return build_lm(replace(LMConfig(**described), **changes))


def policy_of(module: nn.Module) -> nn.Module:
    """The acting LM of a causal run's module: the module itself, or a ppo run's policy."""
    return module.policy if isinstance(module, ActorCritic) else module


def policy_shape(described: dict[str, Any]) -> LMConfig:
    return LMConfig(**described.get("policy", described))


def gpt2_shape(model: GPT, folder: Path) -> LMConfig:
    """The LMConfig of a GPT-2 folder's model, or ConfigError when it is a variant LMConfig cannot describe."""
    c = model.cfg
    shape = LMConfig(model="gpt", vocab_size=c.vocab_size, block_size=c.block_size, embed_dim=c.n_embd,
                     hidden_size=c.n_embd, layers=c.n_layer, heads=c.n_head, dropout=c.dropout, impl=c.impl)
    expected = gpt_config(shape)
    differing = [f.name for f in fields(c) if getattr(c, f.name) != getattr(expected, f.name)]
    if differing:
        raise ConfigError(f"{folder}: a GPT-2 variant ({', '.join(f'{n} {getattr(c, n)!r}' for n in differing)}) that an "
                          "nlplab run cannot describe; start from a standard GPT-2 folder or an nlplab run")
    return shape


def load_starting_lm(init_from: str, window_size: int, dropout: float, impl: str = "fused") -> StartingLM:
    """The causal LM `init_from` names (see the module docstring), with `dropout`, in train mode on the CPU;
    ConfigError when its positions are fewer than `window_size`."""
    start = read_starting_lm(Path(init_from), dropout, impl)
    if window_size > start.shape.block_size:
        raise ConfigError(f"--window-size {window_size} exceeds the {start.shape.block_size} positions of {init_from}; "
                          f"use --window-size {start.shape.block_size} or less")
    return start


def read_starting_lm(folder: Path, dropout: float, impl: str) -> StartingLM:
    if (folder / "config.yaml").is_file():
        cfg = run_config(folder)
        if cfg.task not in CAUSAL_RUNS or cfg.model != "gpt":
            raise ConfigError(f"--init-from {folder}: a {cfg.task} run of model {cfg.model}; start from an "
                              f"{', '.join(CAUSAL_RUNS)} run of model gpt, or a GPT-2 folder")
        described = run_json(folder, "model.json")
        model = policy_of(load_weights(folder / WEIGHTS, causal_module(described, dropout=dropout, impl=impl)))
        shape = replace(policy_shape(described), dropout=dropout, impl=impl)
        return StartingLM(shape, model.train(), load_tokenizer(folder / "tokenizer"), str(folder))
    if (folder / "config.json").is_file():
        pretrained = GPT.from_pretrained(folder, impl)
        shape = replace(gpt2_shape(pretrained, folder), dropout=dropout)
        model = build_lm(shape)
        model.load_state_dict(pretrained.state_dict())
        return StartingLM(shape, model, load_tokenizer(folder), str(folder))
    raise ConfigError(f"--init-from {folder}: neither an nlplab run (no config.yaml) nor a Hugging Face GPT-2 folder "
                      "(no config.json)")
