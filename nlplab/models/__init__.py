"""Task models assembled from `nlplab.nn`."""

from nlplab.models.classifier import MODELS, ClassifierConfig, TextClassifier

__all__ = ["MODELS", "ClassifierConfig", "TextClassifier"]
