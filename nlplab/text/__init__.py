"""Tokenizers behind one interface (see `base.Tokenizer`), found by algorithm name or from a saved directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nlplab.errors import TokenizerError
from nlplab.text.base import CONFIG_FILE, HF_FILE, Tokenizer, read_json
from nlplab.text.bpe import BPETokenizer
from nlplab.text.bytebpe import ByteBPETokenizer
from nlplab.text.ngram import NGramLM
from nlplab.text.wordlevel import CharTokenizer, WordTokenizer
from nlplab.text.wordpiece import WordPieceTokenizer

TOKENIZERS: dict[str, type[Tokenizer]] = {
    cls.algo: cls for cls in (CharTokenizer, WordTokenizer, BPETokenizer, ByteBPETokenizer, WordPieceTokenizer)
}
# Hugging Face model type -> algorithm; a BPE model behind a ByteLevel pre-tokenizer is byte-level BPE.
HF_MODEL_TYPES: dict[str, str] = {"WordLevel": "word", "BPE": "bpe", "WordPiece": "wordpiece"}


def hf_algo(data: dict[str, Any]) -> str | None:
    """The nlplab algorithm that reads the parsed Hugging Face tokenizer.json `data`, or None."""
    model = data.get("model")
    model_type = model.get("type") if isinstance(model, dict) else None
    algo = HF_MODEL_TYPES.get(model_type) if isinstance(model_type, str) else None
    pre = data.get("pre_tokenizer")
    steps = (pre.get("pretokenizers") or [pre]) if isinstance(pre, dict) else []
    if algo == "bpe" and any(isinstance(s, dict) and s.get("type") == "ByteLevel" for s in steps):
        return "bytebpe"
    return algo


def build_tokenizer(algo: str, **options) -> Tokenizer:
    """A fresh, untrained tokenizer of algorithm `algo` (one of TOKENIZERS)."""
    if algo not in TOKENIZERS:
        raise TokenizerError(f"unknown tokenizer algorithm {algo!r}; choose one of {', '.join(sorted(TOKENIZERS))}")
    return TOKENIZERS[algo](**options)


def load_tokenizer(directory: str | Path) -> Tokenizer:
    """Load a tokenizer saved by `Tokenizer.save`, or a Hugging Face tokenizer.json of a supported model type
    (a directory holding it, or the file itself)."""
    path = Path(directory)
    if not path.exists():
        raise TokenizerError(f"{path}: no such tokenizer directory or file")
    hf_path = path if path.is_file() else path / HF_FILE
    config_path = None if path.is_file() else path / CONFIG_FILE
    options = read_json(config_path) if config_path is not None and config_path.exists() else {}
    if "nlplab_algo" not in options:
        options = {}  # a tokenizer_config.json written by transformers, not by nlplab
    data = read_json(hf_path)
    algo = options.pop("nlplab_algo", None) or hf_algo(data)
    if algo is None:
        model = data.get("model")
        model_type = model.get("type") if isinstance(model, dict) else None
        raise TokenizerError(f"{hf_path}: tokenizer model type {model_type!r} is not supported; supported: {', '.join(sorted(HF_MODEL_TYPES))}")
    if algo not in TOKENIZERS:
        raise TokenizerError(f"{path}: unknown tokenizer algorithm {algo!r}; choose one of {', '.join(sorted(TOKENIZERS))}")
    try:
        return TOKENIZERS[algo].from_hf_json(data, options)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise TokenizerError(f"{hf_path}: not a valid {algo} tokenizer ({type(e).__name__}: {e}); the file is corrupted, train or download it again") from None


__all__ = [
    "TOKENIZERS", "Tokenizer", "build_tokenizer", "load_tokenizer", "CharTokenizer", "WordTokenizer",
    "BPETokenizer", "ByteBPETokenizer", "WordPieceTokenizer", "NGramLM",
]
