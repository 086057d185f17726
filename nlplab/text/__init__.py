"""Tokenizers behind one interface (see `base.Tokenizer`), found by algorithm name or from a saved directory."""

from __future__ import annotations

from pathlib import Path

from nlplab.errors import TokenizerError
from nlplab.text.base import CONFIG_FILE, HF_FILE, Tokenizer, read_json
from nlplab.text.wordlevel import CharTokenizer, WordTokenizer

TOKENIZERS: dict[str, type[Tokenizer]] = {cls.algo: cls for cls in (CharTokenizer, WordTokenizer)}
HF_MODEL_TYPES: dict[str, str] = {"WordLevel": "word"}


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
    data = read_json(hf_path)
    algo = options.pop("nlplab_algo", None)
    if algo is None:
        model_type = data.get("model", {}).get("type") if isinstance(data.get("model"), dict) else None
        algo = HF_MODEL_TYPES.get(model_type) if isinstance(model_type, str) else None
        if algo is None:
            raise TokenizerError(f"{hf_path}: tokenizer model type {model_type!r} is not supported; supported: {', '.join(sorted(HF_MODEL_TYPES))}")
    if algo not in TOKENIZERS:
        raise TokenizerError(f"{path}: unknown tokenizer algorithm {algo!r}; choose one of {', '.join(sorted(TOKENIZERS))}")
    return TOKENIZERS[algo].from_hf_json(data, options)


__all__ = ["TOKENIZERS", "Tokenizer", "build_tokenizer", "load_tokenizer", "CharTokenizer", "WordTokenizer"]
