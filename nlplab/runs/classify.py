"""A trained text classifier in use: labels with probabilities, evaluation, sentence embeddings."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from nlplab.data.batching import batches
from nlplab.data.readers import read_labelled_tsv
from nlplab.data.registry import DATASETS, load_dataset
from nlplab.models.classifier import ClassifierConfig, TextClassifier
from nlplab.runs.base import Record, RunPredictor, check_inputs
from nlplab.runtime import forward_batches
from nlplab.train.checkpoint import run_json
from nlplab.train.classify import encode_texts, evaluate, label_ids, report
from nlplab.train.config import TrainConfig


class ClassifierPredictor(RunPredictor):
    """A `--task classify` run: `predict` gives each text's label, its probability and every class's."""

    task = "classify"
    abilities = ("predict", "evaluate", "embed")

    def __init__(self, run_dir: Path, cfg: TrainConfig, device: str = "auto") -> None:
        self.labels: list[str] = run_json(run_dir, "labels.json")["labels"]
        super().__init__(run_dir, cfg, device)

    def build(self, shape: dict[str, Any]) -> TextClassifier:
        return TextClassifier(ClassifierConfig(**{**shape, "kernel_sizes": tuple(shape["kernel_sizes"])}))

    def probabilities(self, texts: Sequence[str], batch_size: int = 256) -> tuple[Tensor, list[bool]]:
        """Class probabilities (N, C) of raw texts, and whether each text was cut to the window."""
        ids, truncated = encode_texts(self.tokenizer, texts, self.cfg.window_size)
        _, probs = evaluate(self.model, ids, None, batch_size, self.tokenizer.pad_id, self.device)
        return probs, truncated

    def predict(self, inputs: Sequence[str]) -> list[Record]:
        check_inputs(inputs)
        probs, truncated = self.probabilities(inputs)
        records = []
        for text, p, cut in zip(inputs, probs.tolist(), truncated):
            best = max(range(len(p)), key=p.__getitem__)
            records.append({"text": text, "label": self.labels[best], "probability": p[best],
                            "probabilities": dict(zip(self.labels, p)), "truncated": cut})
        return records

    def evaluate(self, data: str | None = None) -> Record:
        if data and data not in DATASETS:
            examples = read_labelled_tsv(data, self.labels)
        else:
            examples = load_dataset(data or self.cfg.data, None if data else self.cfg.dev).test
        source = self.test_source(data)
        ids, _ = encode_texts(self.tokenizer, (t for t, _ in examples), self.cfg.window_size)
        y = label_ids(examples, self.labels, source)
        loss, probs = evaluate(self.model, ids, y, 256, self.tokenizer.pad_id, self.device)
        return {"data": source, "examples": len(examples), "loss": loss, **report(y, probs, self.labels)}

    def embed(self, texts: Sequence[str], batch_size: int = 256) -> Tensor:
        """The model's pooled encoding of each text (before its head), scaled to unit length: (N, D)."""
        ids, _ = encode_texts(self.tokenizer, texts, self.cfg.window_size)
        vectors = torch.zeros(len(ids), self.model.head.weight.shape[1])
        encode = lambda b: (None, self.model.encode(b["ids"], b["mask"], b["lengths"]))  # noqa: E731
        for batch, _, out in forward_batches(self.model, batches(ids, None, batch_size, self.tokenizer.pad_id), self.device,
                                             forward=encode):
            vectors[batch["rows"]] = out.float().cpu()
        return torch.nn.functional.normalize(vectors, dim=-1)
