"""The five-step recipe as code: choose a model, collect labelled data, forward, backward, use the model.

`train(cfg, out)` runs it for any task family (`cfg.task`: classify, lm, tag, match, sft, reward, ppo, dpo) and
leaves a run directory:
    config.yaml  model.json  tokenizer/  model.safetensors  metrics.json  history.jsonl  curves.png
(plus what the task adds, e.g. labels.json) and checkpoint.safetensors after every epoch, from which
`resume=True` continues an interrupted run to exactly the metrics an uninterrupted one reaches (per-epoch
seeds make data order and dropout replayable).

A task family supplies a `Task`: its data, model, batches, loss and metrics; the loop below is shared.

Under `torchrun`, with `cfg.strategy` other than single, every process runs `train`: the model is built, then placed
by the strategy (`nlplab.dist.strategy`: ddp, zero1-3, fsdp, tp, pp), and each process takes its share of every
global batch; only rank 0 validates (on the whole model), logs and writes the run directory, whose checkpoints
load in any number of processes, one included.
"""

from __future__ import annotations

import importlib
import json
import shutil
import signal
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
import yaml

from nlplab.dist import Strategy, build_strategy, joined
from nlplab.errors import ConfigError, RunError
from nlplab.io import atomic_write_text
from nlplab.io import progress as progress_of
from nlplab.models.encoder import pretrained_folder
from nlplab.optim import (
    EarlyStopping,
    build_optimizer,
    build_scheduler,
    l1_penalty,
    l2_penalty,
)
from nlplab.peft import parameter_counts
from nlplab.runtime import autocast, compile_model, compile_seconds, resolve_device, to_device
from nlplab.text import Tokenizer, build_tokenizer, load_tokenizer
from nlplab.train.checkpoint import load_state, run_json, save_state
from nlplab.train.config import TrainConfig, load_config
from nlplab.train.curves import plot_history
from nlplab.train.pretrained import run_tokenizer_dir
from nlplab.train.weights import adapt, parameter_info, pretraining_runs, save_trained, trained_part

CHECKPOINT = "checkpoint.safetensors"

TASKS = {
    "classify": "nlplab.train.classify:ClassifyTask",
    "lm": "nlplab.train.lm:LMTask",
    "tag": "nlplab.train.tag:TagTask",
    "match": "nlplab.train.match:MatchTask",
    "sft": "nlplab.train.sft:SFTTask",
    "reward": "nlplab.train.reward:RewardTask",
    "ppo": "nlplab.train.ppo:PPOTask",
    "dpo": "nlplab.train.dpo:DPOTask",
    "word2vec": "nlplab.train.word2vec:Word2VecTask",
    "mlm": "nlplab.train.mlm:MLMTask",
}


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

    def state_dict(self) -> dict[str, Any]:
        """What the task itself must carry over a checkpoint to resume exactly (a controller, a random generator,
        a rollout under way): tensors, numbers, strings, lists and dicts. Nothing by default."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Take back what `state_dict` gave, when a run resumes."""

    def param_groups(self, params: list[torch.nn.Parameter]) -> list[torch.nn.Parameter] | list[dict[str, Any]]:
        """What the optimizer updates, given the trainable parameters: those (the default), or param groups of the
        model with their own learning rates (one process only)."""
        return params

    def start_epoch(self, epoch: int) -> None:
        """Called before epoch `epoch` (1, 2, …) trains, also on resume (e.g. to unfreeze layers)."""

    manual_update: bool = False
    """True when `step` computes the update itself and `update` applies it (word2vec's hand-written sparse SGD):
    the loop then neither back-propagates nor steps the optimizer (one process only)."""

    def update(self, lr: float) -> None:
        """Apply the last `step`'s update at learning rate `lr` (tasks with `manual_update`)."""
        raise NotImplementedError(f"{type(self).__name__} computes no update of its own")

    def objective(self, loss: torch.Tensor) -> torch.Tensor:
        """What backward() sees: the loss plus penalties (L1/L2 on weight matrices, the task's auxiliary losses)."""
        if not (self.cfg.l1 or self.cfg.l2):
            return loss
        weights = [p for p in self.model.parameters() if p.dim() > 1 and p.requires_grad]
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
    described = run_json(run_dir, "model.json").get("model") if (run_dir / "model.json").is_file() else cfg.model
    if described != cfg.model:
        raise RunError(f"{run_dir}: config.yaml says model {cfg.model!r} but model.json describes {described!r}; "
                       "the run's files disagree: restore config.yaml or train the run again")
    return cfg


