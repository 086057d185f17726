"""Direct preference optimisation (Rafailov et al. 2023): the policy learns from preference pairs directly, with a
frozen copy of the starting LM as reference and no reward model (formulas in `nlplab.rlhf.dpo`):

    loss = −mean log σ(β · [(log π(y_w|x) − log π_ref(y_w|x)) − (log π(y_l|x) − log π_ref(y_l|x))])

log π(y|x) sums the response's token log-probabilities (IPO averages them, as TRL does). The figures are those of
the implicit reward β·(log π − log π_ref): accuracy is the share of pairs it ranks right, margin its mean gap.
Dropout is off, so that π = π_ref exactly before the first step. The run selects the epoch of the lowest dev loss;
it is a causal LM like an sft run.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from torch import Tensor, nn

from nlplab.data.batching import Batch
from nlplab.models.lm import response_logprobs
from nlplab.rlhf import dpo_loss
from nlplab.train.config import TrainConfig
from nlplab.train.stage import PreferenceTask


def sequence_logprobs(model: nn.Module, batch: Batch, average: bool = False) -> Tensor:
    """log π(y|x) of each row of a preference batch (2N,): the response's token log-probabilities summed, or
    averaged over its tokens."""
    logp, _ = response_logprobs(model, batch["ids"], batch["response_mask"])
    total = logp.sum(1)
    return total / batch["response_mask"][:, 1:].sum(1) if average else total


class DPOTask(PreferenceTask):
    """Preference pairs -> the policy itself; see the module docstring."""

    keeps_dropout = False
    metric, mode = "loss", "min"

    def __init__(self, cfg: TrainConfig, run_dir: Path, resume: bool, device: torch.device) -> None:
        super().__init__(cfg, run_dir, resume, device)
        self.model = self.start.model.to(device)
        self.reference = copy.deepcopy(self.model).requires_grad_(False).eval()

    def pair_figures(self, batch: Batch) -> tuple[Tensor, Tensor, Tensor]:
        average = self.cfg.dpo_loss == "ipo"
        chosen, rejected = sequence_logprobs(self.model, batch, average).chunk(2)
        with torch.no_grad():
            ref_chosen, ref_rejected = sequence_logprobs(self.reference, batch, average).chunk(2)
        return dpo_loss(chosen, rejected, ref_chosen, ref_rejected, self.cfg.beta, self.cfg.dpo_loss,
                        self.cfg.label_smoothing)
