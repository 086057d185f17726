"""The training loop, evaluation, metrics, checkpoints and curves."""

from nlplab.train.classify import Run
from nlplab.train.config import TrainConfig, load_config
from nlplab.train.trainer import train

__all__ = ["Run", "TrainConfig", "load_config", "train"]
