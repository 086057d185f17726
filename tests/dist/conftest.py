"""What the distributed tests share: a tiny float64 GPT, its next-token loss in float64, and fixed batches."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from nlplab.models.gpt import GPT, GPTConfig

VOCAB = 11


def tiny_gpt(n_layer: int = 2, n_head: int = 2, n_embd: int = 8) -> GPT:
    """The same float64 GPT on every call (seed 0): the starting point of every rank and of the reference."""
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=VOCAB, block_size=8, n_layer=n_layer, n_head=n_head, n_embd=n_embd)).double()


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy in the logits' precision (lm_loss computes it in float32)."""
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten())


def lm_loss64(model: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
    """ids (B, T + 1): the model reads ids[:, :-1] and predicts ids[:, 1:]."""
    return cross_entropy(model(ids[:, :-1])[0], ids[:, 1:])


def batches(steps: int = 3, rows: int = 6) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return [torch.randint(0, VOCAB, (rows, 9), generator=generator) for _ in range(steps)]


def train_single(make_optimizer: Callable, steps: int = 3, rows: int = 6, **shape) -> dict[str, torch.Tensor]:
    """The reference: one process, the whole batch, `steps` optimizer steps; the final state dict."""
    model = tiny_gpt(**shape)
    optimizer = make_optimizer(model.parameters())
    for ids in batches(steps, rows):
        optimizer.zero_grad()
        lm_loss64(model, ids).backward()
        optimizer.step()
    return {name: t.detach().clone() for name, t in model.state_dict().items()}


def max_difference(ours: dict[str, torch.Tensor], reference: dict[str, torch.Tensor]) -> float:
    assert set(ours) == set(reference)
    return max((ours[name] - reference[name]).abs().max().item() for name in reference)


@pytest.fixture
def gpt() -> SimpleNamespace:
    return SimpleNamespace(tiny=tiny_gpt, cross_entropy=cross_entropy, loss=lm_loss64, batches=batches,
                           train_single=train_single, max_difference=max_difference)
