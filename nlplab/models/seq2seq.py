"""The encoder–decoder Transformer (Vaswani et al., 2017) for sequence-to-sequence tasks (translation, ...).

    memory = Encoder(√d · E_src[src] + PE)                    self-attention over the source, padding masked
    logits = W_out Decoder(√d · E_tgt[tgt] + PE, memory)      causal self-attention, then cross-attention to memory

Trained with teacher forcing: the decoder reads the target shifted right (BOS y₁ … y_{n-1}) and predicts y₁ … y_n
(EOS last) at every position at once. At inference it runs one token at a time, feeding back its own outputs,
with the keys and values of earlier positions (and of the memory) kept in a cache.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from nlplab.nn.layers import Dropout, Embedding, LayerNorm, Linear, check_impl
from nlplab.nn.positions import SinusoidalPositions, check_positions
from nlplab.nn.transformer import BlockCache, TransformerBlock


@dataclass
class Seq2SeqConfig:
    """Shape of an encoder–decoder Transformer; the defaults are the original base model's (post-LN, ReLU, fixed
    sinusoidal positions). norm="pre" adds a final LayerNorm to each stack."""

    src_vocab_size: int
    tgt_vocab_size: int
    d_model: int = 512
    num_heads: int = 8
    d_ff: int = 2048
    num_encoder_layers: int = 6
    num_decoder_layers: int = 6
    dropout: float = 0.1
    max_positions: int = 512
    norm: str = "post"
    activation: str = "relu"
    pad_id: int = 0
    impl: str = "fused"


class Seq2SeqTransformer(nn.Module):
    """src (B, S) -> memory (B, S, d_model); (tgt (B, T), memory) -> logits (B, T, tgt_vocab_size)."""

    def __init__(self, cfg: Seq2SeqConfig) -> None:
        super().__init__()
        self.cfg, impl = cfg, check_impl(cfg.impl)
        self.src_tokens = Embedding(cfg.src_vocab_size, cfg.d_model, padding_idx=cfg.pad_id, impl=impl)
        self.tgt_tokens = Embedding(cfg.tgt_vocab_size, cfg.d_model, padding_idx=cfg.pad_id, impl=impl)
        self.positions = SinusoidalPositions(cfg.max_positions, cfg.d_model)
        self.drop = Dropout(cfg.dropout, impl)

        def stack(n: int, cross: bool) -> nn.ModuleList:
            return nn.ModuleList(TransformerBlock(cfg.d_model, cfg.num_heads, cfg.d_ff, cfg.dropout, cfg.norm,
                                                  cfg.activation, cross_attention=cross, impl=impl) for _ in range(n))

        def final_norm() -> nn.Module:
            return LayerNorm(cfg.d_model, impl=impl) if cfg.norm == "pre" else nn.Identity()

        self.encoder, self.encoder_norm = stack(cfg.num_encoder_layers, False), final_norm()
        self.decoder, self.decoder_norm = stack(cfg.num_decoder_layers, True), final_norm()
        self.out = Linear(cfg.d_model, cfg.tgt_vocab_size, impl=impl)

    def embed(self, table: Embedding, ids: Tensor, start: int = 0) -> Tensor:
        """√d · E[ids] + PE[start … start+T-1]: (B, T) -> (B, T, d_model); √d puts the N(0, 1)-initialised
        embeddings and the sinusoids in [-1, 1] on a comparable scale."""
        check_positions(start + ids.shape[1], self.cfg.max_positions)
        positions = self.positions(torch.arange(start, start + ids.shape[1], device=ids.device))
        return self.drop(table(ids) * math.sqrt(self.cfg.d_model) + positions)

    def encode(self, src: Tensor, src_mask: Tensor) -> Tensor:
        """src (B, S), src_mask (B, S) True at real tokens -> memory (B, S, d_model)."""
        x = self.embed(self.src_tokens, src)
        for block in self.encoder:
            x, _ = block(x, key_padding_mask=src_mask)
        return self.encoder_norm(x)

    def decode(self, tgt: Tensor, memory: Tensor, src_mask: Tensor,
               cache: list[BlockCache] | None = None) -> tuple[Tensor, list[BlockCache]]:
        """tgt (B, T) -> (logits (B, T, tgt_vocab_size), cache); with a cache, tgt holds the next positions only."""
        past = 0 if cache is None else cache[0][0][0].shape[2]
        x = self.embed(self.tgt_tokens, tgt, past)
        new_cache = []
        for i, block in enumerate(self.decoder):
            x, layer_cache = block(x, causal=True, context=memory, context_mask=src_mask,
                                   cache=None if cache is None else cache[i])
            new_cache.append(layer_cache)
        return self.out(self.decoder_norm(x)), new_cache

    def forward(self, src: Tensor, src_mask: Tensor, tgt: Tensor) -> Tensor:
        """Teacher forcing: src (B, S), src_mask (B, S), tgt (B, T) = BOS y₁ … y_{T-1} -> logits (B, T, V)."""
        return self.decode(tgt, self.encode(src, src_mask), src_mask)[0]

    @torch.no_grad()
    def greedy_decode(self, src: Tensor, src_mask: Tensor, bos_id: int, eos_id: int, max_len: int) -> Tensor:
        """Pick the most likely next token until every sequence has produced EOS or max_len tokens are out:
        returns (B, ≤max_len) ids without BOS, padded with pad_id after each EOS."""
        memory = self.encode(src, src_mask)
        token = torch.full((src.shape[0], 1), bos_id, dtype=torch.long, device=src.device)
        done = torch.zeros(src.shape[0], dtype=torch.bool, device=src.device)
        cache, out = None, []
        for _ in range(max_len):
            logits, cache = self.decode(token, memory, src_mask, cache)
            token = logits[:, -1].argmax(-1, keepdim=True).masked_fill(done[:, None], self.cfg.pad_id)
            out.append(token)
            done |= token[:, 0] == eos_id
            if done.all():
                break
        return torch.cat(out, 1)