def task_tokenizer(cfg: TrainConfig, run_dir: Path, resume: bool, texts: Iterable[str],
                   special_tokens: Sequence[str] | None = None) -> Tokenizer:
    """The tokenizer of a task: the run's own on resume, the pretrained encoder's or LM run's with --init-from, a
    saved one (--tokenizer DIR), else one of algorithm --tokenizer trained on `texts` (with `special_tokens` when
    given; a classifier starting from word vectors trains its own)."""
    if resume and (run_dir / "tokenizer").is_dir():
        return load_tokenizer(run_dir / "tokenizer")
    if cfg.task == "classify" and pretraining_runs(cfg.init_from):
        if (pretrained := run_tokenizer_dir(cfg.init_from)) is not None:
            return load_tokenizer(pretrained)
    elif cfg.init_from is not None:
        folder = pretrained_folder(cfg.init_from)
        return load_tokenizer(folder / "tokenizer" if (folder / "config.yaml").is_file() else folder)
    if Path(cfg.tokenizer).exists():
        return load_tokenizer(cfg.tokenizer)
    options = {"special_tokens": tuple(special_tokens)} if special_tokens else {}
    return build_tokenizer(cfg.tokenizer, **options).train(texts, vocab_size=cfg.vocab_size, min_freq=cfg.min_freq)




