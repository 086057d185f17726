"""Text classification, assembled from `nlplab.nn`: embed the tokens, encode the sequence into one vector,
project to class logits.

    ids (B,T) ─Embedding─▶ (B,T,E) ─encoder─▶ (B,D) ─Dropout─Linear─▶ logits (B,C)

Encoders: `bow` (masked mean of the embeddings, then a hidden layer; with `ngrams > 1` the hashed n-grams of
the tokens are embedded and averaged too, as in fastText), `textcnn` (convolutions of several widths, max over
time), `rnn` / `lstm` / `gru` (bidirectional; the outputs pooled by `pooling`: masked max over time, mean, or
ULMFiT's concat of the last states, max and mean, then BatchNorm as in ULMFiT's head: the pooled features of a
pre-trained LM are far from centred, and Adam's equal-size steps on all of them would swing the logits),
`transformer` (a BERT-style encoder with its own embeddings, masked mean of the last hidden states; from scratch or
from a pretrained folder).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from nlplab.errors import ConfigError
from nlplab.models.encoder import BertConfig, BertEncoder
from nlplab.nn.activations import get_activation
from nlplab.nn.cnn import TextCNN
from nlplab.nn.functional import at_least_float32
from nlplab.nn.layers import BatchNorm1d, Dropout, Embedding, Linear
from nlplab.nn.losses import cross_entropy
from nlplab.nn.pooling import concat_pool, masked_max_pool, masked_mean_pool
from nlplab.nn.rnn import GRU, LSTM, RNN

RECURRENT = {"rnn": RNN, "lstm": LSTM, "gru": GRU}
HASH_PRIME = 1_000_003
MODELS = ("bow", "textcnn", *RECURRENT, "transformer")
IMPLS = ("fused", "manual")
POOLINGS = ("max", "mean", "concat")


@dataclass
class ClassifierConfig:
    """Shape of a classifier. `impl="fused"` uses torch kernels (cuDNN/MKL RNNs, conv, fused cross-entropy);
    `"manual"` runs the hand-written versions of the same computation with the same parameters."""

    model: str = "bow"
    vocab_size: int = 0
    num_classes: int = 2
    embed_dim: int = 128
    hidden_size: int = 128
    layers: int = 1
    dropout: float = 0.1
    embed_dropout: float | None = None
    num_filters: int = 128
    kernel_sizes: tuple[int, ...] = (2, 3, 4)
    activation: str = "relu"
    pad_id: int | None = 0
    """The [PAD] token's id (its embedding stays zero), or None when the tokenizer has no [PAD]."""
    impl: str = "fused"
    ngrams: int = 1
    ngram_buckets: int = 200_000
    class_weights: tuple[float, ...] | None = None
    """Weights w_c of the training loss's classes (cross-entropy Σ w_y·(-log p_y) / Σ w_y); None: all 1."""
    pooling: str = "max"
    """How rnn/lstm/gru outputs become one vector: "max" or "mean" over time, or "concat" [last, max, mean]."""
    bert: dict[str, Any] | None = None
    """The `BertConfig` fields of the `transformer` encoder."""


