"""The five-step recipe as code: choose a model, collect labelled data, forward, backward, use the model.

`train(cfg, out)` runs it for any task family (`cfg.task`: classify, lm, tag, match) and leaves a run directory:
    config.yaml  model.json  tokenizer/  model.safetensors  metrics.json  history.jsonl  curves.png
(plus what the task adds, e.g. labels.json) and checkpoint.safetensors after every epoch, from which
`resume=True` continues an interrupted run to exactly the metrics an uninterrupted one reaches (per-epoch
seeds make data order and dropout replayable).

A task family supplies a `Task`: its data, model, batches, loss and metrics; the loop below is shared.
"""

from __future__ import annotations

import importlib
import json
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
import yaml
from tqdm.auto import tqdm

from nlplab.errors import ConfigError, RunError
from nlplab.io import atomic_write_text, read_json_object
from nlplab.optim import (
    EarlyStopping,
    build_optimizer,
    build_scheduler,
    l1_penalty,
    l2_penalty,
)
from nlplab.train.checkpoint import load_state, load_weights, save_state, save_weights
from nlplab.train.config import TrainConfig, load_config
from nlplab.train.curves import plot_history

CHECKPOINT = "checkpoint.safetensors"
WEIGHTS = "model.safetensors"

TASKS = {
    "classify": "nlplab.train.classify:ClassifyTask",
    "lm": "nlplab.train.lm:LMTask",
    "tag": "nlplab.train.tag:TagTask",
    "match": "nlplab.train.match:MatchTask",
}


def resolve_device(name: str) -> torch.device:
    """`auto` -> CUDA when available, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RunError("--device cuda asked for, but no CUDA device is available; use --device cpu or auto")
    return torch.device(name)


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """Move a batch's tensors to `device`; lengths and row indices stay on the CPU (packed RNNs need them there)."""
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) and k not in ("lengths", "rows") else v
            for k, v in batch.items()}


def autocast(device: torch.device) -> torch.autocast:
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


class Task(ABC):
    """One task family's part of the recipe. Subclasses build `self.model` (on `device`) in `__init__` after
    seeding with `cfg.seed`, and say which validation value selects the best epoch (`metric`, `mode`)."""

    metric: str = "accuracy"
    mode: str = "max"
    model: torch.nn.Module

    def __init__(self, cfg: TrainConfig, run_dir: Path, resume: bool, device: torch.device) -> None:
        self.cfg, self.run_dir, self.resume, self.device = cfg, run_dir, resume, device

    @abstractmethod
    def save_meta(self, run_dir: Path) -> None:
        """Write what loading the run needs besides weights and config.yaml (model.json, tokenizer/, labels...)."""

    @abstractmethod
    def num_train_batches(self) -> int: ...

    @abstractmethod
    def train_batches(self, generator: torch.Generator) -> Iterable[dict[str, Any]]:
        """One epoch of training batches (on the CPU), shuffled by `generator`."""

    @abstractmethod
    def step(self, batch: dict[str, Any]) -> tuple[torch.Tensor, int, dict[str, float]]:
        """Forward one batch (already on the device): (mean loss to minimise, examples or tokens counted,
        sums of extra per-example figures, e.g. {"accuracy": correct}) — the loop reports sums / count."""

    @abstractmethod
    def validate(self) -> dict[str, float]:
        """Figures on the dev split (in eval mode), including `loss` and `self.metric`."""

    @abstractmethod
    def final_metrics(self) -> dict[str, Any]:
        """{"dev": {...}, "test": {...}} of the selected model, for metrics.json."""

    def fit_directly(self) -> float | None:
        """For models estimated without gradients (counts): estimate the model, save what loading the run needs
        and return the seconds it took. None (the default) means: train with the shared loop."""
        return None

    def describe(self) -> dict[str, Any]:
        """Extra keys for metrics.json (data notes, sizes)."""
        return {}

    @classmethod
    def cli_eval(cls, args: Any) -> None:
        """`nlplab eval RUN [--data PATH] [--device D]` for this task: a report, then one JSON line of figures."""
        raise ConfigError(f"`nlplab eval` is not available for {cls.__name__} runs")

    @classmethod
    def cli_predict(cls, args: Any, texts: list[str]) -> None:
        """`nlplab predict RUN TEXT...` for this task: one line of output per text."""
        raise ConfigError(f"`nlplab predict` is not available for {cls.__name__} runs")

    def objective(self, loss: torch.Tensor) -> torch.Tensor:
        """What backward() sees: the loss plus penalties (L1/L2 on weight matrices, the task's auxiliary losses)."""
        if not (self.cfg.l1 or self.cfg.l2):
            return loss
        weights = [p for p in self.model.parameters() if p.dim() > 1]
        if self.cfg.l1:
            loss = loss + l1_penalty(weights, self.cfg.l1)
        if self.cfg.l2:
            loss = loss + l2_penalty(weights, self.cfg.l2)
        return loss


