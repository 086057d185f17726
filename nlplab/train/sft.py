"""Supervised fine-tuning (InstructGPT's first stage): a causal LM learns to answer prompts with demonstrations.

Each (x, y) becomes the row [eos] x y [eos]; the loss is the next-token cross-entropy on the response's tokens
(and its closing eos) only — the prompt is context, not a target:

    L_SFT = −(1 / Σ|y|) Σ_(x,y) Σ_t log π(y_t | x, y_<t)

The run selects the epoch with the lowest perplexity exp(L_SFT) of the dev responses; it is a causal LM like an
lm run (generate, chat, score, eval) and the starting point of reward, ppo and dpo runs.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from nlplab.data.batching import Batch, batch_rows, num_batches
from nlplab.data.preferences import IGNORE_INDEX, Row, load_sft, sft_batch
from nlplab.models.lm import lm_loss
from nlplab.runtime import forward_batches
from nlplab.train.config import TrainConfig
from nlplab.train.stage import StageTask


class SFTTask(StageTask):
    """(prompt, response) pairs -> the LM's loss on the responses; see the module docstring."""

    metric, mode = "ppl", "min"

    def __init__(self, cfg: TrainConfig, run_dir: Path, resume: bool, device: torch.device) -> None:
        super().__init__(cfg, run_dir, resume, device)
        self.data = load_sft(cfg.data, cfg.dev, cfg.max_chars)
        self.rows: dict[str, list[Row]] = {split: [self.encode(prompt, response) for prompt, response in self.data.split(split)]
                                          for split in ("train", "dev", "test")}
        self.model = self.start.model.to(device)

    def batches(self, split: str, generator: torch.Generator | None = None) -> Iterator[Batch]:
        rows = self.rows[split]
        shuffle = generator is not None
        for picked in batch_rows([len(ids) for ids, _ in rows], self.cfg.batch_size, shuffle, generator,
                                 self.cfg.bucket if shuffle else 0):
            yield sft_batch([rows[i] for i in picked], self.tokenizer.pad_id)

    def num_train_batches(self) -> int:
        return num_batches(len(self.rows["train"]), self.cfg.batch_size)

    def train_batches(self, generator: torch.Generator) -> Iterator[Batch]:
        return self.batches("train", generator)

    def step(self, batch: Batch) -> tuple[Tensor, int, dict[str, float]]:
        loss, self._objective = lm_loss(self.model, batch["ids"], batch["targets"])
        return loss, int((batch["targets"] != IGNORE_INDEX).sum()), {}

    def objective(self, loss: Tensor) -> Tensor:
        """The loss plus the MoE balance term of a mixture-of-experts GPT (and L1/L2 when asked)."""
        return super().objective(self._objective)

    def evaluate(self, split: str) -> dict[str, float]:
        """loss (nats per response token), ppl and the number of response tokens of a split."""
        def summed(batch: Batch) -> tuple[None, Tensor]:
            logits, _ = self.model(batch["ids"])
            return None, F.cross_entropy(logits.flatten(0, 1).float(), batch["targets"].flatten(),
                                         ignore_index=IGNORE_INDEX, reduction="sum")

        nll = sum(total.item() for _, _, total in forward_batches(self.model, self.batches(split), self.device, forward=summed))
        tokens = sum(len(ids) - prompt for ids, prompt in self.rows[split])
        return {"loss": nll / tokens, "ppl": math.exp(nll / tokens), "tokens": tokens}

    def validate(self) -> dict[str, float]:
        val = self.evaluate("dev")
        return {"loss": val["loss"], "ppl": val["ppl"]}

    def describe(self) -> dict[str, Any]:
        return {"notes": self.data.notes, "examples": {s: len(self.rows[s]) for s in self.rows}}
