"""A classifier that starts from nlplab pre-training runs (`--init-from RUN`, issue 18's routes):

    word2vec run         its vectors.txt seeds the embedding rows of the tokens it knows (any tokenizer)
    lm run               a recurrent LM gives the embedding and the forward direction of the first layer;
    FORWARD,BACKWARD     with a second LM run trained with --reverse, the backward direction too (ULMFiT); the
                         embedding is then both LMs' side by side (embed_dim = the sum of theirs)
    mlm run              the masked LM's encoder is the transformer classifier's encoder

LM and MLM runs bring their tokenizer (`run_tokenizer_dir`); the classifier's sizes must equal the run's.
"""

from __future__ import annotations

from pathlib import Path

from nlplab.errors import ConfigError
from nlplab.models.classifier import TextClassifier
from nlplab.models.encoder import BertConfig, BertEncoder
from nlplab.models.lm import LMConfig, RecurrentLM, build_lm
from nlplab.models.mlm import MaskedLM
from nlplab.models.transfer import init_from_recurrent_lms, init_from_word_vectors
from nlplab.models.word_vectors import WordVectors
from nlplab.text import Tokenizer
from nlplab.train.checkpoint import WEIGHTS, load_weights, run_json
from nlplab.train.config import TrainConfig, load_config

VECTORS = "vectors.txt"
"""The word vectors a word2vec run writes, in the word2vec text format."""


def run_parts(init_from: str) -> list[tuple[Path, TrainConfig]]:
    """The runs `init_from` names, each with its recipe; ConfigError when one is not a finished run."""
    parts = []
    for part in init_from.split(","):
        run = Path(part)
        if not (run / WEIGHTS).is_file():
            raise ConfigError(f"init_from {part}: not a finished run (no {WEIGHTS}); finish it with --resume")
        parts.append((run, load_config(run / "config.yaml", {})))
    tasks = [cfg.task for _, cfg in parts]
    if len(parts) == 2 and tasks != ["lm", "lm"] or len(parts) > 2 or tasks[0] not in ("word2vec", "lm", "mlm"):
        raise ConfigError(f"init_from {init_from}: expected a word2vec, lm or mlm run, or FORWARD,BACKWARD lm runs; "
                          f"got {' and '.join(tasks)} runs")
    return parts


def run_tokenizer_dir(init_from: str) -> Path | None:
    """The tokenizer folder the classifier must use: an LM's or MLM's; None for word vectors."""
    run, cfg = run_parts(init_from)[0]
    return run / "tokenizer" if cfg.task in ("lm", "mlm") else None


def masked_lm_encoder(init_from: str) -> BertEncoder | None:
    """The encoder of an mlm run, with its weights; None for other runs."""
    run, cfg = run_parts(init_from)[0]
    if cfg.task != "mlm":
        return None
    mlm = MaskedLM(BertConfig(**run_json(run, "model.json")["bert"]))
    return load_weights(run / WEIGHTS, mlm).encoder


def recurrent_lm(run: Path) -> RecurrentLM:
    model = build_lm(LMConfig(**run_json(run, "model.json")))
    if not isinstance(model, RecurrentLM):
        raise ConfigError(f"init_from {run}: a {type(model).__name__} LM; a classifier starts from rnn, lstm or gru LMs")
    return load_weights(run / WEIGHTS, model)


def start_from_runs(model: TextClassifier, init_from: str, tokenizer: Tokenizer) -> str:
    """Initialise `model` from the runs (see the module docstring); returns a note for metrics.json."""
    parts = run_parts(init_from)
    run, cfg = parts[0]
    if cfg.task == "word2vec":
        found = init_from_word_vectors(model, WordVectors.load(run / VECTORS), tokenizer.vocab)
        return f"embedding: {found} of {tokenizer.vocab_size} tokens from {run}"
    if cfg.task == "lm":
        if [c.reverse for _, c in parts] != [False, True][: len(parts)]:
            raise ConfigError(f"init_from {init_from}: give the forward LM run first, then the one trained with --reverse")
        init_from_recurrent_lms(model, *(recurrent_lm(r) for r, _ in parts))
        return f"embedding and first recurrent layer from {init_from}"
    return f"encoder from {run}"
