"""`nlplab tune`: hyper-parameter search over any training recipe, with optuna as the engine.

A SPACE file is YAML, one entry per option of `nlplab train`:

    lr: {low: 1.0e-4, high: 1.0e-2, log: true}     # a float range (log: sampled on a log scale)
    epochs: {low: 2, high: 8}                      # an int range (both ends integers)
    embed_dim: {choices: [64, 128, 256]}           # a list of values

Searches: `grid` (optuna's GridSampler over every choice and K values per range — the centres of K equal cells,
on a log scale when log — K the largest with the grid no bigger than the trial budget), `random` (RandomSampler),
`bayes` (TPE) and `gp` (the hand-written Gaussian process with expected improvement of `nlplab.classic.bayesopt`,
on the unit cube: log ranges by their logarithm, ints rounded, choices by equal slices). Each trial is an ordinary
run directory STUDY/trials/NNNN; its value is the dev metric of the run's selected epoch. From the second epoch on,
a median pruner stops a trial whose dev metric is worse than the median of earlier trials at that epoch (after
three finished trials; the table shows a pruned trial's last dev figure). The study lives in
STUDY/study.db (optuna's SQLite storage): running the same command again continues it, re-running (with the
same parameters) any trial an interruption cut short, until the budget of finished trials is reached.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import yaml

from nlplab.classic.bayesopt import BayesianOptimizer
from nlplab.errors import ConfigError
from nlplab.io import atomic_write, atomic_write_text
from nlplab.lab.base import markdown_table, plt_backend
from nlplab.train.config import SELECTION_METRICS, TrainConfig, add_recipe_arguments, load_config, read_yaml
from nlplab.train.trainer import task_class, train

SEARCHES = ("grid", "random", "bayes", "gp")
MINIMISED = ("loss", "ppl")
STUDY_NAME = "nlplab-tune"
FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


@dataclass(frozen=True)
class Param:
    """One searched option: a range [low, high] (int when both ends are ints; `log` for a log scale) or choices."""

    name: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[Any, ...] | None = None

    @property
    def is_int(self) -> bool:
        return isinstance(self.low, int) and isinstance(self.high, int)

    def distribution(self) -> optuna.distributions.BaseDistribution:
        if self.choices is not None:
            return optuna.distributions.CategoricalDistribution(list(self.choices))
        if self.is_int:
            return optuna.distributions.IntDistribution(self.low, self.high, log=self.log)
        return optuna.distributions.FloatDistribution(self.low, self.high, log=self.log)

    def suggest(self, trial: optuna.Trial) -> Any:
        if self.choices is not None:
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.is_int:
            return trial.suggest_int(self.name, self.low, self.high, log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, log=self.log)

    def grid(self, k: int) -> list[Any]:
        """Every choice, or the centres of k equal cells of the range (on a log scale when log; distinct ints)."""
        if self.choices is not None:
            return list(self.choices)
        values = [self.from_unit((i + 0.5) / k) for i in range(k)]
        return sorted(set(values)) if self.is_int else values

    def from_unit(self, u: float) -> Any:
        """The value at position u ∈ [0, 1] of the parameter's axis."""
        if self.choices is not None:
            return self.choices[min(int(u * len(self.choices)), len(self.choices) - 1)]
        value = (math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low))) if self.log
                 else self.low + u * (self.high - self.low))
        return min(max(round(value) if self.is_int else value, self.low), self.high)

    def to_unit(self, value: Any) -> float:
        if self.choices is not None:
            return (self.choices.index(value) + 0.5) / len(self.choices)
        if self.log:
            return (math.log(value) - math.log(self.low)) / (math.log(self.high) - math.log(self.low))
        return (value - self.low) / (self.high - self.low)