def train(cfg: TrainConfig, out: str | Path, resume: bool = False, overwrite: bool = False,
          on_epoch_end: Callable[[int, dict[str, Any]], None] | None = None, progress: bool | None = None,
          on_start: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Train the model `cfg` describes into run directory `out`; returns the final metrics.

    `resume` continues from the last checkpoint; a run interrupted before its first checkpoint starts again from
    the beginning. `overwrite` deletes a run already in `out` first. Under a strategy (see the module docstring) the
    data, the tokenizer and --resume's run directory must be at the same path for every process (one machine, or a
    shared filesystem); every process returns the metrics and `on_epoch_end` is called on rank 0 only. Once the
    model is built (and adapted, with cfg.peft), `on_start` receives its parameter counts
    (`weights.parameter_info`) on rank 0."""
    run_dir = Path(out)
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    cfg = replace(cfg, threads=torch.get_num_threads())
    if resume and overwrite:
        raise ConfigError("--resume continues the run in --out, --overwrite deletes it: choose one")
    with joined(cfg.strategy, resolve_device(cfg.device), cfg.dist_timeout) as device:
        strategy = build_strategy(cfg.strategy, cfg.impl, micro_batches=cfg.micro_batches)
        resume = shared_claim(strategy, run_dir, resume, overwrite)
        task = task_class(cfg.task)(cfg, run_dir, resume, device)
        if cfg.peft is not None:
            task.model = adapt(task.model, cfg, run_dir, resume)
        if on_start is not None and strategy.is_main and next(task.model.parameters(), None) is not None:
            on_start(parameter_info(task.model))
        if cfg.compile:
            compile_model(task.model)
        seconds = task.fit_directly()
        if seconds is None:
            return fit(task, run_dir / CHECKPOINT, on_epoch_end, progress, strategy)
    save_config(run_dir, cfg)
    return save_metrics(task, best_epoch=None, epochs_run=0, train_seconds=seconds)


def shared_claim(strategy: Strategy, run_dir: Path, resume: bool, overwrite: bool) -> bool:
    """`claim_run_dir` on the main rank, its answer (or its RunError) on every rank."""
    claim: dict[str, Any] | None = None
    if strategy.is_main:
        try:
            claim = {"resume": claim_run_dir(run_dir, resume, overwrite)}
        except RunError as error:
            claim = {"error": str(error)}
    claim = strategy.broadcast_json(claim)
    if "error" in claim:
        raise RunError(claim["error"])
    return claim["resume"]


def claim_run_dir(run_dir: Path, resume: bool, overwrite: bool) -> bool:
    """Check `run_dir` against --resume and --overwrite, deleting the run it holds when asked to; returns whether
    to resume (False when the run to resume had no checkpoint yet: it starts again)."""
    holds_run = (run_dir / "config.yaml").is_file()
    if resume and not (run_dir / CHECKPOINT).is_file():
        if not holds_run:
            raise RunError(f"{run_dir}: nothing to resume (no {CHECKPOINT} and no run); run without --resume")
        resume, overwrite = False, True
    if holds_run and not resume:
        if not overwrite:
            raise RunError(f"{run_dir}: already holds a run; continue it with --resume, start it again with --overwrite "
                           "or choose another --out")
        shutil.rmtree(run_dir)
    return resume


def save_config(run_dir: Path, cfg: TrainConfig) -> None:
    atomic_write_text(run_dir / "config.yaml", yaml.safe_dump(cfg.to_dict(), allow_unicode=True, sort_keys=False))


def save_metrics(task: Task, best_epoch: int | None, epochs_run: int, train_seconds: float,
                 compiling_seconds: float | None = None, budget_spent: bool = False) -> dict[str, Any]:
    """The final metrics of the run (the task's dev and test figures, the parameters trained and in all), written
    to metrics.json and returned; `compiling_seconds`, the part of train_seconds spent compiling (with --compile), as
    compile_seconds when given."""
    compiling = {} if compiling_seconds is None else {"compile_seconds": compiling_seconds}
    trainable, total = parameter_counts(task.model)
    metrics = {"data": task.cfg.data, **task.describe(), "best_epoch": best_epoch, "epochs_run": epochs_run,
               "train_seconds": train_seconds, **compiling, "budget_spent": budget_spent, **task.final_metrics()}
    if total:
        metrics["parameters"] = {"trainable": trainable, "total": total}
    atomic_write_text(task.run_dir / "metrics.json", json.dumps(metrics, ensure_ascii=False, indent=2))
    return metrics


def describe_epoch(row: dict[str, Any]) -> str:
    """One line for a history row: `epoch 3: train loss 0.4123 accuracy 0.8 | val loss ... | 12.3s` (with
    `, 9.1s compiling` under --compile)."""
    train_figures = " ".join(f"{k[6:]} {v:.4f}" for k, v in row.items() if k.startswith("train_") and k != "train_loss")
    val = " ".join(f"{k[4:]} {v:.4f}" for k, v in row.items() if k.startswith("val_"))
    compiling = f", {row['compile_seconds']:.1f}s compiling" if "compile_seconds" in row else ""
    return (f"epoch {row['epoch']}: train loss {row['train_loss']:.4f} {train_figures}".rstrip()
            + f" | val {val} | {row['seconds']:.1f}s{compiling}")


@dataclass
class EpochProgress:
    """Where the current epoch stands: steps taken, examples seen, sums of the loss and of the task's extra figures,
    seconds spent (compile_seconds of them compiling). Saved in a checkpoint taken between steps, so that resuming
    finishes the epoch exactly."""

    steps: int = 0
    seen: int = 0
    loss_sum: float = 0.0
    sums: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    compile_seconds: float = 0.0


@contextmanager
def interruptible() -> Iterator[Callable[[], bool]]:
    """Inside the block, SIGINT (Ctrl-C) and SIGTERM only raise a flag, read by the function yielded: the loop
    finishes its step, saves a checkpoint and stops. A second Ctrl-C interrupts at once. Only the main thread can
    take signals; elsewhere the flag never rises."""
    raised = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield raised.is_set
        return

    def handler(signum: int, _frame: Any) -> None:
        raised.set()
        signal.signal(signal.SIGINT, previous[signal.SIGINT])

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield raised.is_set
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def fit(task: Task, checkpoint_path: Path, on_epoch_end: Callable[[int, dict[str, Any]], None] | None,
        progress: bool | None, strategy: Strategy | None = None) -> dict[str, Any]:
    """The shared loop: epochs of forward/backward/step, validation, early stopping, checkpoints, curves.

    A checkpoint is saved after every epoch, every `cfg.checkpoint_every` steps, and when the run is interrupted
    (SIGINT/SIGTERM) between two steps; it holds the epoch's progress and the random state, so a resumed run
    reaches the metrics of an uninterrupted one. With `cfg.max_minutes`, the step that ends the budget (training
    seconds summed over epochs and resumes) also ends its epoch and the run: validation, checkpoint, best weights.

    `strategy` (default: one process) places the model: every process steps through it on its share of each batch;
    the figures are summed over the processes, which agree on when to stop; checkpoints hold the whole model and one
    process's optimizer state. Rank 0 validates the whole model (`strategy.whole_model`) and writes. A PEFT model
    (one process) keeps only its trained tensors in checkpoints and early stopping."""
    strategy = strategy or Strategy()
    cfg, run_dir, main = task.cfg, task.run_dir, strategy.is_main
    adapter = trained_part(task.model)
    steps_per_epoch = task.num_train_batches()
    state = load_state(checkpoint_path) if task.resume else None
    if state is not None:
        (task.model if adapter is None else adapter).load_state_dict(state["model"])
    placed = strategy.wrap(task.model)
    whole = task.model = placed if strategy.whole is None else strategy.whole
    optimizer = strategy.build_optimizer(lambda params: build_optimizer(cfg.optimizer, task.param_groups(params), lr=cfg.lr,
                                                                        weight_decay=cfg.weight_decay,
                                                                        momentum=cfg.momentum, impl=cfg.impl))
    scheduler = build_scheduler(cfg.schedule, optimizer, total_steps=cfg.epochs * steps_per_epoch,
                                warmup_steps=cfg.warmup_steps, step_size=steps_per_epoch)
    stopper = EarlyStopping(patience=cfg.early_stop or cfg.epochs, mode=task.mode)
    history: list[dict[str, Any]] = []
    start_epoch, partial = 1, None

    if state is not None:
        strategy.load_optimizer_state_dict(optimizer, state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        stopper.load_state_dict(state["early_stopping"])
        history, start_epoch = state["history"], state["epoch"] + 1
        partial = state.get("partial_epoch")
        task.load_state_dict(state.get("task", {}))
    elif main:
        run_dir.mkdir(parents=True, exist_ok=True)
        task.save_meta(run_dir)
        save_config(run_dir, cfg)

    def trained_state() -> dict[str, Any]:
        """What checkpoints keep of the model: its whole state, or a PEFT model's trained tensors."""
        return strategy.state_dict() if adapter is None else adapter.state_dict()

    def checkpoint(epoch_done: int, now: EpochProgress | None = None, weights: dict[str, Any] | None = None) -> None:
        weights = trained_state() if weights is None else weights
        moments = strategy.optimizer_state_dict(optimizer)
        rng = ranks_random_state(strategy, task.device) if now is not None else None
        if not main:
            return
        state = {"epoch": epoch_done, "model": weights, "optimizer": moments, "scheduler": scheduler.state_dict(),
                 "early_stopping": stopper.state_dict(), "history": history, "task": task.state_dict()}
        if now is not None:
            state["partial_epoch"] = {**asdict(now), "rng": rng}
        save_state(checkpoint_path, state)

    def summed(figures: dict[str, float]) -> tuple[dict[str, float], bool]:
        """The figures summed over the processes, and whether any of them was interrupted."""
        figures = strategy.reduce_sum({**figures, "interrupted": float(interrupted())})
        return figures, figures.pop("interrupted") > 0

    stopped = bool(history) and stopper.bad_epochs >= stopper.patience
    budget = cfg.max_minutes * 60 if cfg.max_minutes is not None else float("inf")
    spent = lambda: sum(h["seconds"] for h in history)  # noqa: E731
    budget_spent = spent() >= budget
    with interruptible() as interrupted:
        for epoch in range(start_epoch, cfg.epochs + 1):
            if stopped or budget_spent:
                break
            task.start_epoch(epoch)
            placed.train()
            torch.manual_seed(cfg.seed * 1_000_003 + epoch)
            order = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch)
            now = EpochProgress()
            if partial is not None:
                set_random_state(rank_random_state(partial.pop("rng"), strategy.rank), task.device)
                now, partial = EpochProgress(**partial), None
            t0, c0 = time.perf_counter() - now.seconds, compile_seconds() - now.compile_seconds
            bar = progress_of(task.train_batches(order), total=steps_per_epoch, desc=f"epoch {epoch}/{cfg.epochs}",
                              unit=" steps", enabled=progress if main else False)
            task.model = placed  # the steps go through the placed module, validation through the whole one
            for k, batch in enumerate(bar):
                if k < now.steps:
                    continue
                if task.manual_update:
                    loss, n, extra = forward(task, to_device(batch, task.device))
                    task.update(optimizer.param_groups[0]["lr"])
                else:
                    strategy.zero_grad(optimizer)
                    loss, n, extra = strategy.forward_backward(lambda shard: forward(task, shard),
                                                               to_device(batch, task.device), task.objective)
                    if cfg.grad_clip:
                        strategy.clip_grad_norm(cfg.grad_clip)
                strategy.step(optimizer)  # after a manual update no parameter has a gradient: a no-op
                scheduler.step()
                figures, interrupted_now = summed({"loss": loss.item() * n, "seen": n, **extra})
                now.steps, now.seen, now.loss_sum = k + 1, now.seen + int(figures.pop("seen")), now.loss_sum + figures.pop("loss")
                for key, value in figures.items():
                    now.sums[key] = now.sums.get(key, 0.0) + value
                bar.set_postfix(loss=f"{now.loss_sum / now.seen:.4f}")
                step = (epoch - 1) * steps_per_epoch + k + 1
                budget_spent = budget < float("inf") and bool(
                    strategy.reduce_sum({"spent": float(spent() + time.perf_counter() - t0 >= budget)})["spent"])
                if budget_spent:
                    break
                if interrupted_now or (cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and k + 1 < steps_per_epoch):
                    now.seconds, now.compile_seconds = time.perf_counter() - t0, compile_seconds() - c0
                    checkpoint(epoch - 1, now)
                    if interrupted_now:
                        raise KeyboardInterrupt
            bar.close()
            task.model = whole
            seconds, compiling = time.perf_counter() - t0, compile_seconds() - c0
            weights = trained_state()
            evaluated = strategy.whole_model(weights) if adapter is None else adapter
            val = strategy.broadcast_json(task.validate() if main else None)
            row = {"epoch": epoch, "train_loss": now.loss_sum / now.seen,
                   **{f"train_{k}": v / now.seen for k, v in now.sums.items()}, **{f"val_{k}": v for k, v in val.items()},
                   "lr": optimizer.param_groups[0]["lr"], "seconds": seconds,
                   **({"compile_seconds": compiling} if cfg.compile else {}),
                   "samples_per_second": now.seen / (seconds - compiling)}
            history.append(row)
            stopped = stopper.step(val[task.metric], evaluated)
            checkpoint(epoch, weights=weights)
            if main:
                atomic_write_text(run_dir / "history.jsonl", "".join(json.dumps(h) + "\n" for h in history))
                if on_epoch_end is not None:
                    on_epoch_end(epoch, row)
            if summed({})[1]:
                raise KeyboardInterrupt

    metrics = None
    if main:
        stopper.restore(task.model if adapter is None else adapter)
        save_trained(run_dir, task.model)
        metrics = save_metrics(task, stopper.best_epoch, len(history), spent(),
                               sum(h.get("compile_seconds", 0.0) for h in history) if cfg.compile else None,
                               budget_spent)
        plot_history(history, run_dir / "curves.png", metric=task.metric, title=f"{run_dir.name}: {cfg.task}, {cfg.model}",
                     best_epoch=stopper.best_epoch)
    return strategy.broadcast_json(metrics)


def forward(task: Task, batch: dict[str, Any]) -> tuple[torch.Tensor, int, dict[str, float]]:
    """The task's step on a batch (already on its device), under the device's autocast."""
    with autocast(task.device):
        return task.step(batch)


def ranks_random_state(strategy: Strategy, device: torch.device) -> list[dict[str, torch.Tensor]]:
    """`random_state` of every process, in rank order (the same on every rank)."""
    mine = random_state(device)
    gathered = {name: strategy.all_gather(state) for name, state in mine.items()}
    return [{name: gathered[name][rank] for name in mine} for rank in range(strategy.world_size)]


def rank_random_state(states: list[dict[str, torch.Tensor]] | dict[str, torch.Tensor], rank: int) -> dict[str, torch.Tensor]:
    """This rank's saved random state (rank 0's when the run was saved by fewer processes; the one state of a
    checkpoint from before distributed training)."""
    if isinstance(states, dict):
        return states
    return states[rank] if rank < len(states) else states[0]


def random_state(device: torch.device) -> dict[str, torch.Tensor]:
    """The generators a training step draws from (dropout, sampling): the CPU's and, on CUDA, the device's."""
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_random_state(state: dict[str, torch.Tensor], device: torch.device) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)