def hashed_ngrams(ids: torch.Tensor, mask: torch.Tensor, n: int, buckets: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The n-grams of ids (B, T) as bucket ids (B, T-n+1) in [0, buckets) and their mask (all n tokens real).

    h = (((n·P + w_t)·P + w_t+1)·P + ... ) mod buckets, with P a prime: the fastText hashing trick, which maps
    the unbounded set of n-grams to a fixed table without a vocabulary (collisions are rare and harmless)."""
    if ids.shape[1] < n:
        return ids.new_zeros(ids.shape[0], 0), mask.new_zeros(mask.shape[0], 0)
    h = torch.full_like(ids[:, : ids.shape[1] - n + 1], n)
    for w in ids.unfold(1, n, 1).unbind(-1):
        h = (h * HASH_PRIME + w) % buckets
    return h, mask.unfold(1, n, 1).all(-1)


class TextClassifier(nn.Module):
    """forward(batch) -> (loss or None, logits (B, num_classes)); batch holds ids, mask, lengths[, labels]."""

    def __init__(self, cfg: ClassifierConfig) -> None:
        super().__init__()
        if cfg.model not in MODELS:
            raise ConfigError(f"unknown model {cfg.model!r}; choose one of {', '.join(MODELS)}")
        if cfg.impl not in IMPLS:
            raise ConfigError(f"unknown impl {cfg.impl!r}; choose one of {', '.join(IMPLS)}")
        if cfg.ngrams > 1 and cfg.model != "bow":
            raise ConfigError(f"ngrams > 1 (hashed n-gram features) works with the bow model only, not {cfg.model!r}")
        if cfg.pooling not in POOLINGS:
            raise ConfigError(f"unknown pooling {cfg.pooling!r}; choose one of {', '.join(POOLINGS)}")
        if cfg.pooling != "max" and cfg.model not in RECURRENT:
            raise ConfigError(f"pooling {cfg.pooling} applies to rnn, lstm and gru; {cfg.model!r} pools its own way")
        self.cfg = cfg
        if cfg.model == "transformer":
            if cfg.bert is None:
                raise ConfigError("the transformer model needs its encoder shape: ClassifierConfig(bert={BertConfig fields})")
            self.encoder = BertEncoder(BertConfig(**{**cfg.bert, "impl": cfg.impl}))
            out_dim = self.encoder.cfg.hidden_size
        else:
            self.embedding = Embedding(cfg.vocab_size, cfg.embed_dim, padding_idx=cfg.pad_id, impl=cfg.impl)
        if cfg.ngrams > 1:
            self.ngram_embedding = Embedding(cfg.ngram_buckets, cfg.embed_dim, impl=cfg.impl)
        if cfg.model == "bow":
            self.encoder = nn.Sequential(Linear(cfg.embed_dim, cfg.hidden_size, impl=cfg.impl),
                                         get_activation(cfg.activation, cfg.impl))
            out_dim = cfg.hidden_size
        elif cfg.model == "textcnn":
            self.encoder = TextCNN(cfg.embed_dim, cfg.num_filters, tuple(cfg.kernel_sizes), activation=cfg.activation, impl=cfg.impl)
            out_dim = self.encoder.output_dim
        elif cfg.model in RECURRENT:
            self.encoder = RECURRENT[cfg.model](cfg.embed_dim, cfg.hidden_size, num_layers=cfg.layers, bidirectional=True,
                                                dropout=cfg.dropout if cfg.layers > 1 else 0.0, impl=cfg.impl)
            out_dim = (6 if cfg.pooling == "concat" else 2) * cfg.hidden_size
            if cfg.pooling == "concat":
                self.pool_norm = BatchNorm1d(out_dim, impl=cfg.impl)
        self.dropout = Dropout(cfg.dropout, impl=cfg.impl)
        self.embed_dropout = Dropout(cfg.dropout if cfg.embed_dropout is None else cfg.embed_dropout, impl=cfg.impl)
        self.head = Linear(out_dim, cfg.num_classes, impl=cfg.impl)
        weights = None if cfg.class_weights is None else torch.tensor(cfg.class_weights, dtype=torch.float32)
        self.register_buffer("class_weight", weights, persistent=False)

    def encode(self, ids: torch.Tensor, mask: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """ids (B,T), mask (B,T) True on real tokens, lengths (B,) -> sentence vectors (B, D)."""
        if self.cfg.model == "transformer":
            return masked_mean_pool(self.encoder(ids, mask), mask)
        x = self.embedding(ids)
        if self.cfg.model == "bow":
            grams = [hashed_ngrams(ids, mask, n, self.cfg.ngram_buckets) for n in range(2, self.cfg.ngrams + 1)]
            x = torch.cat([x, *(self.ngram_embedding(h) for h, _ in grams)], dim=1)
            mask = torch.cat([mask, *(m for _, m in grams)], dim=1)
            return self.encoder(masked_mean_pool(self.embed_dropout(x), mask))
        x = self.embed_dropout(x)
        if self.cfg.model == "textcnn":
            return self.encoder(x, mask)
        outputs, _ = self.encoder(x, lengths)
        if self.cfg.pooling == "concat":
            return self.normalized(concat_pool(outputs, mask, lengths))
        return (masked_mean_pool if self.cfg.pooling == "mean" else masked_max_pool)(outputs, mask)

    def normalized(self, pooled: torch.Tensor) -> torch.Tensor:
        """BatchNorm of the concat-pooled features (B, 6H); a training batch of one example, whose variance cannot
        be measured, is normalised with the running statistics."""
        norm = self.pool_norm
        if self.training and len(pooled) == 1:
            return F.batch_norm(pooled, norm.running_mean, norm.running_var, norm.weight, norm.bias, False, 0.0, norm.eps)
        return norm(pooled)

    def layer_groups(self) -> list[list[nn.Parameter]]:
        """The parameters cut into layers, bottom first, for discriminative learning rates and gradual unfreezing
        (`nlplab.optim.ulmfit`): the embeddings; each transformer block, or each recurrent layer (both directions),
        or the bow/textcnn encoder; the head (with the transformer's pooler, or the concat pooling's BatchNorm)."""
        if self.cfg.model == "transformer":
            enc = self.encoder
            bottom = [*enc.tokens.parameters(), *enc.positions.parameters(), *enc.segments.parameters(), *enc.embed_norm.parameters()]
            return [bottom, *(list(b.parameters()) for b in enc.blocks), [*enc.pooler.parameters(), *self.head.parameters()]]
        bottom = [*self.embedding.parameters(), *(self.ngram_embedding.parameters() if self.cfg.ngrams > 1 else ())]
        if self.cfg.model in RECURRENT:
            params = dict(self.encoder.named_parameters())
            middle = [[p for name, p in params.items() if name.removesuffix("_reverse").endswith(f"_l{k}")]
                      for k in range(self.cfg.layers)]
        else:
            middle = [list(self.encoder.parameters())]
        top = [*(self.pool_norm.parameters() if self.cfg.pooling == "concat" else ()), *self.head.parameters()]
        return [bottom, *middle, top]

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor | None, torch.Tensor]:
        logits = self.head(self.dropout(self.encode(batch["ids"], batch["mask"], batch["lengths"])))
        labels = batch.get("labels")
        if labels is None:
            return None, logits
        loss_fn = F.cross_entropy if self.cfg.impl == "fused" else cross_entropy
        logits32 = at_least_float32(logits)
        weight = None if self.class_weight is None else self.class_weight.to(logits32.dtype)
        return loss_fn(logits32, labels, weight=weight), logits