def read_space(path: str | Path) -> dict[str, Param]:
    """The SPACE file as {option: Param}; ConfigError naming the file and the entry when one is not valid."""
    known = TrainConfig.fields()
    space: dict[str, Param] = {}
    for key, entry in read_yaml(path).items():
        name, where = str(key).replace("-", "_"), f"{path}: {key}"
        if name not in known:
            raise ConfigError(f"{where}: not an option of `nlplab train`; valid options: {', '.join(known)}")
        if not isinstance(entry, dict) or not ({"choices"} <= set(entry) or {"low", "high"} <= set(entry)):
            raise ConfigError(f"{where}: write {{low: A, high: B}} (optionally log: true) or {{choices: [A, B, ...]}}")
        extra = set(entry) - {"low", "high", "log", "choices"}
        if extra or ("choices" in entry and len(entry) > 1):
            raise ConfigError(f"{where}: unexpected keys {sorted(extra or set(entry) - {'choices'})}; a range takes "
                              "low, high and log, a list takes choices alone")
        if "choices" in entry:
            if not isinstance(entry["choices"], list) or not entry["choices"]:
                raise ConfigError(f"{where}: choices must be a non-empty list")
            space[name] = Param(name, choices=tuple(entry["choices"]))
            continue
        low, high, log = entry["low"], entry["high"], entry.get("log", False)
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)):
            raise ConfigError(f"{where}: low and high must be numbers (write 1.0e-4, not 1e-4, for YAML)")
        if not low < high:
            raise ConfigError(f"{where}: empty range (low {low} is not below high {high}); use choices: [{low}] to fix a value")
        if log and low <= 0:
            raise ConfigError(f"{where}: a log range needs low > 0")
        space[name] = Param(name, low, high, bool(log))
    if not space:
        raise ConfigError(f"{path}: the search space is empty; add at least one option")
    return space


def parse_train_flags(tokens: Sequence[str]) -> dict[str, Any]:
    """`nlplab train` flags (`--lr 0.01`, `--lr=0.01`, `--kernel-sizes 2,3`, `--crf` / `--no-crf`), parsed by the
    same arguments as `nlplab train` (`add_recipe_arguments`), as overrides {option: text} (True / False for the
    switches); `load_config` converts the texts to the options' types."""
    parser = argparse.ArgumentParser(prog="nlplab train", add_help=False, allow_abbrev=False, exit_on_error=False)
    add_recipe_arguments(parser)
    try:
        given, unknown = parser.parse_known_args([t for t in tokens if t != "--"])
    except argparse.ArgumentError as e:
        raise ConfigError(f"{e.argument_name} needs a value" if "expected one argument" in e.message else str(e)) from None
    if unknown:
        flag = unknown[0]
        raise ConfigError(f"{flag.partition('=')[0]}: not an option of `nlplab train`; see `nlplab train --help`"
                          if flag.startswith("--") else f"expected a flag of `nlplab train` after the tune options, got {flag!r}")
    return {name: value for name, value in vars(given).items() if value is not None}


def search_grid(space: dict[str, Param], trials: int) -> dict[str, list[Any]]:
    """Every choice times K values per range, K as large as the trial budget allows (at least 1)."""
    ranges = [p for p in space.values() if p.choices is None]
    fixed = math.prod(len(p.choices) for p in space.values() if p.choices is not None)
    k = max(1, int((trials / fixed) ** (1 / len(ranges)) + 1e-9)) if ranges else 1
    return {name: p.grid(k) for name, p in space.items()}


