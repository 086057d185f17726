"""Language modelling: the `lm` task of the trainer, and the perplexity a trained LM shares with it (`nlplab.runs.lm`).

Each document is tokenized and the split becomes one stream  EOS d₁ EOS d₂ EOS …  (EOS = `<|endoftext|>`).
Neural models train on non-overlapping windows of `window_size` next-token predictions; evaluation covers the
stream with windows that overlap by one token, so every token after the first is predicted exactly once:
N = Σ_d (|d| + 1) predictions, as many as the n-gram model scores (each document's tokens and its end).

    PPL = exp(−(1/N) Σᵢ log p(xᵢ | x_<i))          bits per character = −Σᵢ log₂ p(xᵢ | x_<i) / C
where C counts the non-space characters of the documents plus one end per document (for a char tokenizer C = N,
so bits per character = log₂ PPL).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nlplab.data.batching import num_batches
from nlplab.data.corpora import TextCorpus, load_corpus
from nlplab.errors import ConfigError
from nlplab.io import atomic_write_text
from nlplab.models.lm import LMConfig, build_lm, lm_loss
from nlplab.nn.functional import at_least_float32
from nlplab.runtime import forward_batches
from nlplab.text import Tokenizer
from nlplab.text.base import PAD, UNK
from nlplab.text.ngram import NGramLM
from nlplab.train.config import TrainConfig
from nlplab.train.init_from import load_starting_lm
from nlplab.train.trainer import Task, task_tokenizer
from nlplab.train.weights import check_positions

EOS = "<|endoftext|>"
NGRAM_FILE = "ngram.json"


def end_token_id(tokenizer: Tokenizer) -> int:
    """The id of the end-of-document token (`<|endoftext|>`, else `</s>` or `[SEP]`)."""
    for token in (EOS, "</s>", "[SEP]"):
        if token in tokenizer.vocab:
            return tokenizer.vocab[token]
    raise ConfigError(f"the tokenizer has no end-of-document token; train it with {EOS!r} among its special tokens")


def encode_stream(tokenizer: Tokenizer, documents: Iterable[str]) -> Tensor:
    """EOS d₁ EOS d₂ … EOS as one 1-D tensor of ids."""
    eos = end_token_id(tokenizer)
    ids = [eos]
    for doc in documents:
        ids.extend(tokenizer.encode(doc))
        ids.append(eos)
    return torch.tensor(ids, dtype=torch.long)


def count_characters(documents: Iterable[str]) -> int:
    """C of the module docstring: non-space characters plus one end per document."""
    return sum(len("".join(doc.split())) + 1 for doc in documents)


def windows(stream: Tensor, size: int) -> list[Tensor]:
    """Cut a stream into pieces of size + 1 that overlap by one token (the last may be shorter)."""
    return [stream[i : i + size + 1] for i in range(0, len(stream) - 1, size)]


def stream_nll(model: nn.Module, stream: Tensor, size: int, batch_size: int, device: torch.device) -> tuple[float, int]:
    """(Σ −log p(xᵢ | x_<i) over every token of `stream` after the first, in nats; the number of such tokens)."""
    pieces = windows(stream, size)
    full = [w for w in pieces if len(w) == size + 1]
    groups = [full[i : i + batch_size] for i in range(0, len(full), batch_size)] + [[w] for w in pieces if len(w) < size + 1]
    batches = ({"ids": torch.stack(group)} for group in groups)
    total = 0.0
    for batch, _, logits in forward_batches(model, batches, device, forward=lambda b: (None, model(b["ids"][:, :-1])[0])):
        total += F.cross_entropy(at_least_float32(logits.flatten(0, 1)), batch["ids"][:, 1:].flatten(), reduction="sum").item()
    return total, len(stream) - 1


def ngram_nll(model: NGramLM, tokenizer: Tokenizer, documents: Sequence[str]) -> tuple[float, int]:
    """(Σ −log p over the documents' tokens and ends under an n-gram model, in nats; the number of predictions)."""
    docs = [ngram_tokens(tokenizer, d) for d in documents]
    return -sum(model.sentence_logprob(d) for d in docs), sum(len(d) + 1 for d in docs)


def ngram_tokens(tokenizer: Tokenizer, text: str) -> list[str]:
    """The n-gram model's view of a text: its tokens as strings (unknown ones as [UNK])."""
    return [tokenizer.id_to_token[i] for i in tokenizer.encode(text)]


def lm_figures(nll: float, tokens: int, characters: int) -> dict[str, float]:
    return {"loss": nll / tokens, "ppl": math.exp(nll / tokens), "bits_per_char": nll / math.log(2) / characters,
            "tokens": tokens}


class LMTask(Task):
    """Raw text -> next-token prediction; selects the epoch with the lowest validation perplexity. With init_from the
    model (and tokenizer) continue a causal LM run or a GPT-2 folder (`nlplab.train.init_from`)."""

    metric, mode = "ppl", "min"

    def __init__(self, cfg: TrainConfig, run_dir: Path, resume: bool, device: torch.device) -> None:
        super().__init__(cfg, run_dir, resume, device)
        self.corpus: TextCorpus = load_corpus(cfg.data)
        if cfg.reverse:
            self.corpus = TextCorpus(self.corpus.name, *([d[::-1] for d in self.corpus.split(s)] for s in ("train", "dev", "test")))
        self.tokenizer = task_tokenizer(cfg, run_dir, resume, self.corpus.train, special_tokens=(PAD, UNK, EOS))
        if cfg.model == "ngram":
            self.model, self.ngram = nn.Module(), NGramLM(cfg.order, cfg.smoothing, cfg.add_k)
            return
        self.streams = {name: encode_stream(self.tokenizer, self.corpus.split(name)) for name in ("train", "dev", "test")}
        self.train_windows = [w for w in windows(self.streams["train"], cfg.window_size) if len(w) == cfg.window_size + 1]
        if not self.train_windows:
            raise ConfigError(f"the training split has fewer than --window-size + 1 = {cfg.window_size + 1} tokens; "
                              "use a smaller --window-size")
        torch.manual_seed(cfg.seed)
        if cfg.init_from is not None:
            start = load_starting_lm(cfg.init_from, cfg.window_size, cfg.dropout, cfg.impl)
            check_positions(cfg, start.shape.block_size)
            self.shape, self.model = start.shape, start.model.to(device)
            return
        self.shape = LMConfig(model=cfg.model, vocab_size=self.tokenizer.vocab_size, block_size=cfg.positions(),
                              embed_dim=cfg.embed_dim, hidden_size=cfg.hidden_size, layers=cfg.layers, heads=cfg.heads,
                              kernel_size=max(cfg.kernel_sizes), dropout=cfg.dropout, moe_experts=cfg.moe_experts,
                              moe_top_k=cfg.moe_top_k, impl=cfg.impl)
        self.model = build_lm(self.shape).to(device)

    def save_meta(self, run_dir: Path) -> None:
        self.tokenizer.save(run_dir / "tokenizer")
        atomic_write_text(run_dir / "model.json", json.dumps(asdict(self.shape)))

    def num_train_batches(self) -> int:
        return num_batches(len(self.train_windows), self.cfg.batch_size)

    def train_batches(self, generator: torch.Generator) -> Iterable[dict[str, Any]]:
        order = torch.randperm(len(self.train_windows), generator=generator).tolist()
        for start in range(0, len(order), self.cfg.batch_size):
            batch = torch.stack([self.train_windows[i] for i in order[start : start + self.cfg.batch_size]])
            yield {"ids": batch[:, :-1], "targets": batch[:, 1:]}

    def step(self, batch: dict[str, Any]) -> tuple[Tensor, int, dict[str, float]]:
        loss, self._objective = lm_loss(self.model, batch["ids"], batch["targets"])
        return loss, batch["targets"].numel(), {}

    def objective(self, loss: Tensor) -> Tensor:
        return super().objective(self._objective)

    def evaluate(self, split: str) -> dict[str, float]:
        documents = self.corpus.split(split)
        if self.cfg.model == "ngram":
            nll, tokens = ngram_nll(self.ngram, self.tokenizer, documents)
        else:
            nll, tokens = stream_nll(self.model, self.streams[split], self.cfg.window_size, 64, self.device)
        return lm_figures(nll, tokens, count_characters(documents))

    def validate(self) -> dict[str, float]:
        val = self.evaluate("dev")
        return {"loss": val["loss"], "ppl": val["ppl"]}

    def describe(self) -> dict[str, Any]:
        return {"documents": {s: len(self.corpus.split(s)) for s in ("train", "dev", "test")},
                "vocab_size": self.tokenizer.vocab_size}

    def final_metrics(self) -> dict[str, Any]:
        return {"dev": self.evaluate("dev"), "test": self.evaluate("test")}

    def fit_directly(self) -> float | None:
        """The n-gram model: count on the training documents and save it with the tokenizer."""
        if self.cfg.model != "ngram":
            return None
        t0 = time.perf_counter()
        self.ngram.fit(ngram_tokens(self.tokenizer, d) for d in self.corpus.train)
        seconds = time.perf_counter() - t0
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.tokenizer.save(self.run_dir / "tokenizer")
        self.ngram.save(self.run_dir / NGRAM_FILE)
        return seconds
