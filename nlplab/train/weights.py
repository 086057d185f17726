"""Where a run's weights come from and where they go: the pretrained transformer it starts from (--init-from) and,
in parameter-efficient fine-tuning (--peft), the adapter it trains over that frozen base.

--init-from names the base and brings its tokenizer:
    all-MiniLM-L6-v2, a Hugging Face BERT folder   -> a BertEncoder (classify, match)
    an nlplab classify or match run                 -> its trained BertEncoder (a LoRA, QLoRA or BitFit run's adapter
                                                       merged in), with the run's tokenizer/
    a GPT-2 folder or an nlplab causal LM run       -> a GPT (lm; read by `nlplab.train.init_from`)
(the pre-training runs a classifier starts from are `nlplab.train.pretrained`'s). `load_backbone` copies the base
into the transformer of a task's model (its one BertEncoder or GPT), shapes checked.

build, adapt, place, fit: once a task has built its model (and loaded the base), `adapt` wraps it by name with
`nlplab.peft` — every weight frozen but the method's and the task head's (`head_modules`). Such a run keeps
    adapter/       adapter_config.json + adapter_model.safetensors (Hugging Face PEFT's layout; base_model_name_or_path
                   is --init-from) and modules_to_save.safetensors (the task head)
    base.safetensors   only without --init-from: the frozen random base, which no name can bring back
instead of model.safetensors; its checkpoints and early stopping keep only the trained tensors (`trained_part`).
`load_trained` gives any run's trained model back: its weights, or its base with its adapter.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from nlplab.errors import ConfigError, RunError
from nlplab.models.classifier import ClassifierConfig, TextClassifier
from nlplab.models.encoder import BertEncoder, pretrained_folder
from nlplab.models.gpt import GPT
from nlplab.models.matcher import MatcherConfig, build_matcher
from nlplab.peft import (
    PeftConfig,
    PeftModel,
    build_config,
    get_peft_model,
    head_modules,
    parameter_counts,
    parameter_summary,
)
from nlplab.peft.layout import find_backbones, single_backbone
from nlplab.peft.model import write_tensors
from nlplab.train.checkpoint import WEIGHTS, load_weights, run_json, save_weights
from nlplab.train.config import TrainConfig, load_config, names_runs

ADAPTER = "adapter"
BASE = "base.safetensors"
RUN_ENCODERS = {
    "classify": lambda shape: TextClassifier(ClassifierConfig(**{**shape, "kernel_sizes": tuple(shape["kernel_sizes"])})),
    "match": lambda shape: build_matcher(MatcherConfig(**shape)),
}
"""Task -> how its model comes back from model.json: the runs whose encoder --init-from takes."""
SHAPE_FREE = ("dropout", "impl")
"""Config fields a base and the model built around it may differ in."""


def is_run(init_from: str | Path) -> bool:
    return (Path(init_from) / "config.yaml").is_file()


def encoder_run(init_from: str) -> bool:
    """Whether `init_from` names one nlplab run whose trained encoder a model can start from (a classify or match
    run; `nlplab.train.pretrained` takes the pre-training runs)."""
    return is_run(init_from) and load_config(Path(init_from) / "config.yaml", {}).task in RUN_ENCODERS


def pretraining_runs(init_from: str | None) -> bool:
    """Whether `init_from` names nlplab pre-training runs (word2vec, lm, mlm: `nlplab.train.pretrained`'s routes)
    rather than an encoder to start from."""
    return init_from is not None and names_runs(init_from) and not encoder_run(init_from)


def pretrained_model(init_from: str, kind: type[BertEncoder] | type[GPT]) -> BertEncoder | GPT:
    """The pretrained transformer `init_from` names (see the module docstring), which must be a `kind`."""
    if kind is GPT:
        from nlplab.train.init_from import read_starting_lm  # it imports the trainer, which imports this module

        return read_starting_lm(Path(init_from), 0.0, "fused").model
    model = run_encoder(Path(init_from)) if is_run(init_from) else kind.from_pretrained(pretrained_folder(init_from))
    if not isinstance(model, kind):
        raise ConfigError(f"--init-from {init_from}: holds a {type(model).__name__}, and this model is built around a "
                          f"{kind.__name__}")
    return model


def run_encoder(run_dir: Path) -> BertEncoder:
    """The trained BertEncoder of a classify or match run."""
    from nlplab.train.trainer import run_config  # the trainer imports this module

    cfg = run_config(run_dir)
    if cfg.task not in RUN_ENCODERS:
        raise ConfigError(f"--init-from {run_dir}: a {cfg.task} run; an nlplab run to start from is a "
                          f"{' or '.join(RUN_ENCODERS)} run with a transformer encoder")
    model = load_trained(run_dir, cfg, RUN_ENCODERS[cfg.task](run_json(run_dir, "model.json")))
    if isinstance(model, PeftModel):
        model = model.merge_and_unload()
    found = find_backbones(model)
    if len(found) != 1:
        raise ConfigError(f"--init-from {run_dir}: its model ({cfg.model}) has no transformer encoder to start from; "
                          f"use a run of model transformer (classify) or simcse or cross (match)")
    return found[0].module


def load_backbone(model: nn.Module, pretrained: BertEncoder | GPT) -> None:
    """Copy `pretrained` into the one transformer of `model`, which must have its shape."""
    backbone = single_backbone(model, "--init-from").module
    ours, theirs = asdict(backbone.cfg), asdict(pretrained.cfg)
    differ = [k for k in ours if k not in SHAPE_FREE and ours[k] != theirs.get(k)]
    if type(backbone) is not type(pretrained) or differ:
        shown = ", ".join(f"{k} {theirs.get(k)} (model: {ours[k]})" for k in differ)
        raise ConfigError(f"the pretrained {type(pretrained).__name__} does not fit the model's "
                          f"{type(backbone).__name__}" + (f": {shown}" if shown else ""))
    backbone.load_state_dict(pretrained.state_dict())


def check_positions(cfg: TrainConfig, available: int) -> None:
    """ConfigError unless the pretrained model's `available` positions hold the window and any virtual tokens."""
    if cfg.positions() > available:
        virtual = cfg.positions() - cfg.window_size
        raise ConfigError(f"--window-size {cfg.window_size}" + (f" and {virtual} virtual tokens" if virtual else "") +
                          f" exceed the {available} positions of {cfg.init_from}; use --window-size "
                          f"{available - virtual} or less")


def peft_config(cfg: TrainConfig, model: nn.Module) -> PeftConfig:
    """The config of method cfg.peft from the recipe's adapter options; the task head trains in full beside it."""
    return build_config(cfg.peft, lora_r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                        lora_targets=cfg.lora_targets, adapter_size=cfg.adapter_size,
                        num_virtual_tokens=cfg.num_virtual_tokens, prefix_projection=cfg.prefix_projection,
                        modules_to_save=head_modules(model))


def adapt(model: nn.Module, cfg: TrainConfig, run_dir: Path, resume: bool) -> PeftModel:
    """`model`, built with its base, adapted by cfg.peft. A base without a name (no --init-from) is kept in
    run_dir/base.safetensors once the adapter fits it, and read from there again on resume."""
    unnamed = cfg.init_from is None
    if unnamed and resume:
        load_weights(run_dir / BASE, model)
    base = {k: v.detach().clone() for k, v in model.state_dict().items()} if unnamed and not resume else None
    adapted = get_peft_model(model, peft_config(cfg, model), base=cfg.init_from)
    if base is not None:
        write_tensors(run_dir / BASE, base)
    return adapted


class TrainedTensors:
    """The tensors training changes in a PEFT model (the adapter and the task head), with a module's state_dict and
    load_state_dict: what checkpoints and early stopping keep of it."""

    def __init__(self, model: PeftModel) -> None:
        self.model = model

    def state_dict(self) -> dict[str, Tensor]:
        return self.model.trainable_state()

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.model.load_state(state, "the checkpoint")


def trained_part(model: nn.Module) -> TrainedTensors | None:
    """A PEFT model's trained tensors; None for a plain model, all of which trains."""
    return TrainedTensors(model) if isinstance(model, PeftModel) else None


def save_trained(run_dir: Path, model: nn.Module) -> None:
    """The trained weights into the run: model.safetensors, or a PEFT model's adapter/ (with the task head)."""
    if isinstance(model, PeftModel):
        model.save_adapter(run_dir / ADAPTER)
    else:
        save_weights(run_dir / WEIGHTS, model)


def load_trained(run_dir: Path, cfg: TrainConfig, module: nn.Module) -> nn.Module:
    """The trained model of a run, given the module its model.json describes: with the run's weights, or for a
    PEFT run its base (--init-from, or base.safetensors) wrapped with its adapter (a PeftModel)."""
    if cfg.peft is None:
        return load_weights(run_dir / WEIGHTS, module)
    if not (run_dir / ADAPTER).is_dir():
        raise RunError(f"{run_dir / ADAPTER}: not found; the run did not finish: finish it with --resume")
    if cfg.init_from is None:
        load_weights(run_dir / BASE, module)
    else:
        try:
            base = pretrained_model(cfg.init_from, type(single_backbone(module, "--init-from").module))
        except ConfigError as e:
            raise RunError(f"{run_dir}: its base {cfg.init_from!r} (init_from in config.yaml; a relative folder is "
                           f"read from the current directory) cannot be loaded: {e}") from None
        load_backbone(module, base)
    return PeftModel.from_pretrained(module, run_dir / ADAPTER, quantize=cfg.peft == "qlora")


def parameter_info(model: nn.Module) -> dict[str, Any]:
    """{"trainable": n, "total": m, "summary": "trainable n of m (p%)"} of a model."""
    trainable, total = parameter_counts(model)
    return {"trainable": trainable, "total": total, "summary": parameter_summary(model)}
