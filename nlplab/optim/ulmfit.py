"""ULMFiT's fine-tuning of a pre-trained model (Howard & Ruder, 2018), for a model cut into layer groups
g_0 (bottom: the embeddings) … g_{L-1} (top: the new head):

    discriminative learning rates   lr_l = lr / factor^(L-1-l), factor = 2.6: each group learns 2.6x slower than
                                    the one above it, so the general features low in the network change least
    gradual unfreezing              epoch e = 1, 2, … trains the top min(e, L) groups; the others are frozen
                                    (requires_grad False: no gradient, so optimizers leave them as they are)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from nlplab.errors import ConfigError

ULMFIT_FACTOR = 2.6


def discriminative_groups(groups: Sequence[Sequence[nn.Parameter]], lr: float, factor: float = ULMFIT_FACTOR) -> list[dict[str, Any]]:
    """Optimizer param groups, bottom first: {"params": g_l, "lr": lr / factor^(L-1-l)}; factor 1 gives one lr."""
    if factor < 1:
        raise ConfigError(f"the discriminative learning-rate factor must be >= 1 (2.6 in ULMFiT), got {factor}")
    top = len(groups) - 1
    return [{"params": list(g), "lr": lr / factor ** (top - depth)} for depth, g in enumerate(groups)]


def unfreeze_top(groups: Sequence[Sequence[nn.Parameter]], epoch: int) -> int:
    """Gradual unfreezing: let the top min(epoch, L) groups learn and freeze the rest; returns how many learn."""
    if epoch < 1:
        raise ConfigError(f"epochs count from 1, got {epoch}")
    trainable = min(epoch, len(groups))
    for depth, group in enumerate(groups):
        for p in group:
            p.requires_grad_(depth >= len(groups) - trainable)
    return trainable
