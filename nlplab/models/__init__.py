"""Task models assembled from `nlplab.nn`."""

from nlplab.models.classifier import MODELS, ClassifierConfig, TextClassifier
from nlplab.models.encoder import BertConfig, BertEncoder
from nlplab.models.gpt import GPT, GPTConfig
from nlplab.models.seq2seq import Seq2SeqConfig, Seq2SeqTransformer

__all__ = ["GPT", "MODELS", "BertConfig", "BertEncoder", "ClassifierConfig", "GPTConfig", "Seq2SeqConfig",
           "Seq2SeqTransformer", "TextClassifier"]
