"""Optimisers (SGD, momentum, Nesterov, Adam, AdamW), L1/L2 penalties, early stopping and LR schedules."""

from nlplab.optim.adam import Adam, AdamW
from nlplab.optim.build import IMPLS, OPTIMIZERS, build_optimizer
from nlplab.optim.early_stopping import EarlyStopping
from nlplab.optim.regularization import l1_penalty, l2_penalty
from nlplab.optim.schedules import (
    SCHEDULES,
    Schedule,
    build_scheduler,
    constant,
    cosine,
    linear,
    linear_warmup,
    step_decay,
    warmup,
)
from nlplab.optim.sgd import SGD

__all__ = [
    "IMPLS",
    "OPTIMIZERS",
    "SCHEDULES",
    "SGD",
    "Adam",
    "AdamW",
    "EarlyStopping",
    "Schedule",
    "build_optimizer",
    "build_scheduler",
    "constant",
    "cosine",
    "l1_penalty",
    "l2_penalty",
    "linear",
    "linear_warmup",
    "step_decay",
    "warmup",
]
