import pytest
import torch

from nlplab.models.classifier import ClassifierConfig, TextClassifier
from nlplab.models.gpt import GPT, GPTConfig

BERT = {"vocab_size": 50, "hidden_size": 16, "num_layers": 2, "num_heads": 2, "intermediate_size": 32,
        "max_position_embeddings": 32, "dropout": 0.1}


@pytest.fixture
def tiny_classifier():
    """A factory of small random transformer classifiers (3 classes, hidden 16, 2 layers), seeded."""
    def build(seed: int = 0) -> TextClassifier:
        torch.manual_seed(seed)
        return TextClassifier(ClassifierConfig(model="transformer", vocab_size=50, num_classes=3, bert=BERT))
    return build


@pytest.fixture
def tiny_gpt():
    def build(seed: int = 0) -> GPT:
        torch.manual_seed(seed)
        return GPT(GPTConfig(vocab_size=50, block_size=24, n_layer=2, n_head=2, n_embd=16, dropout=0.1))
    return build


@pytest.fixture
def batch():
    """A labelled batch for the tiny classifier, the second row padded."""
    g = torch.Generator().manual_seed(1)
    mask = torch.arange(6) < torch.tensor([[6], [4], [6], [5]])
    ids = torch.randint(1, 50, (4, 6), generator=g).masked_fill(~mask, 0)
    return {"ids": ids, "mask": mask, "lengths": mask.sum(1), "labels": torch.tensor([0, 1, 2, 1])}