def task_class(name: str) -> type[Task]:
    if name not in TASKS:
        raise ConfigError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}")
    module, cls = TASKS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def run_config(run_dir: str | Path, task: str | None = None) -> TrainConfig:
    """The config of a trained run (of `task`, when given), or RunError when `run_dir` is not one."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise RunError(f"{run_dir}: not a run directory (no config.yaml); pass the --out folder of `nlplab train`")
    cfg = load_config(run_dir / "config.yaml", {})
    if task is not None and cfg.task != task:
        raise RunError(f"{run_dir}: a {cfg.task} run, not a {task} run")
    return cfg


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


def run_model(run_dir: Path, model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """`model` (built from the run's model.json) with the run's best weights, on `device`, in eval mode."""
    return load_weights(run_dir / WEIGHTS, model).to(device).eval()


def run_json(run_dir: str | Path, name: str) -> dict[str, Any]:
    """A JSON object a trained run keeps beside its weights (model.json, labels.json, ...), or RunError."""
    return read_json_object(Path(run_dir) / name, RunError, "the run is incomplete; train it again or finish it with --resume")


def train(cfg: TrainConfig, out: str | Path, resume: bool = False,
          on_epoch_end: Callable[[int, dict[str, Any]], None] | None = None, progress: bool | None = None) -> dict[str, Any]:
    """Train the model `cfg` describes into run directory `out`; returns the final metrics."""
    run_dir = Path(out)
    checkpoint_path = run_dir / CHECKPOINT
    if resume and not checkpoint_path.is_file():
        raise RunError(f"{run_dir}: nothing to resume (no {CHECKPOINT}); run without --resume")
    if not resume and (run_dir / "config.yaml").exists():
        raise RunError(f"{run_dir}: already holds a run; continue it with --resume or choose another --out")
    task = task_class(cfg.task)(cfg, run_dir, resume, resolve_device(cfg.device))
    seconds = task.fit_directly()
    if seconds is None:
        return fit(task, checkpoint_path, on_epoch_end, progress)
    save_config(run_dir, cfg)
    return save_metrics(task, best_epoch=None, epochs_run=0, train_seconds=seconds)


def save_config(run_dir: Path, cfg: TrainConfig) -> None:
    atomic_write_text(run_dir / "config.yaml", yaml.safe_dump(cfg.to_dict(), allow_unicode=True, sort_keys=False))


def save_metrics(task: Task, best_epoch: int | None, epochs_run: int, train_seconds: float) -> dict[str, Any]:
    """The final metrics of the run (the task's dev and test figures), written to metrics.json and returned."""
    metrics = {"data": task.cfg.data, **task.describe(), "best_epoch": best_epoch, "epochs_run": epochs_run,
               "train_seconds": train_seconds, **task.final_metrics()}
    atomic_write_text(task.run_dir / "metrics.json", json.dumps(metrics, ensure_ascii=False, indent=2))
    return metrics


def fit(task: Task, checkpoint_path: Path, on_epoch_end: Callable[[int, dict[str, Any]], None] | None,
        progress: bool | None) -> dict[str, Any]:
    """The shared loop: epochs of forward/backward/step, validation, early stopping, checkpoints, curves."""
    cfg, run_dir, model = task.cfg, task.run_dir, task.model
    steps_per_epoch = task.num_train_batches()
    optimizer = build_optimizer(cfg.optimizer, model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                                momentum=cfg.momentum, impl=cfg.impl)
    scheduler = build_scheduler(cfg.schedule, optimizer, total_steps=cfg.epochs * steps_per_epoch,
                                warmup_steps=cfg.warmup_steps, step_size=steps_per_epoch)
    stopper = EarlyStopping(patience=cfg.early_stop or cfg.epochs, mode=task.mode)
    history: list[dict[str, Any]] = []
    start_epoch = 1

    if task.resume:
        state = load_state(checkpoint_path)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        stopper.load_state_dict(state["early_stopping"])
        history, start_epoch = state["history"], state["epoch"] + 1
    else:
        run_dir.mkdir(parents=True, exist_ok=True)
        task.save_meta(run_dir)
        save_config(run_dir, cfg)

    stopped = bool(history) and stopper.bad_epochs >= stopper.patience
    for epoch in range(start_epoch, cfg.epochs + 1):
        if stopped:
            break
        model.train()
        torch.manual_seed(cfg.seed * 1_000_003 + epoch)
        order = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch)
        t0, seen, loss_sum, sums = time.perf_counter(), 0, 0.0, {}
        bar = tqdm(task.train_batches(order), total=steps_per_epoch, desc=f"epoch {epoch}/{cfg.epochs}",
                   disable=not progress if progress is not None else None, leave=False)
        for batch in bar:
            with autocast(task.device):
                loss, n, extra = task.step(to_device(batch, task.device))
            optimizer.zero_grad(set_to_none=True)
            task.objective(loss).backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            scheduler.step()
            seen += n
            loss_sum += loss.item() * n
            for key, value in extra.items():
                sums[key] = sums.get(key, 0.0) + value
            bar.set_postfix(loss=f"{loss_sum / seen:.4f}")
        seconds = time.perf_counter() - t0
        val = task.validate()
        row = {"epoch": epoch, "train_loss": loss_sum / seen, **{f"train_{k}": v / seen for k, v in sums.items()},
               **{f"val_{k}": v for k, v in val.items()}, "lr": optimizer.param_groups[0]["lr"],
               "seconds": seconds, "samples_per_second": seen / seconds}
        history.append(row)
        stopped = stopper.step(val[task.metric], model)
        save_state(checkpoint_path, {"epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                     "scheduler": scheduler.state_dict(), "early_stopping": stopper.state_dict(), "history": history})
        atomic_write_text(run_dir / "history.jsonl", "".join(json.dumps(h) + "\n" for h in history))
        train_figures = " ".join(f"{k} {v / seen:.4f}" for k, v in sums.items())
        print(f"epoch {epoch}: train loss {row['train_loss']:.4f} {train_figures}".rstrip() + " | val "
              + " ".join(f"{k} {v:.4f}" for k, v in val.items()) + f" | {seconds:.1f}s", flush=True)
        if on_epoch_end is not None:
            on_epoch_end(epoch, row)

    stopper.restore(model)
    save_weights(run_dir / WEIGHTS, model)
    metrics = save_metrics(task, stopper.best_epoch, len(history), sum(h["seconds"] for h in history))
    plot_history(history, run_dir / "curves.png", metric=task.metric)
    return metrics
