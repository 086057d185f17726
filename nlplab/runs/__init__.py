"""A trained model in use: `load_run(path)` gives the `Predictor` of an nlplab run or a Hugging Face folder."""

from nlplab.runs.base import Predictor, load_run

__all__ = ["Predictor", "load_run"]
