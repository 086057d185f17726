"""The training loop, its tasks, metrics, checkpoints and curves."""

from nlplab.train.config import TrainConfig, load_config
from nlplab.train.trainer import train

__all__ = ["TrainConfig", "load_config", "train"]
