"""Hugging Face folders in use: a BERT-style encoder embeds sentences (as sentence-transformers does); a causal LM
generates and chats."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from torch import Tensor

from nlplab.errors import RunError
from nlplab.generate.causal import load_causal_lm
from nlplab.io import read_json_object
from nlplab.models.encoder import MINILM, BertEncoder, encode_sentences, pretrained_folder, sentence_max_length
from nlplab.runs.base import Generating, Predictor
from nlplab.runtime import resolve_device
from nlplab.text import load_tokenizer

ENCODER_TYPES = ("bert",)


class EncoderPredictor(Predictor):
    """A pretrained BERT-style encoder (a folder, or `all-MiniLM-L6-v2`): sentence embeddings, mean-pooled and
    normalised, each text cut at the model's own limit (sentence-transformers' max_seq_length when given)."""

    task = "encoder"
    abilities = ("embed",)

    def __init__(self, name: str, device: str = "auto") -> None:
        super().__init__(name, resolve_device(device))
        folder = pretrained_folder(name)
        self.model = BertEncoder.from_pretrained(folder).to(self.device).eval()
        self.tokenizer = load_tokenizer(folder)
        self.max_length = sentence_max_length(folder, self.model)

    def embed(self, texts: Sequence[str], batch_size: int = 64) -> Tensor:
        return encode_sentences(self.model, self.tokenizer, list(texts), self.max_length, batch_size)


class CausalPredictor(Generating):
    """A Hugging Face causal-LM folder (GPT-2 on nlplab's GPT; other architectures on transformers)."""

    task = "causal-lm"

    def __init__(self, folder: str | Path, device: str = "auto") -> None:
        self.lm = load_causal_lm(folder, device)
        super().__init__(str(folder), self.lm.device)


def load_folder(path: str | Path, device: str = "auto") -> Predictor:
    """`all-MiniLM-L6-v2` or a Hugging Face folder: an encoder when its model_type is BERT's, else a causal LM."""
    if str(path) == MINILM:
        return EncoderPredictor(MINILM, device)
    folder = Path(path)
    if not (folder / "config.json").is_file():
        raise RunError(f"{folder}: not a run directory: neither an nlplab run (no config.yaml) nor a Hugging Face model "
                       f"folder (config.json: not found); pass the --out folder of `nlplab train`, a Hugging Face folder "
                       f"or {MINILM}")
    config = read_json_object(folder / "config.json", RunError, "download the model folder again")
    if config.get("model_type") in ENCODER_TYPES:
        return EncoderPredictor(str(folder), device)
    return CausalPredictor(folder, device)
