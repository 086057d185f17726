"""Early stopping: stop training when the validation metric has not improved for ``patience`` epochs,
and give back the weights of the best epoch."""

from __future__ import annotations

import math
from typing import Any

import torch

from nlplab.errors import ConfigError


class EarlyStopping:
    """Watch one validation value per epoch and say when to stop.

    An epoch improves when ``value > best + min_delta`` (``mode="max"``, e.g. accuracy) or
    ``value < best - min_delta`` (``mode="min"``, e.g. loss); the first value always improves.
    After ``patience`` epochs in a row without improvement, :meth:`step` returns True.

    Attributes: ``best`` (best value so far, None before the first step), ``best_epoch`` (1-based number of
    the :meth:`step` call that gave it), ``bad_epochs`` (epochs since then), ``epoch`` (calls so far), and
    ``best_state``: a CPU copy of the model's ``state_dict`` at the best epoch.
    """

    def __init__(self, patience: int, mode: str = "max", min_delta: float = 0.0) -> None:
        if patience < 1:
            raise ConfigError(f"early stopping patience must be >= 1 epoch; got {patience}")
        if mode not in ("max", "min"):
            raise ConfigError(f"early stopping mode must be 'max' (e.g. accuracy) or 'min' (e.g. loss); got {mode!r}")
        if min_delta < 0:
            raise ConfigError(f"early stopping min_delta must be >= 0; got {min_delta}")
        self.patience, self.mode, self.min_delta = patience, mode, min_delta
        self.best: float | None = None
        self.best_epoch = 0
        self.bad_epochs = 0
        self.epoch = 0
        self.best_state: dict[str, torch.Tensor] | None = None

    def improves(self, value: float) -> bool:
        """True when ``value`` beats ``best`` by more than ``min_delta`` towards ``mode`` (NaN never does)."""
        if math.isnan(value):
            return False
        if self.best is None:
            return True
        if self.mode == "max":
            return value > self.best + self.min_delta
        return value < self.best - self.min_delta

    def step(self, value: float, model: torch.nn.Module | None) -> bool:
        """Record this epoch's ``value``; keep a copy of ``model``'s weights if it is the best (None: decide only,
        as the processes of a distributed run that do not save weights); return True to stop."""
        value = float(value)
        self.epoch += 1
        if self.improves(value):
            self.best, self.best_epoch, self.bad_epochs = value, self.epoch, 0
            if model is not None:
                self.best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        else:
            self.bad_epochs += 1
        return self.bad_epochs >= self.patience

    def restore(self, model: torch.nn.Module) -> None:
        """Load the weights of the best epoch back into ``model``."""
        if self.best_state is None:
            raise RuntimeError("EarlyStopping.restore() called before any step(): there are no best weights yet")
        model.load_state_dict(self.best_state)

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: counters, best value and best weights (tensors, on CPU)."""
        return {
            "best": self.best,
            "best_epoch": self.best_epoch,
            "bad_epochs": self.bad_epochs,
            "epoch": self.epoch,
            "best_state": self.best_state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume from :meth:`state_dict`, so that the following steps decide exactly as without interruption."""
        self.best, self.best_epoch = state["best"], state["best_epoch"]
        self.bad_epochs, self.epoch = state["bad_epochs"], state["epoch"]
        best_state = state["best_state"]
        self.best_state = None if best_state is None else {k: v.to("cpu", copy=True) for k, v in best_state.items()}
