"""Text matching: the `match` task of the trainer, and the encoding and scoring a trained matcher shares with it
(`nlplab.runs.match`, which also searches a corpus with a bi-encoder).

A pair's score is the model's similarity: cosine of the two sentence vectors (bi-encoders trained with
contrastive, triplet or InfoNCE losses), or P(match) (loss ce: ESIM, the cross-encoder, Sentence-BERT's classifier).
The predicted label is `score > threshold`: 0.5 for P(match); for cosine the threshold that maximises accuracy on
the dev split, chosen again after every epoch and saved with the run (threshold.json), so test figures use a
threshold fixed before the test split is seen. Metrics: accuracy, F1 of the match class, and Spearman's rho
between score and label.

Unsupervised SimCSE (`--loss infonce-unsup`) ignores the training labels: every distinct training sentence is
paired with itself and the encoder's dropout makes the two views differ.

Run directory additions: model.json (MatcherConfig), threshold.json, and retrieval/<corpus sha256>.safetensors,
the cached corpus embeddings of `nlplab match`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nlplab.data.batching import batch_rows, num_batches, pad_batch, padded_batch
from nlplab.data.pairs import Pair, load_pairs
from nlplab.errors import ConfigError
from nlplab.io import atomic_write_text
from nlplab.models.encoder import BertEncoder
from nlplab.models.matcher import (
    DEFAULT_LOSS,
    MatcherConfig,
    build_matcher,
    scores_are_probabilities,
)
from nlplab.runtime import forward_batches, to_device
from nlplab.text import Tokenizer, WordPieceTokenizer
from nlplab.text.base import PAD, UNK
from nlplab.text.wordpiece import CLS, SEP
from nlplab.train.classify import classifier_config, transformer_shape
from nlplab.train.config import SELECTION_METRICS, TrainConfig
from nlplab.train.metrics import accuracy, precision_recall_f1, spearman
from nlplab.train.trainer import Task, task_tokenizer
from nlplab.train.weights import load_backbone, pretrained_model

SIDES = ("a", "b", "pair")


@dataclass
class EncodedPairs:
    """Token ids of a split: both sides apart (`a`, `b`) or, for the cross-encoder, joined (`pair`, `segments`)."""

    labels: list[int]
    a: list[list[int]] | None = None
    b: list[list[int]] | None = None
    pair: list[list[int]] | None = None
    segments: list[list[int]] | None = None
    truncated: list[bool] | None = None

    def lengths(self) -> list[int]:
        if self.pair is not None:
            return [len(p) for p in self.pair]
        return [len(x) + len(y) for x, y in zip(self.a, self.b)]


def plain_ids(tokenizer: Tokenizer, text: str) -> list[int]:
    """Token ids of `text` without [CLS]/[SEP]."""
    if isinstance(tokenizer, WordPieceTokenizer):
        return tokenizer.encode(text, add_special_tokens=False)
    return tokenizer.encode(text)


def encode_pairs(tokenizer: Tokenizer, pairs: Sequence[Pair], window_size: int, joined: bool) -> EncodedPairs:
    """Each side cut to the window (a WordPiece side keeps BERT's [CLS] ... [SEP]); `joined`: [CLS] a [SEP] b [SEP]
    with segment ids 0 for [CLS] a [SEP] and 1 for b [SEP], each side cut to (window_size - 3) // 2 tokens."""
    labels = [label for _, _, label in pairs]
    if not joined:
        a, b = ([tokenizer.encode(pair[k]) for pair in pairs] for k in (0, 1))
        return EncodedPairs(labels, a=[ids[:window_size] for ids in a], b=[ids[:window_size] for ids in b],
                            truncated=[max(len(x), len(y)) > window_size for x, y in zip(a, b)])
    if CLS not in tokenizer.vocab or SEP not in tokenizer.vocab:
        raise ConfigError(f"the cross-encoder joins a pair as [CLS] a [SEP] b [SEP]; the tokenizer has no {CLS}/{SEP} token")
    cls, sep, side = tokenizer.vocab[CLS], tokenizer.vocab[SEP], max((window_size - 3) // 2, 1)
    joined_ids, segments, truncated = [], [], []
    for s1, s2, _ in pairs:
        a, b = plain_ids(tokenizer, s1), plain_ids(tokenizer, s2)
        truncated.append(max(len(a), len(b)) > side)
        a, b = a[:side], b[:side]
        joined_ids.append([cls, *a, sep, *b, sep])
        segments.append([0] * (len(a) + 2) + [1] * (len(b) + 1))
    return EncodedPairs(labels, pair=joined_ids, segments=segments, truncated=truncated)


def pair_batches(data: EncodedPairs, batch_size: int, pad_id: int, shuffle: bool = False,
                 generator: torch.Generator | None = None, bucket: int = 0) -> Iterator[dict[str, Any]]:
    """Batches {"a": side, "b": side} or {"pair": side + "segments"}, with "labels" (B,) and "rows" (B,); a side
    holds ids (B,T), lengths (B,), mask (B,T). Rows grouped as `batch_rows` says, by the pair's total length."""
    for rows in batch_rows(data.lengths(), batch_size, shuffle, generator, bucket):
        batch: dict[str, Any] = {"labels": torch.tensor([data.labels[r] for r in rows]), "rows": torch.tensor(rows)}
        if data.pair is not None:
            batch["pair"] = padded_batch([data.pair[r] for r in rows], pad_id)
            batch["pair"]["segments"] = pad_batch([data.segments[r] for r in rows], 0)[0]
        else:
            batch["a"] = padded_batch([data.a[r] for r in rows], pad_id)
            batch["b"] = padded_batch([data.b[r] for r in rows], pad_id)
        yield batch


def sides_to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """`to_device` for the nested sides of a pair batch (their lengths stay on the CPU)."""
    return {k: to_device(v, device) if k in SIDES else v for k, v in to_device(batch, device).items()}


def score_pairs(model: torch.nn.Module, data: EncodedPairs, batch_size: int, pad_id: int,
                device: torch.device) -> tuple[float, torch.Tensor]:
    """Mean loss and the scores (N,) of `model` over encoded pairs, in eval mode."""
    total, scores = 0.0, torch.zeros(len(data.labels))
    batches = pair_batches(data, batch_size, pad_id, bucket=len(data.labels))
    for batch, loss, s in forward_batches(model, batches, device, move=sides_to_device):
        total += loss.item() * len(batch["rows"])
        scores[batch["rows"]] = s.float().cpu()
    return total / len(data.labels), scores


def best_threshold(scores: torch.Tensor, labels: Sequence[int]) -> float:
    """The cut t that maximises the accuracy of `score > t` on (scores, labels): midway between the two scores
    where the best split falls (above the top score when predicting no match is best)."""
    s, y = scores.double().numpy(), np.asarray(labels)
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    k = np.arange(len(s) + 1)  # predict the k highest scores as matches
    true_pos = np.r_[0, np.cumsum(y)]
    correct = true_pos + (len(y) - y.sum()) - (k - true_pos)
    splittable = np.r_[True, s[1:] != s[:-1], True]  # a cut between equal scores is impossible
    best = int(k[splittable][np.argmax(correct[splittable])])
    if best == 0:
        return float(s[0])
    if best == len(s):
        return float(s[-1] - 1.0)
    return float((s[best - 1] + s[best]) / 2)


def pair_report(scores: torch.Tensor, labels: Sequence[int], threshold: float) -> dict[str, float]:
    """accuracy, precision/recall/F1 of the match class, Spearman's rho of score vs label, and the threshold."""
    predicted = (scores > threshold).long().numpy()
    prf = precision_recall_f1(labels, predicted, 2)
    return {"accuracy": accuracy(labels, predicted), "f1": float(prf.f1[1]), "precision": float(prf.precision[1]),
            "recall": float(prf.recall[1]), "spearman": spearman(scores.double().numpy(), labels), "threshold": threshold}


def self_pairs(pairs: Sequence[Pair]) -> list[Pair]:
    """Unsupervised SimCSE data: every distinct sentence of `pairs`, in first-seen order, paired with itself."""
    sentences = dict.fromkeys(s for s1, s2, _ in pairs for s in (s1, s2))
    return [(s, s, 1) for s in sentences]


def pair_texts(pairs: Sequence[Pair]) -> Iterator[str]:
    return (s for s1, s2, _ in pairs for s in (s1, s2))


def matcher_config(cfg: TrainConfig, tokenizer: Tokenizer, pretrained: BertEncoder | None) -> MatcherConfig:
    """The MatcherConfig a TrainConfig asks for; the BERT shape of simcse/cross as the classifier's transformer."""
    bert = None
    if cfg.model in ("simcse", "cross"):
        bert = transformer_shape(dataclasses.replace(cfg, model="transformer"), tokenizer, pretrained)
    shape = asdict(classifier_config(cfg, tokenizer, cfg.hidden_size, bert))
    model_cfg = MatcherConfig(**shape, loss=cfg.loss or DEFAULT_LOSS.get(cfg.model, "contrastive"), temperature=cfg.temperature)
    model_cfg.check()
    return model_cfg


class MatchTask(Task):
    """Sentence pairs -> match or not; selects the epoch by `cfg.metric` (accuracy, f1 or spearman) on dev."""

    def __init__(self, cfg: TrainConfig, run_dir: Path, resume: bool, device: torch.device) -> None:
        super().__init__(cfg, run_dir, resume, device)
        self.metric = cfg.metric
        self.data = load_pairs(cfg.data, cfg.dev)
        cross_specials = cfg.model == "cross" and cfg.tokenizer != "wordpiece"
        self.tokenizer = task_tokenizer(cfg, run_dir, resume, pair_texts(self.data.train),
                                        (PAD, UNK, CLS, SEP) if cross_specials else None)
        torch.manual_seed(cfg.seed)
        pretrained = pretrained_model(cfg.init_from, BertEncoder) if cfg.init_from is not None else None
        self.model_cfg = matcher_config(cfg, self.tokenizer, pretrained)
        model = build_matcher(self.model_cfg)
        if pretrained is not None:
            load_backbone(model, pretrained)
        self.model = model.to(device)
        joined = cfg.model == "cross"
        train = self_pairs(self.data.train) if self.model_cfg.loss == "infonce-unsup" else self.data.train
        self.splits = {"train": encode_pairs(self.tokenizer, train, cfg.window_size, joined)}
        for name in ("dev", "test"):
            self.splits[name] = encode_pairs(self.tokenizer, self.data.split(name), cfg.window_size, joined)
        self.threshold = 0.5

    def save_meta(self, run_dir: Path) -> None:
        self.tokenizer.save(run_dir / "tokenizer")
        atomic_write_text(run_dir / "model.json", json.dumps(asdict(self.model_cfg)))

    def num_train_batches(self) -> int:
        return num_batches(len(self.splits["train"].labels), self.cfg.batch_size)

    def train_batches(self, generator: torch.Generator) -> Iterator[dict[str, Any]]:
        return pair_batches(self.splits["train"], self.cfg.batch_size, self.tokenizer.pad_id, shuffle=True,
                            generator=generator, bucket=self.cfg.bucket)

    def step(self, batch: dict[str, Any]) -> tuple[torch.Tensor, int, dict[str, float]]:
        loss, scores = self.model(sides_to_device(batch, self.device))
        labels = batch["labels"]
        if not scores_are_probabilities(self.model_cfg):
            return loss, len(labels), {}
        return loss, len(labels), {"accuracy": ((scores > 0.5).long() == labels).sum().item()}

    def evaluate(self, split: str) -> dict[str, float]:
        """Figures on `split`; on dev a cosine model's threshold is tuned first (and kept for test)."""
        data = self.splits[split]
        loss, scores = score_pairs(self.model, data, 256, self.tokenizer.pad_id, self.device)
        if split == "dev" and not scores_are_probabilities(self.model_cfg):
            self.threshold = best_threshold(scores, data.labels)
        return {"loss": loss, **pair_report(scores, data.labels, self.threshold)}

    def validate(self) -> dict[str, float]:
        val = self.evaluate("dev")
        return {k: val[k] for k in ("loss", *SELECTION_METRICS["match"])}

    def describe(self) -> dict[str, Any]:
        return {"notes": self.data.notes, "model": self.model_cfg.model, "loss": self.model_cfg.loss,
                "pairs": {name: len(self.data.split(name)) for name in ("train", "dev", "test")}}

    def final_metrics(self) -> dict[str, Any]:
        dev = self.evaluate("dev")
        atomic_write_text(self.run_dir / "threshold.json", json.dumps({"threshold": self.threshold}))
        return {"dev": dev, "test": self.evaluate("test")}
