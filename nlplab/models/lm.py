"""Neural language models p(x_t | x_<t) over token ids: recurrent (RNN, LSTM, GRU), a causal gated CNN, and GPT.

Every model maps ids (B, T) to next-token logits (B, T, V) and has the decoding signature
`forward(ids, cache=None) -> (logits, cache)` of `nlplab.generate`; only GPT keeps a KV cache (the others return
None, so decoding feeds them the whole sequence at each step).

    recurrent:  h_t = cell(E[x_t], h_{t-1})                  logits_t = W·dropout(h_t) + b
    gated CNN:  h⁰ = E[x];  hˡ = hˡ⁻¹ + A ⊙ σ(B),  [A; B] = conv_k(left-pad_{k-1}(hˡ⁻¹))   (Dauphin et al., 2017)
                logits_t = W·LN(h^L_t) + b   — the left padding keeps position t from seeing x_{>t}
    GPT:        see `nlplab.models.gpt`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from nlplab.errors import ConfigError
from nlplab.models.gpt import GPT, GPTConfig
from nlplab.nn.functional import at_least_float32
from nlplab.nn.layers import Dropout, Embedding, LayerNorm, Linear
from nlplab.nn.rnn import GRU, LSTM, RNN
from nlplab.rlhf.logprobs import token_logprobs

NEURAL_LMS = ("rnn", "lstm", "gru", "cnn", "gpt")


@dataclass
class LMConfig:
    """Shape of a neural LM. block_size: the longest context (GPT's position table, the training window)."""

    model: str = "gpt"
    vocab_size: int = 5000
    block_size: int = 128
    embed_dim: int = 128
    hidden_size: int = 128
    layers: int = 2
    heads: int = 4
    kernel_size: int = 3
    dropout: float = 0.1
    moe_experts: int = 0
    moe_top_k: int = 1
    impl: str = "fused"


class RecurrentLM(nn.Module):
    def __init__(self, cfg: LMConfig) -> None:
        super().__init__()
        layer = {"rnn": RNN, "lstm": LSTM, "gru": GRU}[cfg.model]
        self.embed = Embedding(cfg.vocab_size, cfg.embed_dim, impl=cfg.impl)
        self.rnn = layer(cfg.embed_dim, cfg.hidden_size, cfg.layers, dropout=cfg.dropout if cfg.layers > 1 else 0.0,
                         impl=cfg.impl)
        self.drop = Dropout(cfg.dropout, cfg.impl)
        self.head = Linear(cfg.hidden_size, cfg.vocab_size, impl=cfg.impl)

    def forward(self, ids: Tensor, cache: Any = None) -> tuple[Tensor, None]:
        out, _ = self.rnn(self.drop(self.embed(ids)))
        return self.head(self.drop(out)), None


class GatedCNNLM(nn.Module):
    def __init__(self, cfg: LMConfig) -> None:
        super().__init__()
        if cfg.kernel_size < 1:
            raise ConfigError(f"kernel_size must be >= 1, got {cfg.kernel_size}")
        self.k = cfg.kernel_size
        self.embed = Embedding(cfg.vocab_size, cfg.hidden_size, impl=cfg.impl)
        self.convs = nn.ModuleList(nn.Conv1d(cfg.hidden_size, 2 * cfg.hidden_size, cfg.kernel_size) for _ in range(cfg.layers))
        self.drop = Dropout(cfg.dropout, cfg.impl)
        self.norm = LayerNorm(cfg.hidden_size, impl=cfg.impl)
        self.head = Linear(cfg.hidden_size, cfg.vocab_size, impl=cfg.impl)

    def forward(self, ids: Tensor, cache: Any = None) -> tuple[Tensor, None]:
        h = self.drop(self.embed(ids)).transpose(1, 2)  # (B, d, T)
        for conv in self.convs:
            h = h + self.drop(F.glu(conv(F.pad(h, (self.k - 1, 0))), dim=1))
        return self.head(self.norm(h.transpose(1, 2))), None


def build_lm(cfg: LMConfig) -> nn.Module:
    """The model `cfg.model` names, freshly initialised."""
    if cfg.model in ("rnn", "lstm", "gru"):
        return RecurrentLM(cfg)
    if cfg.model == "cnn":
        return GatedCNNLM(cfg)
    if cfg.model == "gpt":
        return GPT(gpt_config(cfg))
    raise ConfigError(f"unknown language model {cfg.model!r}; choose ngram or one of {', '.join(NEURAL_LMS)}")


def gpt_config(cfg: LMConfig) -> GPTConfig:
    """The GPT an LMConfig of model gpt describes: n_embd = hidden_size (embed_dim is not used), d_ff = 4·n_embd."""
    if cfg.hidden_size % cfg.heads:
        raise ConfigError(f"hidden_size {cfg.hidden_size} (--hidden-size) must be divisible by heads {cfg.heads} (--heads)")
    return GPTConfig(vocab_size=cfg.vocab_size, block_size=cfg.block_size, n_layer=cfg.layers, n_head=cfg.heads,
                     n_embd=cfg.hidden_size, dropout=cfg.dropout, impl=cfg.impl, moe_experts=cfg.moe_experts,
                     moe_top_k=cfg.moe_top_k)


def lm_loss(model: nn.Module, ids: Tensor, targets: Tensor, aux_weight: float = 0.01) -> tuple[Tensor, Tensor]:
    """(mean next-token cross-entropy, the objective to minimise: + aux_weight · the MoE balance loss if any).
    ids, targets (B, T); targets equal to -100 are not scored. Logits in half precision (bf16 autocast) are scored
    in float32, float64 ones in float64."""
    logits, _ = model(ids)
    loss = F.cross_entropy(at_least_float32(logits.flatten(0, 1)), targets.flatten(), ignore_index=-100)
    aux = getattr(model, "aux_loss", None)
    return loss, loss + aux_weight * aux if isinstance(aux, Tensor) and aux.requires_grad else loss


def response_logprobs(model: nn.Module, ids: Tensor, response_mask: Tensor,
                      temperature: float = 1.0) -> tuple[Tensor, Tensor]:
    """Per-token log-probabilities of the responses in `ids` under a causal LM, and the logits they come from.

    ids (B, T) hold prompt and response, right-padded; response_mask (B, T) is True at the response's tokens.
    Returns (logp (B, T − 1), logits (B, T − 1, V)): logp[:, t] = log π(ids[:, t + 1] | ids[:, :t + 1]) (logits
    divided by `temperature`) where response_mask[:, t + 1], else 0. logp.sum(1) is log π(y | x); PPO's ratio and
    KL penalty and DPO are made of these. Logits in half precision are scored in float32."""
    logits, _ = model(ids[:, :-1])
    logits = at_least_float32(logits)
    return token_logprobs(logits, ids[:, 1:], temperature).where(response_mask[:, 1:].bool(), 0), logits
