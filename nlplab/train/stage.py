"""What the alignment stages share (sft, reward, ppo, dpo): the causal LM they start from (`init_from`) and its
tokenizer, one row per (prompt, response), preference pairs in batches, and the files a run keeps.

A row is  [eos] prompt response [eos]  cut to window_size tokens: the end-of-document token opens it as it opens
every document of the language model's training stream (`nlplab.train.lm`), so a row reads to the starting LM as
one more document, and the closing eos teaches where a response ends.
"""

from __future__ import annotations

import json
from abc import abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from nlplab.data.batching import Batch, batch_rows, num_batches
from nlplab.data.preferences import PreferencePair, Row, encode_row, load_preferences, preference_batch
from nlplab.io import atomic_write_text
from nlplab.runtime import forward_batches
from nlplab.text import Tokenizer
from nlplab.train.config import TrainConfig
from nlplab.train.init_from import load_starting_lm
from nlplab.train.lm import end_token_id
from nlplab.train.trainer import Task

PreferenceRows = tuple[Row, Row, float]
"""(chosen row, rejected row, margin)"""
PairFigures = Callable[[Batch], tuple[Tensor, Tensor, Tensor]]
"""A preference batch -> (losses (N,), chosen scores (N,), rejected scores (N,))."""


def stage_row(tokenizer: Tokenizer, prompt: str, response: str, window: int) -> Row:
    """[eos] prompt response [eos], the response cut to fit `window` tokens."""
    eos = end_token_id(tokenizer)
    return encode_row(tokenizer.encode(prompt), tokenizer.encode(response), eos, eos, window)


def preference_rows(tokenizer: Tokenizer, pairs: Sequence[PreferencePair], window: int) -> list[PreferenceRows]:
    return [(stage_row(tokenizer, p.prompt, p.chosen, window), stage_row(tokenizer, p.prompt, p.rejected, window), p.margin)
            for p in pairs]


def preference_batches(pairs: Sequence[PreferenceRows], batch_size: int, pad_id: int,
                       generator: torch.Generator | None = None, bucket: int = 0) -> Iterator[Batch]:
    """Pairs in batches of batch_size (`preference_batch`), shuffled and bucketed by length when given a generator."""
    lengths = [max(len(chosen[0]), len(rejected[0])) for chosen, rejected, _ in pairs]
    shuffle = generator is not None
    for rows in batch_rows(lengths, batch_size, shuffle, generator, bucket if shuffle else 0):
        picked = [pairs[i] for i in rows]
        yield preference_batch([p[0] for p in picked], [p[1] for p in picked], pad_id, [p[2] for p in picked])


def preference_report(model: nn.Module, figures: PairFigures, pairs: Sequence[PreferenceRows], pad_id: int,
                      device: torch.device, batch_size: int = 64) -> dict[str, float]:
    """Mean loss, accuracy (the share of pairs whose chosen response scores higher) and margin (chosen minus rejected)
    of a model over preference pairs, in eval mode."""
    sums = {"loss": 0.0, "accuracy": 0.0, "margin": 0.0}
    forward = lambda b: (None, figures(b))  # noqa: E731
    for _, _, (losses, chosen, rejected) in forward_batches(model, preference_batches(pairs, batch_size, pad_id), device,
                                                             forward=forward):
        sums["loss"] += losses.sum().item()
        sums["accuracy"] += (chosen > rejected).sum().item()
        sums["margin"] += (chosen - rejected).sum().item()
    return {**{k: v / len(pairs) for k, v in sums.items()}, "pairs": len(pairs)}


class StageTask(Task):
    """A stage over the causal LM `cfg.init_from`. `keeps_dropout` False (ppo, dpo) builds it without dropout: their
    ratios to the rollout's or the reference's probabilities must be exactly 1 before the first update."""

    keeps_dropout = True

    def __init__(self, cfg: TrainConfig, run_dir: Path, resume: bool, device: torch.device) -> None:
        super().__init__(cfg, run_dir, resume, device)
        self.start = load_starting_lm(cfg.init_from, cfg.window_size, cfg.dropout if self.keeps_dropout else 0.0, cfg.impl)
        self.tokenizer = self.start.tokenizer
        self.eos = end_token_id(self.tokenizer)

    def encode(self, prompt: str, response: str) -> Row:
        return stage_row(self.tokenizer, prompt, response, self.cfg.window_size)

    def model_json(self) -> dict[str, Any]:
        """What model.json holds: the starting LM's shape."""
        return asdict(self.start.shape)

    def save_meta(self, run_dir: Path) -> None:
        self.tokenizer.save(run_dir / "tokenizer")
        atomic_write_text(run_dir / "model.json", json.dumps(self.model_json()))

    @abstractmethod
    def evaluate(self, split: str) -> dict[str, float]:
        """The stage's figures on a split of `self.data` (train, dev or test)."""

    def final_metrics(self) -> dict[str, Any]:
        dev = self.evaluate("dev")
        return {"dev": dev, "test": dev if self.data.test is self.data.dev else self.evaluate("test")}


class PreferenceTask(StageTask):
    """A stage trained on preference pairs (reward, dpo): each batch holds N chosen rows then N rejected ones
    (`preference_batch`); a subclass scores them (`pair_figures`). Reports the loss, the share of pairs ranked
    right (accuracy) and the mean score margin, chosen minus rejected."""

    metric, mode = "accuracy", "max"

    def __init__(self, cfg: TrainConfig, run_dir: Path, resume: bool, device: torch.device) -> None:
        super().__init__(cfg, run_dir, resume, device)
        self.data = load_preferences(cfg.data, cfg.dev, cfg.max_chars)
        self.pairs = {split: preference_rows(self.tokenizer, self.data.split(split), cfg.window_size)
                      for split in ("train", "dev", "test")}

    @abstractmethod
    def pair_figures(self, batch: Batch) -> tuple[Tensor, Tensor, Tensor]:
        """(losses (N,), chosen scores (N,), rejected scores (N,)) of a preference batch."""

    def num_train_batches(self) -> int:
        return num_batches(len(self.pairs["train"]), self.cfg.batch_size)

    def train_batches(self, generator: torch.Generator) -> Iterator[Batch]:
        return preference_batches(self.pairs["train"], self.cfg.batch_size, self.tokenizer.pad_id, generator, self.cfg.bucket)

    def step(self, batch: Batch) -> tuple[Tensor, int, dict[str, float]]:
        losses, chosen, rejected = self.pair_figures(batch)
        return losses.mean(), len(losses), {"accuracy": (chosen > rejected).sum().item(),
                                            "margin": (chosen - rejected).sum().item()}

    def evaluate(self, split: str) -> dict[str, float]:
        return preference_report(self.model, self.pair_figures, self.pairs[split], self.tokenizer.pad_id, self.device)

    def validate(self) -> dict[str, float]:
        val = self.evaluate("dev")
        return {k: val[k] for k in ("loss", "accuracy", "margin")}

    def describe(self) -> dict[str, Any]:
        return {"notes": self.data.notes, "pairs": {s: len(self.pairs[s]) for s in self.pairs},
                "skipped_pairs": self.data.skipped}
