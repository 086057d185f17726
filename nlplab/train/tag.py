"""Sequence labelling: the `tag` task of the trainer (NER, word segmentation, POS; one tag per character) and the
encoding, decoding and report a trained tagger shares with it (`nlplab.runs.tag`).

Characters are looked up after NFKC normalisation (full-width １ and Ａ become 1 and A), so corpora that write
digits and Latin letters differently share their embeddings. A sentence longer than `window_size` is cut into
windows of that many characters, tagged one by one and joined back. The epoch is selected by `f1`: entity F1
for ner, word F1 for seg, token accuracy (the micro F1 of per-character tags) for pos.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from nlplab.data.batching import batches, num_batches, pad_batch
from nlplab.data.tagging import (
    Tagged,
    TaggedDataset,
    load_tagging,
)
from nlplab.errors import ConfigError
from nlplab.io import atomic_write_text
from nlplab.models.tagger import Tagger, TaggerConfig
from nlplab.runtime import forward_batches
from nlplab.text import TOKENIZERS, Tokenizer
from nlplab.text.base import PAD
from nlplab.train.classify import transformer_shape
from nlplab.train.config import TrainConfig
from nlplab.train.spans import tagging_report
from nlplab.train.trainer import Task, task_tokenizer

EVAL_BATCH = 128


def normalize(char: str) -> str:
    """NFKC form of one character when that is one character too, else the character itself."""
    folded = unicodedata.normalize("NFKC", char)
    return folded if len(folded) == 1 else char


def char_ids(tokenizer: Tokenizer, chars: Sequence[str]) -> list[int]:
    """One id per character ([UNK] for characters outside the vocabulary)."""
    return [tokenizer.vocab.get(normalize(c), tokenizer.unk_id) for c in chars]


def windows(length: int, size: int) -> list[slice]:
    return [slice(s, min(s + size, length)) for s in range(0, length, size)]


@dataclass
class Encoded:
    """Windows of ids and tag ids (`None` without gold tags), and the sentence each window belongs to."""

    ids: list[list[int]]
    tags: list[list[int]] | None
    owner: list[int]


def encode(tokenizer: Tokenizer, items: Sequence[Tagged], labels: Sequence[str] | None, size: int) -> Encoded:
    index = {name: i for i, name in enumerate(labels)} if labels is not None else None
    out = Encoded([], [] if index is not None else None, [])
    for k, item in enumerate(items):
        ids = char_ids(tokenizer, item.chars)
        for piece in windows(len(ids), size):
            out.ids.append(ids[piece])
            out.owner.append(k)
            if index is not None:
                out.tags.append([index[t] for t in item.tags[piece]])
    return out


def tag_batches(data: Encoded, batch_size: int, pad_id: int, shuffle: bool = False, generator: torch.Generator | None = None,
                bucket: int = 0) -> Iterator[dict[str, torch.Tensor]]:
    """`batches` of the windows, plus "tags" (B, T) (padded with 0, masked out) when there are gold tags."""
    for batch in batches(data.ids, None, batch_size, pad_id, shuffle, generator, bucket):
        if data.tags is not None:
            batch["tags"] = pad_batch([data.tags[r] for r in batch["rows"].tolist()], 0)[0]
        yield batch


def predict(model: Tagger, data: Encoded, sentences: int, pad_id: int, device: torch.device) -> tuple[float, list[list[int]]]:
    """Mean loss per character (nan without gold tags) and the predicted tag ids of each of the `sentences`."""
    total, pieces = 0.0, [[] for _ in data.ids]
    for batch, loss, emissions in forward_batches(model, tag_batches(data, EVAL_BATCH, pad_id, bucket=len(data.ids)), device):
        if loss is not None:
            total += loss.item() * batch["mask"].sum().item()
        best = model.decode(emissions.float(), batch["mask"]).cpu()
        for row, n, tags in zip(batch["rows"].tolist(), batch["lengths"].tolist(), best.tolist()):
            pieces[row] = tags[:n]
    out: list[list[int]] = [[] for _ in range(sentences)]
    for owner, tags in zip(data.owner, pieces):
        out[owner] += tags
    return (total / sum(map(len, data.ids)) if data.tags is not None else float("nan")), out


def scheme_report(scheme: str, labels: list[str], items: Sequence[Tagged], predicted: list[list[int]], loss: float) -> dict[str, Any]:
    return {"loss": loss, **tagging_report(scheme, [s.tags for s in items], [[labels[t] for t in p] for p in predicted])}


def prepare(cfg: TrainConfig, run_dir: Path, resume: bool) -> tuple[TaggedDataset, Tokenizer]:
    """The data, and the character tokenizer (`task_tokenizer`, trained on the normalised training characters)."""
    if cfg.tokenizer in TOKENIZERS and cfg.tokenizer != "char":
        raise ConfigError(f"tagging is per character: use --tokenizer char (or a saved char tokenizer), not {cfg.tokenizer!r}")
    data = load_tagging(cfg.data, cfg.dev)
    texts = ("".join(normalize(c) for c in s.chars) for s in data.train)
    return data, task_tokenizer(cfg, run_dir, resume, texts)


class TagTask(Task):
    """Characters -> one tag each (see the module docstring); selects the epoch by `f1` on dev."""

    metric = "f1"

    def __init__(self, cfg: TrainConfig, run_dir: Path, resume: bool, device: torch.device) -> None:
        super().__init__(cfg, run_dir, resume, device)
        self.data, self.tokenizer = prepare(cfg, run_dir, resume)
        self.labels = self.data.labels
        self.encoded = {name: encode(self.tokenizer, self.data.split(name), self.labels, cfg.window_size)
                        for name in ("train", "dev", "test")}
        torch.manual_seed(cfg.seed)
        self.model_cfg = TaggerConfig(
            model=cfg.model, vocab_size=self.tokenizer.vocab_size, labels=self.labels, embed_dim=cfg.embed_dim,
            hidden_size=cfg.hidden_size, layers=cfg.layers, dropout=cfg.dropout, activation=cfg.activation,
            pad_id=self.tokenizer.vocab.get(PAD), crf=cfg.crf, constraints="bio" if cfg.crf and self.data.scheme != "seg" else None,
            impl=cfg.impl, bert=transformer_shape(cfg, self.tokenizer, None))
        self.model = Tagger(self.model_cfg).to(device)

    def save_meta(self, run_dir: Path) -> None:
        self.tokenizer.save(run_dir / "tokenizer")
        atomic_write_text(run_dir / "labels.json", json.dumps({"labels": self.labels, "scheme": self.data.scheme}, ensure_ascii=False))
        atomic_write_text(run_dir / "model.json", json.dumps(asdict(self.model_cfg), ensure_ascii=False))

    def num_train_batches(self) -> int:
        return num_batches(len(self.encoded["train"].ids), self.cfg.batch_size)

    def train_batches(self, generator: torch.Generator) -> Iterable[dict[str, Any]]:
        return tag_batches(self.encoded["train"], self.cfg.batch_size, self.tokenizer.pad_id, shuffle=True,
                           generator=generator, bucket=self.cfg.bucket)

    def step(self, batch: dict[str, Any]) -> tuple[torch.Tensor, int, dict[str, float]]:
        loss, _ = self.model(batch)
        return loss, int(batch["mask"].sum()), {}

    def evaluate(self, split: str) -> dict[str, Any]:
        items = self.data.split(split)
        loss, predicted = predict(self.model, self.encoded[split], len(items), self.tokenizer.pad_id, self.device)
        return scheme_report(self.data.scheme, self.labels, items, predicted, loss)

    def validate(self) -> dict[str, float]:
        val = self.evaluate("dev")
        return {k: val[k] for k in ("loss", "f1", "precision", "recall", "accuracy")}

    def describe(self) -> dict[str, Any]:
        sizes = {name: len(self.data.split(name)) for name in ("train", "dev", "test")}
        return {"scheme": self.data.scheme, "sentences": sizes, "notes": self.data.notes}

    def final_metrics(self) -> dict[str, Any]:
        return {"dev": self.evaluate("dev"), "test": self.evaluate("test")}
