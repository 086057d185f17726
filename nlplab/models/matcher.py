"""Text matching: does sentence a mean the same as sentence b? Two families, assembled from `nlplab.nn`.

Representation (siamese bi-encoder): one encoder maps each sentence to a vector on its own, so a corpus can be
embedded once and searched (retrieval).
    a ─encoder─▶ u (B,D)     b ─encoder─▶ v (B,D)     score = cos(u, v)
The encoder is `TextClassifier` whose head projects the pooled encoding to D = hidden_size: `bow`, `cnn`
(TextCNN), `lstm` (BiLSTM, max over time) or `simcse` (a BERT encoder, mean over tokens; from scratch or from a
pretrained folder). Losses:
    contrastive    1 - cos for a match, max(0, cos - margin) for a non-match
    triplet        max(0, margin + d(a, b) - d(a, b')) over the matching pairs, d = 1 - cos, b' the b of the
                   previous matching pair in the batch (an in-batch negative)
    infonce        supervised SimCSE: InfoNCE of each matching a against all b of the batch (its own b the positive,
                   the b of every other pair, the non-matching ones included, a negative), temperature tau
    infonce-unsup  unsupervised SimCSE: the same loss where the task pairs each sentence with itself; dropout makes
                   the two encodings differ, so the positive is the sentence seen through another dropout mask
    ce             Sentence-BERT's classifier: softmax(W [u; v; |u - v|]) over {no match, match}; score = P(match)

Interaction: the two sentences meet before the decision; score = P(match) = softmax(logits)[:, 1].
    esim   (Chen et al., 2017) BiLSTM over each side; soft alignment e_ij = a_i . b_j, ã_i = Σ_j softmax_j(e_ij) b_j
           (and b̃ alike); m = [a; ã; a - ã; a * ã] -> Linear+ReLU -> BiLSTM; [mean; max] of both sides -> MLP
    cross  a BERT encoder over [CLS] a [SEP] b [SEP] (segment ids 0 then 1), mean over tokens -> Linear
Every model: forward(batch) -> (loss or None without labels, scores (B,)).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nlplab.errors import ConfigError
from nlplab.models.classifier import ClassifierConfig, TextClassifier
from nlplab.models.encoder import BertConfig, BertEncoder
from nlplab.nn.activations import get_activation
from nlplab.nn.functional import at_least_float32, softmax
from nlplab.nn.layers import Dropout, Embedding, Linear
from nlplab.nn.losses import (
    contrastive_loss,
    cosine_similarity,
    cross_entropy,
    info_nce,
    triplet_margin_loss,
)
from nlplab.nn.pooling import masked_max_pool, masked_mean_pool
from nlplab.nn.rnn import LSTM

BI_ENCODERS = {"bow": "bow", "cnn": "textcnn", "lstm": "lstm", "simcse": "transformer"}
"""matcher model -> the TextClassifier encoder it uses for each sentence"""
MODELS = (*BI_ENCODERS, "esim", "cross")
LOSSES = ("contrastive", "triplet", "infonce", "infonce-unsup", "ce")
DEFAULT_LOSS = {"bow": "contrastive", "cnn": "contrastive", "lstm": "contrastive", "simcse": "infonce", "esim": "ce", "cross": "ce"}

Side = dict[str, Tensor]
"""One padded side of a batch: ids (B,T), mask (B,T) True on real tokens, lengths (B,); cross adds segments (B,T)."""


@dataclass
class MatcherConfig(ClassifierConfig):
    """Shape and loss of a matcher (see the module docstring): the sentence encoder's shape is the classifier's
    (`bert` holds the BertConfig fields of the `simcse` and `cross` encoders; `num_classes` is not used, the
    bi-encoder's head projects to `hidden_size`), plus the matching model, its loss and the loss's constants."""

    model: str = "lstm"
    loss: str = "contrastive"
    margin: float = 0.5
    """contrastive: cos of a non-match is pushed below it; triplet: gap wanted between the two distances"""
    temperature: float = 0.05

    def check(self) -> None:
        if self.model not in MODELS:
            raise ConfigError(f"unknown matching model {self.model!r}; choose one of {', '.join(MODELS)}")
        if self.loss not in LOSSES:
            raise ConfigError(f"unknown matching loss {self.loss!r}; choose one of {', '.join(LOSSES)}")
        if self.model in ("esim", "cross") and self.loss != "ce":
            raise ConfigError(f"the interaction model {self.model!r} scores a pair with a classifier: use --loss ce, "
                              f"not {self.loss!r} (the other losses need sentence vectors: bow, cnn, lstm, simcse)")
        if self.model in ("simcse", "cross") and self.bert is None:
            raise ConfigError(f"the {self.model} model needs its encoder shape: MatcherConfig(bert={{BertConfig fields}})")


def cross_entropy_loss(logits: Tensor, labels: Tensor, impl: str) -> Tensor:
    """Cross-entropy in at least float32, fused or hand-written."""
    loss_fn = F.cross_entropy if impl == "fused" else cross_entropy
    return loss_fn(at_least_float32(logits), labels)


class BiEncoder(nn.Module):
    """Siamese matcher: the same sentence encoder for both sides; scores by cosine (or P(match) with loss ce)."""

    def __init__(self, cfg: MatcherConfig) -> None:
        super().__init__()
        self.cfg = cfg
        shape = {f.name: getattr(cfg, f.name) for f in fields(ClassifierConfig)}
        self.encoder = TextClassifier(ClassifierConfig(**{**shape, "model": BI_ENCODERS[cfg.model],
                                                          "num_classes": cfg.hidden_size,
                                                          "kernel_sizes": tuple(cfg.kernel_sizes)}))
        if cfg.loss == "ce":
            self.head = Linear(3 * cfg.hidden_size, 2, impl=cfg.impl)

    def embed(self, side: Side) -> Tensor:
        """Sentence vectors (B, hidden_size): the pooled encoding through the classifier's head as a projection."""
        _, z = self.encoder({k: side[k] for k in ("ids", "mask", "lengths")})
        return z

    def forward(self, batch: dict[str, Any]) -> tuple[Tensor | None, Tensor]:
        u, v = at_least_float32(self.embed(batch["a"])), at_least_float32(self.embed(batch["b"]))
        if self.cfg.loss == "ce":
            logits = self.head(torch.cat([u, v, (u - v).abs()], dim=-1))
            scores = softmax(at_least_float32(logits), -1)[:, 1]
        else:
            scores = cosine_similarity(u, v)
        labels = batch.get("labels")
        if labels is None:
            return None, scores
        return self.loss(u, v, labels, logits if self.cfg.loss == "ce" else None), scores

    def loss(self, u: Tensor, v: Tensor, labels: Tensor, logits: Tensor | None) -> Tensor:
        cfg = self.cfg
        if cfg.loss == "ce":
            return cross_entropy_loss(logits, labels, cfg.impl)
        if cfg.loss == "contrastive":
            return contrastive_loss(u, v, labels, cfg.margin)
        match = labels.bool()
        if cfg.loss == "triplet":
            if match.sum() < 2:
                return u.sum() * 0.0
            anchor, positive = u[match], v[match]
            return triplet_margin_loss(anchor, positive, positive.roll(1, dims=0), cfg.margin, distance="cosine")
        if not match.any():
            return u.sum() * 0.0
        return info_nce(u[match], torch.cat([v[match], v[~match]]), cfg.temperature)


def masked_softmax(scores: Tensor, mask: Tensor) -> Tensor:
    """softmax over the last dim with masked-out (False) positions at -inf; mask broadcasts against scores."""
    return softmax(scores.masked_fill(~mask, float("-inf")), -1)


class ESIM(nn.Module):
    """Enhanced Sequential Inference Model; see the module docstring. Hidden size H, embeddings E."""

    def __init__(self, cfg: MatcherConfig) -> None:
        super().__init__()
        self.cfg, h = cfg, cfg.hidden_size
        self.embedding = Embedding(cfg.vocab_size, cfg.embed_dim, padding_idx=cfg.pad_id, impl=cfg.impl)
        self.dropout = Dropout(cfg.dropout, impl=cfg.impl)
        self.input_encoder = LSTM(cfg.embed_dim, h, bidirectional=True, impl=cfg.impl)
        self.project = nn.Sequential(Linear(8 * h, h, impl=cfg.impl), get_activation("relu", cfg.impl))
        self.composer = LSTM(h, h, bidirectional=True, impl=cfg.impl)
        self.classifier = nn.Sequential(Dropout(cfg.dropout, impl=cfg.impl), Linear(8 * h, h, impl=cfg.impl),
                                        get_activation("tanh", cfg.impl), Dropout(cfg.dropout, impl=cfg.impl),
                                        Linear(h, 2, impl=cfg.impl))

    def forward(self, batch: dict[str, Any]) -> tuple[Tensor | None, Tensor]:
        a, b = batch["a"], batch["b"]
        xa, _ = self.input_encoder(self.dropout(self.embedding(a["ids"])), a["lengths"])  # (B, Ta, 2H)
        xb, _ = self.input_encoder(self.dropout(self.embedding(b["ids"])), b["lengths"])  # (B, Tb, 2H)
        e = xa @ xb.transpose(1, 2)  # (B, Ta, Tb)
        a_aligned = masked_softmax(e, b["mask"][:, None, :]) @ xb
        b_aligned = masked_softmax(e.transpose(1, 2), a["mask"][:, None, :]) @ xa
        pooled = []
        for x, aligned, side in ((xa, a_aligned, a), (xb, b_aligned, b)):
            m = torch.cat([x, aligned, x - aligned, x * aligned], dim=-1)  # (B, T, 8H)
            y, _ = self.composer(self.dropout(self.project(m)), side["lengths"])
            pooled += [masked_mean_pool(y, side["mask"]), masked_max_pool(y, side["mask"])]
        logits = self.classifier(torch.cat(pooled, dim=-1))
        labels = batch.get("labels")
        scores = softmax(at_least_float32(logits), -1)[:, 1]
        return (None if labels is None else cross_entropy_loss(logits, labels, self.cfg.impl)), scores


class CrossEncoder(nn.Module):
    """A BERT encoder over the concatenated pair (batch["pair"]: ids, mask, segments), mean-pooled, then Linear -> 2."""

    def __init__(self, cfg: MatcherConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = BertEncoder(BertConfig(**{**cfg.bert, "impl": cfg.impl}))
        self.dropout = Dropout(cfg.dropout, impl=cfg.impl)
        self.head = Linear(self.encoder.cfg.hidden_size, 2, impl=cfg.impl)

    def forward(self, batch: dict[str, Any]) -> tuple[Tensor | None, Tensor]:
        pair = batch["pair"]
        hidden = self.encoder(pair["ids"], pair["mask"], pair["segments"])
        logits = self.head(self.dropout(masked_mean_pool(hidden, pair["mask"])))
        labels = batch.get("labels")
        scores = softmax(at_least_float32(logits), -1)[:, 1]
        return (None if labels is None else cross_entropy_loss(logits, labels, self.cfg.impl)), scores


def build_matcher(cfg: MatcherConfig) -> BiEncoder | ESIM | CrossEncoder:
    """The matcher `cfg.model` names, after checking the config."""
    cfg.check()
    if cfg.model == "esim":
        return ESIM(cfg)
    if cfg.model == "cross":
        return CrossEncoder(cfg)
    return BiEncoder(cfg)


def scores_are_probabilities(cfg: MatcherConfig) -> bool:
    """P(match) scores are cut at 0.5; cosine scores at a threshold tuned on the dev split."""
    return cfg.loss == "ce"
