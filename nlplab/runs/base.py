"""A trained model in use: the `Predictor` every run and every Hugging Face folder comes back as.

    load_run(path, device="auto") -> Predictor          (`nlplab.runs.load_run`)

A Predictor knows its `task` and offers what the task supports — `predict(inputs) -> records`, `evaluate(data)`,
`embed(texts)`, `generate(prompt, **decoding)`, `stream(...)`, `score(texts)`, `search(...)`; the others raise a
ConfigError saying what the model can do. The CLI, the server and the labs all go through it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

import torch
from torch import Tensor

from nlplab.errors import ConfigError, DataError, RunError
from nlplab.generate.causal import CausalLM, Generated, generate, picker, stream_text
from nlplab.runtime import compile_model, resolve_device
from nlplab.text import Tokenizer, load_tokenizer
from nlplab.train.checkpoint import run_json
from nlplab.train.config import TrainConfig
from nlplab.train.trainer import run_config
from nlplab.train.weights import load_trained

Record = dict[str, Any]


class Predictor:
    """A model in use (see the module docstring). `task` names what it was trained for; `name` is its path."""

    task: str = "model"

    def __init__(self, name: str, device: torch.device) -> None:
        self.name, self.device = name, device

    abilities: tuple[str, ...] = ()
    """The verbs this predictor supports, for messages and the server."""

    def cannot(self, what: str) -> NoReturn:
        raise ConfigError(f"{self.name}: a {self.task} model cannot {what}; it can {', '.join(self.abilities)}")

    def predict(self, inputs: Sequence[Any]) -> list[Record]:
        """One record per input (a label with probabilities, entities or words, a match and its score)."""
        self.cannot("predict labels")

    def evaluate(self, data: str | None = None) -> Record:
        """Figures on `data` (a file in the task's format or a named data set; None: the run's test split), with
        "data" (what was evaluated) and "examples" (how many)."""
        self.cannot("be evaluated")

    def embed(self, texts: Sequence[str], batch_size: int = 64) -> Tensor:
        """Unit-length sentence vectors (N, D)."""
        self.cannot("embed sentences")

    def generate(self, prompt: str | Sequence[int], **decoding: Any) -> list[Generated]:
        """Continuations of a prompt (text or token ids); `decoding` as `nlplab.generate.causal.generate`."""
        self.cannot("generate text")

    def stream(self, prompt: str | Sequence[int], **decoding: Any) -> Iterator[tuple[list[int], str | None]]:
        """(ids so far, text so far) after each generated token of one greedy or sampled continuation."""
        self.cannot("generate text")

    def score(self, texts: Sequence[str]) -> list[Record]:
        """Log-probability and perplexity of each text, most reasonable first."""
        self.cannot("score sentences")

    def search(self, queries: Sequence[str], corpus: str | Path, top_k: int = 5) -> list[list[tuple[str, float]]]:
        """The corpus lines nearest each query."""
        self.cannot("search a corpus")

    def compile(self) -> None:
        """Run the model under torch.compile from now on: a causal LM's decoding step (`CausalLM.compile`), else
        the torch module (`nlplab.runtime.compile_model`); a counted model (n-gram) runs as it is."""
        lm, model = getattr(self, "lm", None), getattr(self, "model", None)
        if lm is not None:
            lm.compile()
        elif isinstance(model, torch.nn.Module):
            compile_model(model)


class Generating(Predictor):
    """A predictor over a causal LM (`self.lm`): generation and streaming for LM runs and causal-LM folders."""

    lm: CausalLM
    abilities = ("generate", "stream")

    def prompt_ids(self, prompt: str | Sequence[int]) -> list[int]:
        return self.lm.encode(prompt) if isinstance(prompt, str) else [int(i) for i in prompt]

    def generate(self, prompt: str | Sequence[int], **decoding: Any) -> list[Generated]:
        return generate(self.lm, self.prompt_ids(prompt), **decoding)

    def stream(self, prompt: str | Sequence[int], strategy: str = "greedy", max_new_tokens: int = 50,
               temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
               repetition_penalty: float = 1.0, seed: int | None = None,
               stop: Sequence[str] = ()) -> Iterator[tuple[list[int], str | None]]:
        pick = picker(strategy, temperature, top_k, top_p, repetition_penalty, seed)
        return stream_text(self.lm, self.prompt_ids(prompt), pick, max_new_tokens, stop)


class RunPredictor(Predictor):
    """A predictor over an nlplab run directory: its recipe (`cfg`), tokenizer and model (best weights, eval mode).
    Subclasses build the module from model.json (`build`)."""

    def __init__(self, run_dir: Path, cfg: TrainConfig, device: str = "auto") -> None:
        super().__init__(str(run_dir), resolve_device(device))
        self.run_dir, self.cfg = run_dir, cfg
        self.tokenizer: Tokenizer = load_tokenizer(run_dir / "tokenizer")
        self.model = self.load_model()

    def load_model(self) -> torch.nn.Module:
        """The module model.json describes, with the run's best weights (a PEFT run: its base and adapter), on the
        device, in eval mode."""
        module = self.build(run_json(self.run_dir, "model.json"))
        return load_trained(self.run_dir, self.cfg, module).to(self.device).eval()

    def build(self, shape: dict[str, Any]) -> torch.nn.Module:
        raise NotImplementedError

    def test_source(self, data: str | None) -> str:
        return data if data else f"{self.cfg.data} (test split)"


def check_inputs(inputs: Sequence[Any]) -> None:
    """Every input must hold some text: an empty or blank one is an error naming it (1-based)."""
    if not inputs:
        raise DataError("nothing to predict: give at least one input")
    for number, text in enumerate(inputs, start=1):
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"input {number} is empty or blank ({text!r}); give some text")


TASK_PREDICTORS = {
    "classify": "nlplab.runs.classify:ClassifierPredictor",
    "tag": "nlplab.runs.tag:TaggerPredictor",
    "match": "nlplab.runs.match:MatcherPredictor",
    "lm": "nlplab.runs.lm:LMPredictor",
    "sft": "nlplab.runs.lm:PolicyPredictor",
    "ppo": "nlplab.runs.lm:PolicyPredictor",
    "dpo": "nlplab.runs.lm:PolicyPredictor",
    "reward": "nlplab.runs.reward:RewardPredictor",
}


def load_run(path: str | Path, device: str = "auto") -> Predictor:
    """An nlplab run directory (any task), a Hugging Face folder (a BERT-style encoder, a causal LM) or
    `all-MiniLM-L6-v2`, as a Predictor."""
    import importlib

    from nlplab.runs.hf import load_folder

    folder = Path(path)
    if (folder / "config.yaml").is_file():
        cfg = run_config(folder)
        if cfg.task not in TASK_PREDICTORS:
            raise RunError(f"{folder}: a {cfg.task} run is pre-training, not a model to use; start a classifier from it "
                           f"with nlplab train --init-from {folder}")
        module, cls = TASK_PREDICTORS[cfg.task].split(":")
        return getattr(importlib.import_module(module), cls)(folder, cfg, device)
    return load_folder(path, device)
