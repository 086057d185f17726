"""Sequence labelling, assembled from `nlplab.nn`: one tag per character.

    ids (B,T) ─Embedding─▶ (B,T,E) ─encoder─▶ (B,T,D) ─Dropout─Linear─▶ emissions (B,T,K) ─▶ softmax per token | CRF

Encoders: `lstm` / `gru` (bidirectional, D = 2·hidden_size), `cnn` (`layers` same-padded width-3 convolutions
of hidden_size channels, each followed by the activation; the receptive field grows by two characters per
layer), `transformer` (a BERT-style encoder with its own embeddings, D = hidden_size).
Heads: a per-token softmax (loss = cross-entropy averaged over real tokens), or a linear-chain CRF (loss = its
negative log-likelihood summed over the batch, divided by the number of real tokens so the two losses share a
scale); with `constraints="bio"` the CRF never decodes an I-X that does not follow B-X or I-X.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nlplab.errors import ConfigError
from nlplab.models.encoder import BertConfig, BertEncoder
from nlplab.nn.activations import get_activation
from nlplab.nn.cnn import conv1d_unfold
from nlplab.nn.crf import CRF, bio_constraints
from nlplab.nn.functional import at_least_float32
from nlplab.nn.layers import Dropout, Embedding, Linear, check_impl
from nlplab.nn.losses import cross_entropy
from nlplab.nn.rnn import GRU, LSTM

RECURRENT = {"lstm": LSTM, "gru": GRU}
MODELS = (*RECURRENT, "cnn", "transformer")
CONV_WIDTH = 3


@dataclass
class TaggerConfig:
    """Shape of a tagger; `labels` are the tag names in id order (the CRF's BIO constraints read them)."""

    model: str = "lstm"
    vocab_size: int = 0
    labels: list[str] = field(default_factory=list)
    embed_dim: int = 128
    hidden_size: int = 128
    layers: int = 1
    dropout: float = 0.1
    activation: str = "relu"
    pad_id: int | None = 0
    crf: bool = False
    constraints: str | None = None
    """"bio" to forbid invalid BIO transitions in the CRF, or None."""
    impl: str = "fused"
    bert: dict[str, Any] | None = None
    """The `BertConfig` fields of the `transformer` encoder."""


class ConvEncoder(nn.Module):
    """x (B, T, E), mask (B, T) -> (B, T, channels): `layers` same-padded convolutions of width 3, padding zeroed
    before each, so a sequence's output does not depend on its batch. impl="manual" runs `conv1d_unfold`."""

    def __init__(self, in_dim: int, channels: int, layers: int, activation: str, dropout: float, impl: str) -> None:
        super().__init__()
        self.impl = check_impl(impl)
        self.convs = nn.ModuleList(nn.Conv1d(in_dim if i == 0 else channels, channels, CONV_WIDTH) for i in range(layers))
        self.activation = get_activation(activation, impl)
        self.dropout = Dropout(dropout, impl)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        for i, conv in enumerate(self.convs):
            if i:
                x = self.dropout(x)
            x = F.pad(torch.where(mask.unsqueeze(-1), x, 0.0), (0, 0, CONV_WIDTH // 2, CONV_WIDTH // 2))
            h = conv(x.transpose(1, 2)).transpose(1, 2) if self.impl == "fused" else conv1d_unfold(x, conv.weight, conv.bias)
            x = self.activation(h)
        return x


class Tagger(nn.Module):
    """forward(batch) -> (loss or None, emissions (B, T, K)); decode(batch) -> tag ids (B, T).
    batch holds ids (B, T), mask (B, T), lengths (B,) and, for a loss, tags (B, T)."""

    def __init__(self, cfg: TaggerConfig) -> None:
        super().__init__()
        if cfg.model not in MODELS:
            raise ConfigError(f"unknown tagging model {cfg.model!r}; choose one of {', '.join(MODELS)}")
        if cfg.constraints not in (None, "bio"):
            raise ConfigError(f"constraints must be 'bio' or None, got {cfg.constraints!r}")
        self.cfg, num_tags = cfg, len(cfg.labels)
        if cfg.model == "transformer":
            if cfg.bert is None:
                raise ConfigError("the transformer tagger needs its encoder shape: TaggerConfig(bert={BertConfig fields})")
            self.encoder = BertEncoder(BertConfig(**{**cfg.bert, "impl": cfg.impl}))
            out_dim = self.encoder.cfg.hidden_size
        else:
            self.embedding = Embedding(cfg.vocab_size, cfg.embed_dim, padding_idx=cfg.pad_id, impl=cfg.impl)
            if cfg.model == "cnn":
                self.encoder = ConvEncoder(cfg.embed_dim, cfg.hidden_size, cfg.layers, cfg.activation, cfg.dropout, cfg.impl)
                out_dim = cfg.hidden_size
            else:
                self.encoder = RECURRENT[cfg.model](cfg.embed_dim, cfg.hidden_size, num_layers=cfg.layers, bidirectional=True,
                                                    dropout=cfg.dropout if cfg.layers > 1 else 0.0, impl=cfg.impl)
                out_dim = 2 * cfg.hidden_size
        self.dropout = Dropout(cfg.dropout, impl=cfg.impl)
        self.head = Linear(out_dim, num_tags, impl=cfg.impl)
        self.crf = CRF(num_tags, bio_constraints(cfg.labels) if cfg.constraints == "bio" else None) if cfg.crf else None

    def emissions(self, batch: dict[str, Tensor]) -> Tensor:
        ids, mask = batch["ids"], batch["mask"]
        if self.cfg.model == "transformer":
            x = self.encoder(ids, mask)
        else:
            x = self.dropout(self.embedding(ids))
            x = self.encoder(x, mask) if self.cfg.model == "cnn" else self.encoder(x, batch["lengths"])[0]
        return self.head(self.dropout(x))

    def forward(self, batch: dict[str, Tensor]) -> tuple[Tensor | None, Tensor]:
        emissions = self.emissions(batch)
        tags, mask = batch.get("tags"), batch["mask"]
        if tags is None:
            return None, emissions
        emissions = at_least_float32(emissions)
        if self.crf is not None:
            return self.crf(emissions, tags, mask) / mask.sum(), emissions
        loss_fn = F.cross_entropy if self.cfg.impl == "fused" else cross_entropy
        return loss_fn(emissions[mask], tags[mask]), emissions

    @torch.no_grad()
    def decode(self, emissions: Tensor, mask: Tensor) -> Tensor:
        """Tag ids (B, T): Viterbi with a CRF, else the argmax of each token."""
        if self.crf is not None:
            return self.crf.decode(emissions, mask)[0]
        return emissions.argmax(-1)
