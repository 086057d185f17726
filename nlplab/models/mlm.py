"""A masked language model: the BERT encoder with BERT's prediction head (Devlin et al., 2019).

    h = BertEncoder(ids, mask)                                   (B, T, H)
    z = LayerNorm(act(W_t h + b_t))                              the head's transform, (·, H)
    logits = z E_tokenᵀ + b                                      (·, V), the decoder tied to the token embeddings
    loss = cross-entropy over the positions whose label is not -100 (`nlplab.data.masking`)

Trained from scratch it starts from BERT's initialisation: weights N(0, 0.02) (embeddings included, so the tied
decoder's first logits are small), biases 0, LayerNorms (1, 0). The head only runs on the labelled positions when labels are given (15% of the tokens), so training pays the
V-wide product for those alone. `from_pretrained` reads a Hugging Face BERT folder with its MLM head
(`cls.predictions.*`, as BertForPreTraining saves them beside the pooler that BertEncoder loads).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nlplab.data.masking import IGNORE
from nlplab.models.encoder import BertConfig, BertEncoder
from nlplab.models.hf import HFCheckpoint
from nlplab.nn import init
from nlplab.nn.activations import get_activation
from nlplab.nn.layers import LayerNorm, Linear, check_impl
from nlplab.nn.losses import cross_entropy


class MLMHead(nn.Module):
    """z = LayerNorm(act(W_t h + b_t)), logits = z Eᵀ + b; E is the tied token embedding (V, H)."""

    def __init__(self, cfg: BertConfig) -> None:
        super().__init__()
        impl = check_impl(cfg.impl)
        self.dense = Linear(cfg.hidden_size, cfg.hidden_size, impl=impl)
        self.act = get_activation(cfg.activation, impl)
        self.norm = LayerNorm(cfg.hidden_size, cfg.layer_norm_eps, impl)
        self.bias = nn.Parameter(torch.zeros(cfg.vocab_size))
        self.impl = impl

    def forward(self, hidden: Tensor, embedding: Tensor) -> Tensor:
        z = self.norm(self.act(self.dense(hidden)))
        return F.linear(z, embedding, self.bias) if self.impl == "fused" else z @ embedding.T + self.bias


class MaskedLM(nn.Module):
    """forward(ids, mask, labels=None) -> (mean loss over labelled positions or None, logits): logits (N, V) of
    the N labelled positions when labels are given, else (B, T, V)."""

    def __init__(self, cfg: BertConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = BertEncoder(cfg)
        self.head = MLMHead(cfg)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """BERT's init (see the module docstring); the padding row of the token embedding stays zero."""
        for name, p in self.named_parameters():
            if "norm" in name:
                continue
            if name.endswith("bias"):
                nn.init.zeros_(p)
            else:
                init.normal_(p, 0.02)
        with torch.no_grad():
            self.encoder.tokens.weight[self.cfg.pad_token_id].zero_()

    def forward(self, ids: Tensor, mask: Tensor | None = None, labels: Tensor | None = None) -> tuple[Tensor | None, Tensor]:
        hidden = self.encoder(ids, mask)
        if labels is None:
            return None, self.head(hidden, self.encoder.tokens.weight)
        chosen = labels != IGNORE
        logits = self.head(hidden[chosen], self.encoder.tokens.weight)
        loss_fn = F.cross_entropy if self.cfg.impl == "fused" else cross_entropy
        return loss_fn(logits.to(torch.promote_types(logits.dtype, torch.float32)), labels[chosen]), logits

    @classmethod
    def from_pretrained(cls, folder: str | Path, impl: str = "fused") -> MaskedLM:
        """A Hugging Face BERT folder whose weights include the pooler and the MLM head (`cls.predictions.*`)."""
        encoder = BertEncoder.from_pretrained(folder, impl)
        ckpt = HFCheckpoint(folder, ("bert",), prefix="bert.")
        model = cls(encoder.cfg)
        state = {f"encoder.{k}": v for k, v in encoder.state_dict().items()}
        head = {"dense": "transform.dense", "norm": "transform.LayerNorm"}
        for p in ("weight", "bias"):
            for ours, theirs in head.items():
                state[f"head.{ours}.{p}"] = ckpt[f"cls.predictions.{theirs}.{p}"]
        state["head.bias"] = ckpt["cls.predictions.bias"]
        return ckpt.load_into(model, state)
