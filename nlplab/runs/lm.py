"""A trained language model in use: perplexity, sentence scores, and (neural models) generation and chat."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from torch import nn

from nlplab.data.corpora import CORPORA, load_corpus, text_lines
from nlplab.errors import ConfigError
from nlplab.generate.causal import CausalLM, nlplab_chat
from nlplab.models.lm import LMConfig, build_lm
from nlplab.runs.base import Generating, Record, RunPredictor
from nlplab.text.ngram import NGramLM
from nlplab.train.config import TrainConfig
from nlplab.train.init_from import causal_module, policy_of
from nlplab.train.lm import NGRAM_FILE, count_characters, encode_stream, end_token_id, lm_figures, ngram_nll, stream_nll


class LMPredictor(Generating, RunPredictor):
    """A `--task lm` run: n-gram or neural. Both evaluate and score; neural ones also generate (nlplab's chat
    template `问：…\\n答：…`)."""

    task = "lm"

    def __init__(self, run_dir: Path, cfg: TrainConfig, device: str = "auto") -> None:
        super().__init__(run_dir, cfg, device)
        self.abilities = ("evaluate", "score") + (() if isinstance(self.model, NGramLM) else ("generate", "stream"))
        if not isinstance(self.model, NGramLM):
            self.lm = CausalLM(self.model, self.tokenizer.encode, self.tokenizer.decode, end_token_id(self.tokenizer),
                               cfg.window_size, nlplab_chat, str(run_dir), self.device,
                               vocab_size=self.tokenizer.vocab_size)

    def load_model(self) -> nn.Module | NGramLM:
        if self.cfg.model == "ngram":
            return NGramLM.load(self.run_dir / NGRAM_FILE)
        return super().load_model()

    def build(self, shape: dict[str, Any]) -> nn.Module:
        return build_lm(LMConfig(**shape))

    def generate(self, prompt: str | Sequence[int], **decoding: Any) -> Any:
        self.require_neural()
        return super().generate(prompt, **decoding)

    def stream(self, prompt: str | Sequence[int], **decoding: Any) -> Any:
        self.require_neural()
        return super().stream(prompt, **decoding)

    def require_neural(self) -> None:
        if isinstance(self.model, NGramLM):
            raise ConfigError(f"{self.run_dir}: an n-gram run scores and evaluates text; generation needs a neural LM run")

    def nll(self, documents: Sequence[str]) -> tuple[float, int]:
        """(Σ −log p over the documents' tokens and ends, in nats; the number of predictions N)."""
        if isinstance(self.model, NGramLM):
            return ngram_nll(self.model, self.tokenizer, documents)
        return stream_nll(self.model, encode_stream(self.tokenizer, documents), self.cfg.window_size, 64, self.device)

    def evaluate(self, data: str | None = None) -> Record:
        """loss (nats per token), ppl, bits_per_char and tokens over the documents of `data`."""
        documents = text_lines(data) if data and data not in CORPORA else load_corpus(data or self.cfg.data).test
        if not documents:
            raise ConfigError("no documents to evaluate; the file has no non-empty line")
        nll, tokens = self.nll(documents)
        return {"data": self.test_source(data), "examples": len(documents),
                **lm_figures(nll, tokens, count_characters(documents))}

    def score(self, texts: Sequence[str]) -> list[Record]:
        """{text, logprob (of text + end), ppl} of each text, most reasonable (lowest perplexity) first."""
        if not texts:
            raise ConfigError("give one or more sentences to score")
        rows = []
        for text in texts:
            nll, tokens = self.nll([text])
            rows.append({"text": text, "logprob": -nll, "ppl": math.exp(nll / tokens)})
        return sorted(rows, key=lambda r: r["ppl"])


class PolicyPredictor(LMPredictor):
    """An sft, ppo or dpo run: a causal LM like a neural lm run. A prompt is read as the stages wrote their rows,
    after the end-of-document token; `evaluate` defaults to the test split of the run's ptx_data (pd98-text unless
    the recipe said otherwise), the perplexity whose rise is the alignment tax."""

    def __init__(self, run_dir: Path, cfg: TrainConfig, device: str = "auto") -> None:
        super().__init__(run_dir, cfg, device)
        eos, encode = end_token_id(self.tokenizer), self.tokenizer.encode
        self.lm = replace(self.lm, encode=lambda text: [eos, *encode(text)])

    def build(self, shape: dict[str, Any]) -> nn.Module:
        return causal_module(shape)

    def load_model(self) -> nn.Module:
        return policy_of(super().load_model())

    def evaluate(self, data: str | None = None) -> Record:
        return super().evaluate(data or self.cfg.ptx_data)
