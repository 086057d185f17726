"""GPT (Radford et al., 2018, 2019): a stack of Transformer decoder blocks that predicts the next token, loading
Hugging Face GPT-2 checkpoints.

    h⁰ = E_token[ids] + E_position[0 … T-1]
    hˡ = hˡ⁻¹ + Attn(LN(hˡ⁻¹)) (causal), then + FFN(LN(·)),  l = 1 … L
    logits = LN_f(h^L) E_tokenᵀ

How it differs from the decoder of the original Transformer (Vaswani et al., 2017):
- no cross-attention: there is no encoder, each block is masked self-attention and a feed-forward network;
- pre-LN: LayerNorm before each sublayer, inside the residual branch, instead of after the residual sum;
- a final LayerNorm after the last block (the pre-LN residual stream is never normalised otherwise);
- learned absolute positions (a table of block_size vectors) instead of fixed sinusoids;
- tied embeddings: the output layer reuses the token embedding matrix, logits = h E_tokenᵀ;
- GELU (tanh form) in the feed-forward network instead of ReLU;
- initialisation N(0, 0.02), with the projections into the residual stream scaled by 1/√(2L).

With `moe_experts` = E > 0 every block's FFN is a mixture of E experts (`nlplab.nn.moe`, Switch / GShard routing);
after each forward `GPT.aux_loss` holds the sum over blocks of their load-balancing losses, which training adds
to the language-model loss with a small weight (Switch uses 0.01): loss = LM loss + 0.01 · aux_loss.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nlplab.errors import ConfigError
from nlplab.models.hf import HFCheckpoint, hf_activation, write_checkpoint
from nlplab.models.virtual_tokens import extend_mask, prefix_cache, prepend_prompt
from nlplab.nn import init
from nlplab.nn.layers import Dropout, Embedding, LayerNorm, check_impl
from nlplab.nn.positions import LearnedPositions, check_positions
from nlplab.nn.transformer import BlockCache, TransformerBlock


@dataclass
class GPTConfig:
    """Shape of a GPT; the defaults are GPT-2 small's (124M). d_ff = n_inner or 4·n_embd. `dropout` serves
    embeddings, attention weights and sublayer outputs. moe_experts = 0 keeps the dense FFN; E > 0 puts E experts
    of width d_ff in each block, each token routed to its moe_top_k (1 or 2), at most
    ⌈moe_capacity_factor · tokens · top_k / E⌉ tokens per expert."""

    vocab_size: int = 50257
    block_size: int = 1024
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    n_inner: int | None = None
    dropout: float = 0.0
    bias: bool = True
    layer_norm_eps: float = 1e-5
    activation: str = "gelu_tanh"
    impl: str = "fused"
    moe_experts: int = 0
    moe_top_k: int = 1
    moe_capacity_factor: float = 1.25

    @classmethod
    def from_hf(cls, ckpt: HFCheckpoint, impl: str = "fused") -> GPTConfig:
        """The config of a Hugging Face GPT-2 folder (its config.json)."""
        c = ckpt.config
        return cls(vocab_size=c["vocab_size"], block_size=c["n_positions"], n_layer=c["n_layer"], n_head=c["n_head"],
                   n_embd=c["n_embd"], n_inner=c.get("n_inner"), dropout=c.get("resid_pdrop", 0.1),
                   layer_norm_eps=c.get("layer_norm_epsilon", 1e-5), activation=ckpt.activation("activation_function"),
                   impl=impl)


HF_LAYER_NAMES = {"attn.out": "attn.c_proj", "ffn.fc1": "mlp.c_fc", "ffn.fc2": "mlp.c_proj"}
"""Linear of an nlplab block -> its Hugging Face GPT2Block Conv1D (q and kv join in attn.c_attn)."""


class GPT(nn.Module):
    """ids (B, T) -> next-token logits (B, T, vocab_size); see the module docstring for the formulas. `prompt` and
    `prefix` hold virtual tokens when set (prompt or prefix tuning, see `nlplab.models.virtual_tokens`)."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.cfg, impl = cfg, check_impl(cfg.impl)
        self.tokens = Embedding(cfg.vocab_size, cfg.n_embd, impl=impl)
        self.positions = LearnedPositions(cfg.block_size, cfg.n_embd, impl=impl)
        self.drop = Dropout(cfg.dropout, impl)
        self.blocks = nn.ModuleList(
            TransformerBlock(cfg.n_embd, cfg.n_head, cfg.n_inner or 4 * cfg.n_embd, cfg.dropout, "pre", cfg.activation,
                             eps=cfg.layer_norm_eps, bias=cfg.bias, impl=impl, experts=cfg.moe_experts,
                             top_k=cfg.moe_top_k, capacity_factor=cfg.moe_capacity_factor)
            for _ in range(cfg.n_layer))
        self.final_norm = LayerNorm(cfg.n_embd, cfg.layer_norm_eps, impl)
        self.aux_loss = torch.zeros(())
        self.prompt: nn.Module | None = None
        self.prefix: nn.Module | None = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """GPT-2's init: weights N(0, 0.02), biases 0, LayerNorms (1, 0); attn.out and ffn.fc2 (the experts' w2
        with MoE), which add into the residual stream once per sublayer, N(0, 0.02/√(2L)) so that the stream's
        variance does not grow with L."""
        for name, p in self.named_parameters():
            if "norm" in name:
                continue
            if name.endswith(("bias", "ffn.b1", "ffn.b2")):
                nn.init.zeros_(p)
            else:
                residual = name.endswith(("attn.out.weight", "ffn.fc2.weight", "ffn.w2"))
                init.normal_(p, 0.02 / math.sqrt(2 * self.cfg.n_layer) if residual else 0.02)

    def forward(self, ids: Tensor, cache: list[BlockCache] | None = None, positions: Tensor | None = None,
                key_padding_mask: Tensor | None = None) -> tuple[Tensor, list[BlockCache]]:
        """ids (B, T) -> (logits (B, T, vocab_size), cache). With the cache of earlier calls, ids are the next T
        tokens (positions continue after the cached ones) and the logits equal those of the full forward.
        Virtual tokens enter at the first call (no cache) and stay in the returned cache.

        Rows of different lengths (continuous batching, left padding): `positions` (B, T) gives each new token's
        position (default past … past + T - 1 for every row; virtual tokens hold 0 … n-1) and `key_padding_mask`
        (B, T_past + T) is True at the real keys, cached ones included (a mask that leaves out the virtual tokens
        gains them in front).
        Sets `self.aux_loss` () to the blocks' summed MoE balance loss (0 without experts)."""
        x, new_cache = self.features(ids, cache, positions, key_padding_mask)
        logits = F.linear(x, self.tokens.weight) if self.cfg.impl == "fused" else x @ self.tokens.weight.T
        return logits, new_cache

    def features(self, ids: Tensor, cache: list[BlockCache] | None = None, positions: Tensor | None = None,
                 key_padding_mask: Tensor | None = None) -> tuple[Tensor, list[BlockCache]]:
        """The body without the output layer: ids (B, T) -> (LN_f(h^L) (B, T, n_embd) at the real tokens, cache),
        what heads other than the tied unembedding (a reward or value head) read. `positions` and
        `key_padding_mask` as in `forward`."""
        x = self.tokens(ids)
        if cache is None:
            x = prepend_prompt(self.prompt, x)
            cache = prefix_cache(self.prefix, ids.shape[0])
        prompted = x.shape[1] - ids.shape[1]
        past = 0 if cache is None else cache[0][0][0].shape[2]
        if positions is None:
            check_positions(past + x.shape[1], self.cfg.block_size)
            positions = torch.arange(past, past + x.shape[1], device=ids.device)
        else:
            if prompted:
                positions = torch.cat([torch.arange(prompted, device=ids.device).expand(len(ids), -1), positions], 1)
            if not torch.compiler.is_compiling():  # reading a tensor's value would break the compiled graph in two
                check_positions(int(positions.max()) + 1, self.cfg.block_size)
        if key_padding_mask is not None and past + x.shape[1] > key_padding_mask.shape[1]:
            key_padding_mask = extend_mask(key_padding_mask, past + x.shape[1] - key_padding_mask.shape[1])
        x = self.drop(x + self.positions(positions))
        new_cache, aux = [], []
        for i, block in enumerate(self.blocks):
            x, layer_cache = block(x, key_padding_mask=key_padding_mask, causal=True,
                                   cache=None if cache is None else cache[i])
            new_cache.append(layer_cache)
            aux.append(block.aux_loss)
        self.aux_loss = torch.stack(aux).sum()
        return self.final_norm(x[:, prompted:]), new_cache

    def hf_names(self) -> dict[str, str]:
        """nlplab parameter -> its GPT2Model tensor (GPT2LMHeadModel adds "transformer."; a Conv1D weight there is
        this Linear's transpose), for every parameter but attn.q and attn.kv (rows of c_attn's columns: q, k, v)."""
        names = {"tokens.weight": "wte.weight", "positions.weight": "wpe.weight",
                 "final_norm.weight": "ln_f.weight", "final_norm.bias": "ln_f.bias"}
        for i in range(self.cfg.n_layer):
            ours, theirs = f"blocks.{i}.", f"h.{i}."
            for p in ("weight", "bias"):
                names |= {f"{ours}{mine}.{p}": f"{theirs}{hf}.{p}" for mine, hf in
                          (*HF_LAYER_NAMES.items(), ("attn_norm", "ln_1"), ("ffn_norm", "ln_2"))}
        return names

    @classmethod
    def from_pretrained(cls, folder: str | Path, impl: str = "fused") -> GPT:
        """Load a Hugging Face GPT-2 folder (config.json + model.safetensors). GPT-2 stores its projections as
        Conv1D, weight (in, out): transposed here into Linear's (out, in); c_attn holds q, k, v side by side."""
        ckpt = HFCheckpoint(folder, ("gpt2",), prefix="transformer.")
        model = cls(GPTConfig.from_hf(ckpt, impl))
        d, conv1d = model.cfg.n_embd, conv1d_weights(model.cfg.n_layer)
        state = {ours: ckpt[theirs].T if ours in conv1d else ckpt[theirs] for ours, theirs in model.hf_names().items()}
        for i in range(model.cfg.n_layer):
            ours, theirs = f"blocks.{i}.attn.", f"h.{i}.attn.c_attn."
            qkv_weight, qkv_bias = ckpt[theirs + "weight"].T, ckpt[theirs + "bias"]
            state |= {ours + "q.weight": qkv_weight[:d], ours + "kv.weight": qkv_weight[d:],
                      ours + "q.bias": qkv_bias[:d], ours + "kv.bias": qkv_bias[d:]}
        return ckpt.load_into(model, state)

    def save_pretrained(self, folder: str | Path) -> Path:
        """Write a Hugging Face GPT-2 folder (config.json + model.safetensors) that `transformers` loads with
        `GPT2LMHeadModel.from_pretrained` (output layer tied to wte, as GPT-2's) and `from_pretrained` reads back:
        the inverse of `from_pretrained`. Mixture-of-experts blocks have no GPT-2 form; virtual tokens are not
        written."""
        c, own = self.cfg, self.state_dict()
        if c.moe_experts or not c.bias:
            raise ConfigError("a GPT with mixture-of-experts blocks or without biases has no GPT-2 checkpoint form; "
                              "keep it as an nlplab run")
        conv1d = conv1d_weights(c.n_layer)
        tensors = {f"transformer.{theirs}": own[ours].T if ours in conv1d else own[ours]
                   for ours, theirs in self.hf_names().items()}
        for i in range(c.n_layer):
            ours, theirs = f"blocks.{i}.attn.", f"transformer.h.{i}.attn.c_attn."
            tensors[theirs + "weight"] = torch.cat([own[ours + "q.weight"], own[ours + "kv.weight"]]).T
            tensors[theirs + "bias"] = torch.cat([own[ours + "q.bias"], own[ours + "kv.bias"]])
        config = {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": c.vocab_size,
                  "n_positions": c.block_size, "n_ctx": c.block_size, "n_layer": c.n_layer, "n_head": c.n_head,
                  "n_embd": c.n_embd, "n_inner": c.n_inner, "resid_pdrop": c.dropout, "embd_pdrop": c.dropout,
                  "attn_pdrop": c.dropout, "layer_norm_epsilon": c.layer_norm_eps,
                  "activation_function": hf_activation(c.activation), "tie_word_embeddings": True}
        return write_checkpoint(folder, config, tensors)


def conv1d_weights(n_layer: int) -> set[str]:
    """The nlplab weights stored transposed in GPT-2 (its Conv1D layers: attn.c_proj, mlp.c_fc, mlp.c_proj)."""
    return {f"blocks.{i}.{mine}.weight" for i in range(n_layer) for mine in HF_LAYER_NAMES}
