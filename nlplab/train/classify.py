"""Text classification: the `classify` task of the trainer, and the encoding and evaluation a trained classifier
shares with it (`nlplab.runs.classify`)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from nlplab.data.batching import batches, num_batches
from nlplab.data.readers import Example
from nlplab.data.registry import SPLIT_SEED, load_dataset, subsample
from nlplab.errors import ConfigError, DataError
from nlplab.io import atomic_write_text
from nlplab.models.classifier import ClassifierConfig, TextClassifier
from nlplab.models.encoder import BertConfig, BertEncoder
from nlplab.optim.ulmfit import discriminative_groups, unfreeze_top
from nlplab.runtime import forward_batches
from nlplab.text import Tokenizer
from nlplab.text.base import PAD
from nlplab.train.config import TrainConfig
from nlplab.train.metrics import classification_report
from nlplab.train.pretrained import masked_lm_encoder, start_from_runs
from nlplab.train.trainer import Task, task_tokenizer
from nlplab.train.weights import check_positions, load_backbone, pretrained_model, pretraining_runs


def encode_texts(tokenizer: Tokenizer, texts: Iterable[str], window_size: int) -> tuple[list[list[int]], list[bool]]:
    """Token ids of each text cut to `window_size`, and whether each was cut."""
    full = [tokenizer.encode(text) for text in texts]
    return [ids[:window_size] for ids in full], [len(ids) > window_size for ids in full]


def label_ids(examples: list[Example], labels: list[str], source: str) -> list[int]:
    """Map label names to ids; a label the model does not know is an error naming it."""
    index = {name: i for i, name in enumerate(labels)}
    out = []
    for row, (_, label) in enumerate(examples, start=1):
        if label not in index:
            raise DataError(f"label {label!r} of example {row} is not among the training labels ({', '.join(labels)}); "
                            "every class needs training examples", source)
        out.append(index[label])
    return out


def report(y: list[int], probs: torch.Tensor, labels: list[str]) -> dict[str, Any]:
    return classification_report(y, probs.argmax(-1), len(labels), probs=probs, labels=labels)


def evaluate(model: TextClassifier, ids: list[list[int]], y: list[int] | None, batch_size: int, pad_id: int,
             device: torch.device) -> tuple[float, torch.Tensor]:
    """Mean loss (nan without labels) and probabilities (N, C) of `model` over a data set, in eval mode."""
    total, probs = 0.0, torch.zeros(len(ids), model.cfg.num_classes)
    for batch, loss, logits in forward_batches(model, batches(ids, y, batch_size, pad_id, bucket=len(ids)), device):
        if loss is not None:
            total += loss.item() * len(batch["ids"])
        probs[batch["rows"]] = torch.softmax(logits.float(), -1).cpu()
    return (total / len(ids) if y is not None else float("nan")), probs


def transformer_shape(cfg: TrainConfig, tokenizer: Tokenizer, pretrained: BertEncoder | None) -> dict[str, Any] | None:
    """BertConfig fields of the `transformer` classifier: the pretrained encoder's, or a small encoder sized by the
    config (hidden_size, layers, heads, a 4x feed-forward, one position per window slot)."""
    if cfg.model != "transformer":
        return None
    if pretrained is not None:
        shape = asdict(pretrained.cfg)
        check_positions(cfg, shape["max_position_embeddings"])
    else:
        if cfg.hidden_size % cfg.heads:
            raise ConfigError(f"hidden_size {cfg.hidden_size} (--hidden-size) must be divisible by heads {cfg.heads} (--heads)")
        shape = asdict(BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=cfg.hidden_size, num_layers=cfg.layers,
                                  num_heads=cfg.heads, intermediate_size=4 * cfg.hidden_size, max_position_embeddings=cfg.positions(),
                                  dropout=cfg.dropout, pad_token_id=tokenizer.vocab.get(PAD)))
    shape.pop("impl")
    return shape


def classifier_config(cfg: TrainConfig, tokenizer: Tokenizer, num_classes: int, bert: dict[str, Any] | None,
                      class_weights: tuple[float, ...] | None = None) -> ClassifierConfig:
    """The encoder shape a TrainConfig asks for, with `num_classes` outputs, the BERT shape `bert` and the loss's
    class weights."""
    return ClassifierConfig(
        model=cfg.model, vocab_size=tokenizer.vocab_size, num_classes=num_classes, embed_dim=cfg.embed_dim,
        hidden_size=cfg.hidden_size, layers=cfg.layers, dropout=cfg.dropout, embed_dropout=cfg.embed_dropout,
        num_filters=cfg.num_filters, kernel_sizes=tuple(cfg.kernel_sizes), activation=cfg.activation,
        pad_id=tokenizer.vocab.get(PAD), impl=cfg.impl, ngrams=cfg.ngrams, ngram_buckets=cfg.ngram_buckets, pooling=cfg.pooling,
        class_weights=class_weights, bert=bert)


def balanced_weights(labels: list[int], num_classes: int) -> tuple[float, ...]:
    """w_c = N / (C · n_c): each class's examples weigh as much in total (scikit-learn's class_weight='balanced')."""
    counts = torch.bincount(torch.tensor(labels), minlength=num_classes).clamp(min=1)
    return tuple((len(labels) / (num_classes * counts)).tolist())


class ClassifyTask(Task):
    """Labelled texts -> one label each; selects the epoch by `cfg.metric` (accuracy or macro_f1) on dev."""

    def __init__(self, cfg: TrainConfig, run_dir: Path, resume: bool, device: torch.device) -> None:
        super().__init__(cfg, run_dir, resume, device)
        self.metric = cfg.metric
        from_runs = pretraining_runs(cfg.init_from)
        if cfg.init_from is not None and not from_runs and cfg.model != "transformer":
            raise ConfigError(f"init_from {cfg.init_from}: not an nlplab run (no config.yaml), and a pretrained encoder "
                              "folder needs model: transformer; train the pre-training run first")
        self.data = load_dataset(cfg.data, cfg.dev)
        if cfg.train_examples is not None and cfg.train_examples < len(self.data.train):
            self.data.notes.append(f"trained on a random {cfg.train_examples} of the {len(self.data.train)} training "
                                   f"examples (seed {SPLIT_SEED})")
            self.data.train = subsample(self.data.train, cfg.train_examples)
        self.tokenizer = task_tokenizer(cfg, run_dir, resume, (t for t, _ in self.data.train))
        self.labels = self.data.labels
        self.splits = {name: (encode_texts(self.tokenizer, (t for t, _ in self.data.split(name)), cfg.window_size)[0],
                              label_ids(self.data.split(name), self.labels, f"{cfg.data} ({name})"))
                       for name in ("train", "dev", "test") if name != "test" or self.data.test is not self.data.dev}
        self.splits.setdefault("test", self.splits["dev"])

        torch.manual_seed(cfg.seed)
        pretrained = None
        if cfg.init_from is not None and not from_runs:
            pretrained = pretrained_model(cfg.init_from, BertEncoder)
        elif from_runs and not resume:
            pretrained = masked_lm_encoder(cfg.init_from)
        weights = balanced_weights(self.splits["train"][1], len(self.labels)) if cfg.class_weights == "balanced" else None
        self.model_cfg = classifier_config(cfg, self.tokenizer, len(self.labels),
                                           transformer_shape(cfg, self.tokenizer, pretrained), weights)
        model = TextClassifier(self.model_cfg)
        self.init_note = None
        if pretrained is not None:
            load_backbone(model, pretrained)
        if from_runs and not resume:
            self.init_note = start_from_runs(model, cfg.init_from, self.tokenizer)
        self.model = model.to(device)

    def save_meta(self, run_dir: Path) -> None:
        self.tokenizer.save(run_dir / "tokenizer")
        atomic_write_text(run_dir / "labels.json", json.dumps({"labels": self.labels}, ensure_ascii=False))
        atomic_write_text(run_dir / "model.json", json.dumps(asdict(self.model_cfg)))

    def num_train_batches(self) -> int:
        return num_batches(len(self.splits["train"][0]), self.cfg.batch_size)

    def param_groups(self, params: list[torch.nn.Parameter]) -> list[Any]:
        """ULMFiT's discriminative learning rates with --discriminative-lr: each layer group its own."""
        if self.cfg.discriminative_lr is None:
            return params
        return discriminative_groups(self.model.layer_groups(), self.cfg.lr, self.cfg.discriminative_lr)

    def start_epoch(self, epoch: int) -> None:
        """ULMFiT's gradual unfreezing with --gradual-unfreeze: epoch e trains the top e layer groups."""
        if self.cfg.gradual_unfreeze:
            unfreeze_top(self.model.layer_groups(), epoch)

    def train_batches(self, generator: torch.Generator) -> Iterable[dict[str, Any]]:
        return batches(*self.splits["train"], self.cfg.batch_size, self.tokenizer.pad_id, shuffle=True,
                       generator=generator, bucket=self.cfg.bucket)

    def step(self, batch: dict[str, Any]) -> tuple[torch.Tensor, int, dict[str, float]]:
        loss, logits = self.model(batch)
        return loss, len(batch["labels"]), {"accuracy": (logits.argmax(-1) == batch["labels"]).sum().item()}

    def evaluate(self, split: str) -> dict[str, Any]:
        ids, y = self.splits[split]
        loss, probs = evaluate(self.model, ids, y, 256, self.tokenizer.pad_id, self.device)
        return {"loss": loss, **report(y, probs, self.labels)}

    def validate(self) -> dict[str, float]:
        val = self.evaluate("dev")
        return {k: val[k] for k in ("loss", "accuracy", "macro_f1")}

    def describe(self) -> dict[str, Any]:
        return {"notes": self.data.notes, **({"init": self.init_note} if self.init_note else {})}

    def final_metrics(self) -> dict[str, Any]:
        dev = self.evaluate("dev")
        return {"dev": dev, "test": dev if self.splits["test"] is self.splits["dev"] else self.evaluate("test")}
