"""The masked language model as a task of the trainer (`nlplab train --task mlm`): BERT's pre-training by
masked-token prediction (`nlplab.data.masking`, `nlplab.models.mlm`).

Each document is encoded by the task's tokenizer (trained with [MASK] among its special tokens) and cut into pieces
of `--window-size` tokens, the inputs the transformer classifier later sees (no [CLS]/[SEP]: it mean-pools). Each
batch is corrupted afresh from the loop's per-epoch generator (`--mask-prob`, `--whole-word` over jieba words), so a
resumed run masks as an uninterrupted one. Validation masks the dev pieces with a fixed seed: its loss and
perplexity are comparable across epochs.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from nlplab.data.batching import batches, num_batches, padded_batch
from nlplab.data.corpora import load_corpus
from nlplab.data.masking import encode_words, mask_tokens
from nlplab.errors import ConfigError
from nlplab.io import atomic_write_text
from nlplab.models.encoder import BertConfig
from nlplab.models.mlm import MaskedLM
from nlplab.runtime import evaluating
from nlplab.text import Tokenizer
from nlplab.text.base import PAD, UNK
from nlplab.train.config import TrainConfig
from nlplab.train.trainer import Task, task_tokenizer

MASK = "[MASK]"
SPECIALS = (PAD, UNK, MASK)


def mlm_pieces(tokenizer: Tokenizer, documents: Iterable[str], size: int,
               whole_word: bool) -> tuple[list[list[int]], list[list[int]] | None]:
    """Every document's ids cut into pieces of `size`, and (whole-word) each token's word index within its piece."""
    pieces, words = [], []
    for doc in documents:
        ids, word_ids = encode_words(tokenizer.encode, doc) if whole_word else (tokenizer.encode(doc), None)
        for at in range(0, len(ids), size):
            pieces.append(ids[at : at + size])
            if word_ids is not None:
                words.append([w - word_ids[at] for w in word_ids[at : at + size]])
    return pieces, words if whole_word else None


class MLMTask(Task):
    """Documents -> a transformer encoder that predicts masked tokens; selects the epoch with the lowest dev loss."""

    metric, mode = "loss", "min"

    def __init__(self, cfg: TrainConfig, run_dir: Path, resume: bool, device: torch.device) -> None:
        super().__init__(cfg, run_dir, resume, device)
        corpus = load_corpus(cfg.data)
        self.tokenizer = task_tokenizer(cfg, run_dir, resume, corpus.train, special_tokens=SPECIALS)
        if MASK not in self.tokenizer.vocab:
            raise ConfigError(f"the tokenizer {cfg.tokenizer} has no {MASK} token; let nlplab train one (--tokenizer char)")
        self.mask_id = self.tokenizer.vocab[MASK]
        self.specials = torch.tensor(sorted(self.tokenizer.vocab[t] for t in SPECIALS if t in self.tokenizer.vocab))
        self.ordinary = (int(self.specials.max()) + 1, self.tokenizer.vocab_size)
        self.splits = {name: mlm_pieces(self.tokenizer, corpus.split(name), cfg.window_size, cfg.whole_word)
                       for name in ("train", "dev", "test")}
        if cfg.hidden_size % cfg.heads:
            raise ConfigError(f"hidden_size {cfg.hidden_size} (--hidden-size) must be divisible by heads {cfg.heads} (--heads)")
        self.shape = BertConfig(vocab_size=self.tokenizer.vocab_size, hidden_size=cfg.hidden_size, num_layers=cfg.layers,
                                num_heads=cfg.heads, intermediate_size=4 * cfg.hidden_size,
                                max_position_embeddings=cfg.window_size, dropout=cfg.dropout,
                                pad_token_id=self.tokenizer.pad_id, impl=cfg.impl)
        torch.manual_seed(cfg.seed)
        self.model = MaskedLM(self.shape).to(device)

    def save_meta(self, run_dir: Path) -> None:
        self.tokenizer.save(run_dir / "tokenizer")
        atomic_write_text(run_dir / "model.json", json.dumps({"model": self.cfg.model, "bert": asdict(self.shape)}))

    def num_train_batches(self) -> int:
        return num_batches(len(self.splits["train"][0]), self.cfg.batch_size)

    def masked(self, split: str, generator: torch.Generator, shuffle: bool) -> Iterable[dict[str, Any]]:
        """Batches {"ids", "mask", "labels"} of a split's pieces, corrupted with `generator`."""
        pieces, words = self.splits[split]
        for batch in batches(pieces, None, self.cfg.batch_size, self.tokenizer.pad_id, shuffle=shuffle,
                             generator=generator, bucket=self.cfg.bucket if shuffle else 0):
            maskable = batch["mask"] & ~torch.isin(batch["ids"], self.specials)
            word_ids = padded_batch([words[r] for r in batch["rows"].tolist()], 0)["ids"] if words is not None else None
            inputs, labels = mask_tokens(batch["ids"], maskable, self.mask_id, self.ordinary, generator,
                                         self.cfg.mask_prob, word_ids)
            yield {"ids": inputs, "mask": batch["mask"], "labels": labels}

    def train_batches(self, generator: torch.Generator) -> Iterable[dict[str, Any]]:
        return self.masked("train", generator, shuffle=True)

    def step(self, batch: dict[str, Any]) -> tuple[Tensor, int, dict[str, float]]:
        loss, logits = self.model(batch["ids"], batch["mask"], batch["labels"])
        chosen = batch["labels"][batch["labels"] != -100]
        return loss, max(len(chosen), 1), {"accuracy": (logits.argmax(-1) == chosen).sum().item()}

    def evaluate(self, split: str) -> dict[str, float]:
        total, right, count = 0.0, 0, 0
        with evaluating(self.model):
            for batch in self.masked(split, torch.Generator().manual_seed(self.cfg.seed), shuffle=False):
                batch = {k: v.to(self.device) for k, v in batch.items()}
                loss, logits = self.model(batch["ids"], batch["mask"], batch["labels"])
                chosen = batch["labels"][batch["labels"] != -100]
                if len(chosen):
                    total += loss.item() * len(chosen)
                    right += (logits.argmax(-1) == chosen).sum().item()
                    count += len(chosen)
        loss = total / max(count, 1)
        return {"loss": loss, "ppl": math.exp(loss), "accuracy": right / max(count, 1), "predicted": count}

    def validate(self) -> dict[str, float]:
        return self.evaluate("dev")

    def describe(self) -> dict[str, Any]:
        return {"pieces": {name: len(p) for name, (p, _) in self.splits.items()}, "vocab_size": self.tokenizer.vocab_size}

    def final_metrics(self) -> dict[str, Any]:
        return {"dev": self.evaluate("dev"), "test": self.evaluate("test")}
