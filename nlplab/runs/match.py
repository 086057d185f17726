"""A trained matcher in use: a pair's label and score, evaluation, and retrieval with a bi-encoder.

Retrieval embeds a corpus once and keeps the vectors in RUN/retrieval/<sha256 of the file>.safetensors.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from nlplab.data.batching import batch_rows, padded_batch
from nlplab.data.pairs import PAIR_DATASETS, Pair, load_pairs, read_pairs
from nlplab.data.readers import read_lines
from nlplab.errors import ConfigError, DataError, RunError
from nlplab.io import atomic_write
from nlplab.models.matcher import BI_ENCODERS, BiEncoder, MatcherConfig, build_matcher
from nlplab.nn.losses import unit
from nlplab.runs.base import Record, RunPredictor
from nlplab.runtime import forward_batches
from nlplab.train.checkpoint import run_json
from nlplab.train.config import TrainConfig
from nlplab.train.match import EncodedPairs, encode_pairs, pair_report, score_pairs


def as_pair(item: str | Sequence[str], number: int) -> Pair:
    """`s1<TAB>s2` (the format of `nlplab predict` for matching runs) or [s1, s2] as a pair with placeholder label 0."""
    cells = item.split("\t") if isinstance(item, str) else list(item)
    if len(cells) != 2 or not all(isinstance(c, str) and c.strip() for c in cells):
        raise DataError(f"input {number}: a matching run predicts on `sentence1<TAB>sentence2` (or a pair of texts), found "
                        f"{len(cells)} non-empty column(s) in {item!r}; in a shell write $'first\\tsecond'")
    return cells[0].strip(), cells[1].strip(), 0


class MatcherPredictor(RunPredictor):
    """A `--task match` run: `predict` takes pairs; a bi-encoder also embeds sentences and searches a corpus."""

    task = "match"

    def __init__(self, run_dir: Path, cfg: TrainConfig, device: str = "auto") -> None:
        self.threshold: float = run_json(run_dir, "threshold.json")["threshold"]
        super().__init__(run_dir, cfg, device)
        self.abilities = ("predict", "evaluate", *(("embed", "search") if isinstance(self.model, BiEncoder) else ()))

    def build(self, shape: dict[str, Any]) -> torch.nn.Module:
        self.model_cfg = MatcherConfig(**shape)
        return build_matcher(self.model_cfg)

    def encode(self, pairs: Sequence[Pair]) -> EncodedPairs:
        return encode_pairs(self.tokenizer, pairs, self.cfg.window_size, self.model_cfg.model == "cross")

    def scores(self, pairs: Sequence[Pair]) -> tuple[float, Tensor, list[bool]]:
        """Mean loss against the labels, similarity scores (N,) and whether each pair was cut to the window."""
        encoded = self.encode(pairs)
        loss, scores = score_pairs(self.model, encoded, 256, self.tokenizer.pad_id, self.device)
        return loss, scores, encoded.truncated

    def predict(self, inputs: Sequence[str | Sequence[str]]) -> list[Record]:
        if not inputs:
            raise DataError("nothing to predict: give at least one pair")
        pairs = [as_pair(item, n) for n, item in enumerate(inputs, start=1)]
        _, scores, truncated = self.scores(pairs)
        return [{"text_a": s1, "text_b": s2, "label": int(score > self.threshold), "score": score, "truncated": cut}
                for (s1, s2, _), score, cut in zip(pairs, scores.tolist(), truncated)]

    def evaluate(self, data: str | None = None) -> Record:
        if data and data not in PAIR_DATASETS:
            pairs = read_pairs(data)
        else:
            pairs = load_pairs(data or self.cfg.data, None if data else self.cfg.dev).test
        loss, scores, _ = self.scores(pairs)
        return {"data": self.test_source(data), "examples": len(pairs), "model": self.model_cfg.model,
                "loss_name": self.model_cfg.loss, "loss": loss,
                **pair_report(scores, [label for _, _, label in pairs], self.threshold)}

    def embed(self, texts: Sequence[str], batch_size: int = 256) -> Tensor:
        """Unit-length sentence vectors (N, D) of a bi-encoder run."""
        if not isinstance(self.model, BiEncoder):
            raise RunError(f"{self.run_dir}: retrieval needs a bi-encoder ({', '.join(BI_ENCODERS)}), "
                              f"this run's model, {self.model_cfg.model}, only scores pairs")
        ids = [self.tokenizer.encode(t)[: self.cfg.window_size] for t in texts]
        sides = ({**padded_batch([ids[r] for r in rows], self.tokenizer.pad_id), "rows": torch.tensor(rows)}
                 for rows in batch_rows([len(s) for s in ids], batch_size))
        rows, outs = [], []
        for side, _, out in forward_batches(self.model, sides, self.device, forward=lambda s: (None, self.model.embed(s))):
            rows.append(side["rows"])
            outs.append(out.float().cpu())
        vectors = torch.cat(outs)
        return unit(vectors[torch.cat(rows).argsort()])

    def corpus_embeddings(self, corpus: str | Path) -> tuple[list[str], Tensor]:
        """The non-blank lines of `corpus` and their embeddings, cached in retrieval/<sha256 of the file>.safetensors
        under the run (computed once per corpus content, written atomically)."""
        corpus = Path(corpus)
        lines = [line.strip() for line in read_lines(corpus) if line.strip()]
        cache = self.run_dir / "retrieval" / f"{hashlib.sha256(corpus.read_bytes()).hexdigest()}.safetensors"
        if cache.is_file():
            return lines, load_file(cache)["embeddings"]
        vectors = self.embed(lines)
        atomic_write(cache, lambda tmp: save_file({"embeddings": vectors.contiguous()}, tmp))
        return lines, vectors

    def search(self, queries: Sequence[str], corpus: str | Path, top_k: int = 5) -> list[list[tuple[str, float]]]:
        """For each query, the `top_k` corpus lines by cosine similarity, best first: [(line, cosine), ...]."""
        if top_k < 1:
            raise ConfigError(f"--top-k must be >= 1; got {top_k}")
        lines, vectors = self.corpus_embeddings(corpus)
        similarity = self.embed(queries) @ vectors.T  # (Q, N)
        best = similarity.topk(min(top_k, len(lines)), dim=-1)
        return [[(lines[i], float(s)) for s, i in zip(row_s.tolist(), row_i.tolist())]
                for row_s, row_i in zip(best.values, best.indices)]