class GPSampler(optuna.samplers.BaseSampler):
    """optuna's sampler interface over `nlplab.classic.bayesopt`: random points for the first `n_initial`
    finished trials, then the maximiser of expected improvement under a GP fitted to the finished trials — a pruned
    trial counts with the dev figure of its last epoch, so the GP learns to avoid where the pruner stopped it."""

    def __init__(self, space: dict[str, Param], seed: int = 0, n_initial: int = 5) -> None:
        self.space, self.seed, self.n_initial = space, seed, n_initial
        self.random = optuna.samplers.RandomSampler(seed)

    def infer_relative_search_space(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
        return {name: p.distribution() for name, p in self.space.items()}

    def sample_relative(self, study: optuna.Study, trial: optuna.trial.FrozenTrial, search_space: dict[str, Any]) -> dict[str, Any]:
        done = [t for t in study.get_trials(deepcopy=False, states=FINISHED)
                if t.value is not None and set(self.space) <= set(t.params)]
        if len(done) < self.n_initial:
            return {}
        optimizer = BayesianOptimizer(len(self.space), n_initial=1, seed=self.seed + trial.number)
        sign = -1.0 if study.direction == optuna.study.StudyDirection.MAXIMIZE else 1.0
        for t in done:
            optimizer.tell(np.array([p.to_unit(t.params[name]) for name, p in self.space.items()]), sign * t.value)
        u = optimizer.ask()
        return {name: p.from_unit(float(x)) for (name, p), x in zip(self.space.items(), u)}

    def sample_independent(self, study: optuna.Study, trial: optuna.trial.FrozenTrial, param_name: str,
                           param_distribution: optuna.distributions.BaseDistribution) -> Any:
        return self.random.sample_independent(study, trial, param_name, param_distribution)


def make_sampler(search: str, space: dict[str, Param], trials: int, seed: int) -> optuna.samplers.BaseSampler:
    if search == "grid":
        return optuna.samplers.GridSampler(search_grid(space, trials), seed=seed)
    if search == "random":
        return optuna.samplers.RandomSampler(seed)
    if search == "bayes":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(5, max(2, trials // 4)))
    return GPSampler(space, seed, n_initial=min(5, max(2, trials // 4)))


class Pruned(Exception):
    """Raised from the per-epoch callback to stop a trial the pruner gave up on."""


@dataclass
class TuneResult:
    study: optuna.Study
    rows: list[dict[str, Any]]
    best: dict[str, Any] | None
    metric: str


def tune(config: str | Path | None, space: dict[str, Param], search: str, trials: int, out: str | Path,
         metric: str | None = None, jobs: int = 1, overrides: dict[str, Any] | None = None, seed: int = 0,
         prune: bool = True, progress: bool | None = False,
         train_fn: Callable[..., dict[str, Any]] = train) -> TuneResult:
    """Search `space` over the recipe `config` (+ `overrides`) for `trials` finished trials into study folder `out`
    (continuing the study there if any); write STUDY/trials.md, trials.json, best.yaml and the plots."""
    if search not in SEARCHES:
        raise ConfigError(f"--search must be one of {', '.join(SEARCHES)}, not {search!r}")
    if trials < 1 or jobs < 1:
        raise ConfigError("--trials and --jobs must be >= 1")
    overrides = dict(overrides or {})
    clash = set(overrides) & set(space)
    if clash:
        raise ConfigError(f"{', '.join(sorted(clash))}: both searched (SPACE) and fixed by a flag; drop one")
    base = load_config(config, {**overrides, **{name: p.from_unit(0.5) for name, p in space.items()}})  # fail early
    metric = metric or default_metric(base)
    direction = "minimize" if metric in MINIMISED else "maximize"
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    settings = {"search": search, "space": {n: p.__dict__ for n, p in space.items()}, "metric": metric,
                "config": str(config) if config else None, "overrides": overrides}
    storage = f"sqlite:///{(out / 'study.db').resolve()}"
    study = optuna.create_study(storage=storage, study_name=STUDY_NAME, load_if_exists=True, direction=direction,
                                sampler=optuna.samplers.RandomSampler(seed),
                                pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=2) if prune
                                else optuna.pruners.NopPruner())
    stored = study.user_attrs.get("settings")
    if stored is None:
        study.set_user_attr("settings", json.loads(json.dumps(settings)))
    elif stored != json.loads(json.dumps(settings)):
        changed = ", ".join(k for k in settings if json.loads(json.dumps(settings[k])) != stored.get(k))
        raise ConfigError(f"{out}: holds a study with other settings ({changed}); continue it with the same "
                          "command or choose another --out")
    retry_interrupted(study)
    study.sampler = make_sampler(search, space, trials, seed + len(study.trials))
    if search == "grid":
        trials = min(trials, math.prod(len(v) for v in search_grid(space, trials).values()))

    def objective(trial: optuna.Trial) -> float:
        params = {name: p.suggest(trial) for name, p in space.items()}
        run_dir = out / "trials" / f"{trial.number:04d}"
        trial.set_user_attr("run", str(run_dir.relative_to(out)))

        def on_epoch_end(epoch: int, row: dict[str, Any]) -> None:
            if f"val_{metric}" not in row:
                names = [k[4:] for k in row if k.startswith("val_")]
                raise ConfigError(f"--metric {metric}: not a dev figure of this task; choose one of {', '.join(names)}")
            trial.report(float(row[f"val_{metric}"]), epoch)
            if trial.should_prune():
                raise Pruned(epoch)

        try:
            metrics = train_fn(load_config(config, {**overrides, **params}), run_dir, on_epoch_end=on_epoch_end,
                               progress=progress)
        except Pruned as e:
            trial.set_user_attr("epochs", int(str(e)))
            raise optuna.TrialPruned(f"pruned after epoch {e}") from None
        trial.set_user_attr("epochs", metrics.get("epochs_run"))
        trial.set_user_attr("test", {k: v for k, v in metrics["test"].items() if isinstance(v, (int, float))})
        return float(metrics["dev"][metric])

    remaining = trials - sum(t.state in FINISHED for t in study.trials)
    if remaining > 0:
        study.optimize(objective, n_trials=remaining, n_jobs=jobs)
    return write_report(study, out, metric, config, overrides)


def default_metric(cfg: TrainConfig) -> str:
    """The dev figure the task selects its best epoch by."""
    return cfg.metric if cfg.task in SELECTION_METRICS else task_class(cfg.task).metric


def retry_interrupted(study: optuna.Study) -> None:
    """Trials an interruption cut short (left running, or failed by Ctrl-C) go back in the queue with the same
    parameters, once each."""
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        study.tell(t.number, state=optuna.trial.TrialState.FAIL)
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get("retry_of") for t in trials}
    for t in trials:
        if t.state == optuna.trial.TrialState.FAIL and t.number not in retried and t.params:
            study.enqueue_trial(t.params, user_attrs={"retry_of": t.number})


def write_report(study: optuna.Study, out: Path, metric: str, config: str | Path | None,
                 overrides: dict[str, Any]) -> TuneResult:
    """STUDY/trials.md and trials.json (one row per trial), best.yaml (the best trial's recipe) and the plots."""
    rows = [{"trial": t.number, "state": t.state.name.lower(), **t.params,
             f"dev {metric}": t.value if t.value is not None else float("nan"),
             "epochs": t.user_attrs.get("epochs"), "seconds": round(t.duration.total_seconds(), 1) if t.duration else None,
             "run": t.user_attrs.get("run")} for t in study.trials]
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    best = None
    if complete:
        trial = study.best_trial
        recipe = load_config(config, {**overrides, **trial.params}).to_dict()
        best = {"trial": trial.number, "value": trial.value, "params": trial.params, "run": trial.user_attrs.get("run"),
                "test": trial.user_attrs.get("test", {})}
        atomic_write_text(out / "best.yaml", f"# nlplab tune: best of {len(complete)} complete trials, trial {trial.number}, "
                          f"dev {metric} {trial.value:.4f}; train it with `nlplab train --config {out / 'best.yaml'} --out RUN`\n"
                          + yaml.safe_dump(recipe, allow_unicode=True, sort_keys=False))
    atomic_write_text(out / "trials.json", json.dumps({"metric": metric, "direction": study.direction.name.lower(),
                                                       "best": best, "trials": rows}, ensure_ascii=False, indent=2) + "\n")
    atomic_write_text(out / "trials.md", markdown_table(rows))
    plot_study(study, out, metric)
    return TuneResult(study, rows, best, metric)


def plot_study(study: optuna.Study, out: Path, metric: str) -> None:
    """out/history.png (each trial's value, best so far) and out/importances.png (fANOVA parameter importances,
    when at least two trials completed)."""
    import matplotlib.pyplot as plt

    plt_backend()
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        return
    values = np.array([t.value for t in complete])
    best = np.maximum.accumulate(values) if study.direction == optuna.study.StudyDirection.MAXIMIZE else np.minimum.accumulate(values)
    fig, ax = plt.subplots(figsize=(6, 4))
    numbers = [t.number for t in complete]
    ax.plot(numbers, values, "o", label="trial")
    ax.step(numbers, best, where="post", label="best so far")
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED and t.intermediate_values]
    if pruned:
        ax.plot([t.number for t in pruned], [t.intermediate_values[max(t.intermediate_values)] for t in pruned], "x",
                color="grey", label="pruned (last epoch)")
    ax.set_xlabel("trial")
    ax.set_ylabel(f"dev {metric}")
    ax.legend()
    save_figure(fig, out / "history.png")
    if len(complete) < 2 or len({tuple(sorted(t.params.items())) for t in complete}) < 2:
        return
    importances = optuna.importance.get_param_importances(study)
    fig, ax = plt.subplots(figsize=(6, 0.5 + 0.4 * len(importances)))
    ax.barh(list(importances)[::-1], list(importances.values())[::-1])
    ax.set_xlabel(f"importance for dev {metric} (fANOVA)")
    save_figure(fig, out / "importances.png")


def save_figure(fig: Any, path: Path) -> None:
    import matplotlib.pyplot as plt

    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight"))
    finally:
        plt.close(fig)
