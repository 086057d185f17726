"""word2vec as a task of the trainer (`nlplab train --task word2vec --model skipgram|cbow`).

The corpus's documents are cut into words by the pre-tokenization of `--tokenizer` (word: jieba); the vocabulary
keeps the words seen `--min-freq` times (at most `--vocab-size`). Each training step is the hand-written sparse SGD
of `nlplab.models.word2vec` on one batch of (input, target, noise) examples, at the learning rate of the loop's
schedule (the C tool's is `--optimizer sgd --schedule linear`); `update` applies it, so nothing back-propagates
(one process: no --strategy).
An epoch's examples depend on its random subsampling and windows: every epoch is cut into at most the number of
batches of the first one (they differ by a fraction of a percent), so that the schedule knows its length.

The run directory holds, besides the loop's files, `vectors.txt` (the input vectors in the word2vec text format).
Validation: the mean negative-sampling loss on the dev documents' examples, drawn with a fixed seed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from nlplab.data.batching import num_batches
from nlplab.data.corpora import load_corpus
from nlplab.io import atomic_write_text
from nlplab.models.word2vec import Word2Vec, Word2VecConfig, build_vocab, noise_distribution
from nlplab.text import build_tokenizer
from nlplab.train.config import TrainConfig
from nlplab.train.pretrained import VECTORS
from nlplab.train.trainer import Task

VALIDATION_EXAMPLES = 200_000


def word2vec_config(cfg: TrainConfig) -> Word2VecConfig:
    return Word2VecConfig(algo=cfg.model, dim=cfg.embed_dim, window=cfg.w2v_window, negative=cfg.negatives,
                          min_count=cfg.min_freq, max_vocab=cfg.vocab_size, sample=cfg.subsample, lr=cfg.lr,
                          epochs=cfg.epochs, batch_size=cfg.batch_size, seed=cfg.seed)


class Word2VecTask(Task):
    """Documents -> word vectors; selects the epoch with the lowest validation loss."""

    metric, mode, manual_update = "loss", "min", True

    def __init__(self, cfg: TrainConfig, run_dir: Path, resume: bool, device: torch.device) -> None:
        super().__init__(cfg, run_dir, resume, device)
        corpus = load_corpus(cfg.data)
        splitter = build_tokenizer(cfg.tokenizer)
        sentences = {name: [splitter.words(doc) for doc in corpus.split(name)] for name in ("train", "dev", "test")}
        words, counts = build_vocab(sentences["train"], cfg.min_freq, cfg.vocab_size)
        self.shape = word2vec_config(cfg)
        self.model = Word2Vec(self.shape, words, counts).to(device)
        self.streams = {name: self.model.encode(s) for name, s in sentences.items()}
        self.noise = noise_distribution(self.model.counts.cpu(), self.shape.noise_power)
        first = self.model.epoch_examples(*self.streams["train"], torch.Generator().manual_seed(cfg.seed))
        self.steps = num_batches(len(first[1]), cfg.batch_size)

    def save_meta(self, run_dir: Path) -> None:
        atomic_write_text(run_dir / "model.json", json.dumps({"model": self.cfg.model, **asdict(self.shape),
                                                              "vocab_size": len(self.model.words)}))

    def num_train_batches(self) -> int:
        return self.steps

    def examples(self, split: str, generator: torch.Generator) -> Iterable[dict[str, Any]]:
        """Batches of one pass over a split's examples, with their noise words, in the order `generator` draws."""
        inputs, targets, mask = self.model.epoch_examples(*self.streams[split], generator)
        size, k = self.cfg.batch_size, self.shape.negative
        for start in range(0, len(targets), size):
            rows = slice(start, start + size)
            n = len(targets[rows])
            noise = torch.multinomial(self.noise, n * k, replacement=True, generator=generator).view(n, k)
            yield {"inputs": inputs[rows], "targets": targets[rows], "noise": noise,
                   "mask": None if mask is None else mask[rows]}

    def train_batches(self, generator: torch.Generator) -> Iterable[dict[str, Any]]:
        for k, batch in enumerate(self.examples("train", generator)):
            if k == self.steps:
                return
            yield batch

    def step(self, batch: dict[str, Any]) -> tuple[Tensor, int, dict[str, float]]:
        loss, self._grad_in, self._grad_out = self.model.table_grads(batch["inputs"], batch["targets"], batch["noise"],
                                                                     batch["mask"])
        self._count = len(batch["targets"])
        return loss, self._count, {}

    def update(self, lr: float) -> None:
        """The C tool's step: SGD on the summed loss of the batch (each pair as if updated alone)."""
        self.model.apply_grads(self._grad_in, self._grad_out, lr * self._count)

    def loss_on(self, split: str) -> float:
        total, count = 0.0, 0
        for batch in self.examples(split, torch.Generator().manual_seed(self.cfg.seed)):
            batch = {k: v.to(self.device) if isinstance(v, Tensor) else v for k, v in batch.items()}
            with torch.no_grad():
                n = len(batch["targets"])
                total += self.model.loss(batch["inputs"], batch["targets"], batch["noise"], batch["mask"]).item() * n
            count += n
            if count >= VALIDATION_EXAMPLES:
                break
        return total / max(count, 1)

    def validate(self) -> dict[str, float]:
        return {"loss": self.loss_on("dev")}

    def describe(self) -> dict[str, Any]:
        return {"vocab_size": len(self.model.words), "train_tokens": len(self.streams["train"][0])}

    def final_metrics(self) -> dict[str, Any]:
        """Dev and test losses of the selected vectors, which are also written to vectors.txt."""
        vectors = self.model.vectors()
        vectors.save(self.run_dir / VECTORS)
        return {"dev": {"loss": self.loss_on("dev")}, "test": {"loss": self.loss_on("test")},
                "neighbours": {w: vectors.most_similar(w, 5) for w in probe_words(self.model.words)}}


def probe_words(words: Sequence[str], count: int = 5) -> list[str]:
    """A few frequent words of two characters or more, whose neighbours say whether the vectors learned anything."""
    return [w for w in words if len(w) >= 2][:count]
