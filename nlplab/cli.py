"""The `nlplab` command: parses arguments and calls the library. Errors a user can fix print one line, exit 2."""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from nlplab.errors import NlplabError
from nlplab.train.config import TrainConfig

EXIT_USAGE, EXIT_INTERRUPTED = 2, 130


def _flag_options(field_type: str) -> dict:
    if field_type.startswith("bool"):
        return {"action": argparse.BooleanOptionalAction}
    return {"type": _flag_type(field_type)}


def _flag_type(field_type: str):
    if "list" in field_type:
        return lambda s: [int(v) for v in s.split(",")]
    for name, parse in (("int", int), ("float", float)):
        if field_type.startswith(name):
            return parse
    return str


def add_train_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model into a run directory")
    p.add_argument("--config", help="YAML recipe; flags override its keys")
    p.add_argument("--out", required=True, help="run directory to create (or continue with --resume)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run from its last checkpoint")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    for name, field in TrainConfig.fields().items():
        p.add_argument(f"--{name.replace('_', '-')}", dest=name, **_flag_options(str(field.type)), default=None,
                       help=f"(default: {field.default_factory() if field.default is dataclasses.MISSING else field.default})")


def cmd_train(args: argparse.Namespace) -> None:
    from nlplab.train.config import load_config
    from nlplab.train.trainer import train

    overrides = {name: getattr(args, name) for name in TrainConfig.fields()}
    config_path = args.config
    if args.resume and config_path is None and (Path(args.out) / "config.yaml").is_file():
        config_path = Path(args.out) / "config.yaml"
    cfg = load_config(config_path, overrides)
    metrics = train(cfg, args.out, resume=args.resume, progress=False if args.no_progress else None)
    test = {k: v for k, v in metrics["test"].items() if isinstance(v, (int, float))}
    print(f"best epoch {metrics['best_epoch']} | test " + " ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                                                            for k, v in test.items()) + f" | run: {args.out}")
    print(json.dumps(test))


def cmd_eval(args: argparse.Namespace) -> None:
    from nlplab.train.trainer import run_config, task_class

    task_class(run_config(args.run).task).cli_eval(args)


def cmd_predict(args: argparse.Namespace) -> None:
    from nlplab.data import read_lines
    from nlplab.errors import ConfigError
    from nlplab.train.trainer import run_config, task_class

    texts = list(args.texts) + ([line for line in read_lines(args.input) if line.strip()] if args.input else [])
    if not texts:
        raise ConfigError("nothing to predict: give texts as arguments or --input FILE")
    task_class(run_config(args.run).task).cli_predict(args, texts)


def cmd_embed(args: argparse.Namespace) -> None:
    import numpy as np

    from nlplab.data import read_lines
    from nlplab.io import atomic_write
    from nlplab.models.encoder import embed_texts
    from nlplab.train.classify import Run
    from nlplab.train.trainer import resolve_device

    texts = [line for line in read_lines(args.input) if line.strip()]
    if (Path(args.model) / "config.yaml").is_file():
        vectors = Run.load(args.model, args.device).embeddings(texts, args.batch_size)
    else:
        vectors = embed_texts(args.model, texts, args.batch_size, resolve_device(args.device))
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.save(f, vectors.numpy())

    atomic_write(args.out, write)
    print(f"{len(texts)} sentence embeddings of size {vectors.shape[1]} written to {args.out}")


def cmd_tokenizer_train(args: argparse.Namespace) -> None:
    from nlplab.data import read_lines
    from nlplab.text import build_tokenizer

    texts = [line for path in args.input for line in read_lines(path) if line.strip()]
    options = {"limit_alphabet": args.limit_alphabet} if args.limit_alphabet is not None else {}
    tok = build_tokenizer(args.algo, **options).train(texts, vocab_size=args.vocab_size, min_freq=args.min_freq, progress=True)
    tok.save(args.out)
    merges = getattr(tok, "merges", [])
    if merges:
        print("first merges:", ", ".join(f"{a} + {b}" for a, b in merges[:10]))
    print(f"{tok.algo} tokenizer, vocab size {tok.vocab_size}, saved to {args.out}")


def cmd_tokenizer_encode(args: argparse.Namespace) -> None:
    from nlplab.text import load_tokenizer

    tok = load_tokenizer(args.dir)
    rows = []
    for text in args.texts:
        ids = tok.encode(text)
        rows.append({"tokens": [tok.id_to_token[i] for i in ids], "ids": ids})
    for text, row in zip(args.texts, rows):
        print(text)
        print("  tokens:", " ".join(row["tokens"]))
        print("  ids:   ", " ".join(map(str, row["ids"])))
    if args.json:
        for row in rows:
            print(json.dumps(row, ensure_ascii=False))


def cmd_data(args: argparse.Namespace) -> None:
    from nlplab.data import DATASETS, load_dataset

    for name in DATASETS:
        try:
            data = load_dataset(name)
            print(f"{name:<20} train {len(data.train):>6}  dev {len(data.dev):>5}  test {len(data.test):>5}  labels {', '.join(data.labels)}")
        except NlplabError as e:
            print(f"{name:<20} unavailable: {e}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nlplab", description="NLP from the study notes: train, evaluate, predict, tokenize.")
    sub = parser.add_subparsers(dest="command", required=True)
    add_train_parser(sub)
    p = sub.add_parser("eval", help="evaluate a run; last line is a JSON object of metrics")
    p.add_argument("run")
    p.add_argument("--data", help="a file in the run's task format (default: the test split of the run's data set)")
    p.add_argument("--device", default="auto")
    p = sub.add_parser("predict", help="the model's output for each text (label, tags or entities)")
    p.add_argument("run")
    p.add_argument("texts", nargs="*")
    p.add_argument("--input", help="file with one text per line")
    p.add_argument("--device", default="auto")
    p = sub.add_parser("embed", help="one sentence embedding per input line, saved as a NumPy .npy file")
    p.add_argument("model", help="an nlplab run, a Hugging Face BERT folder, or all-MiniLM-L6-v2")
    p.add_argument("--input", required=True, help="text file, one sentence per line (blank lines skipped)")
    p.add_argument("--out", required=True, help="output .npy file, shape (lines, dim)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default="auto")
    sub.add_parser("data", help="list the named data sets and whether they are available")
    tok = sub.add_parser("tokenizer", help="train or use a tokenizer").add_subparsers(dest="tokenizer_command", required=True)
    p = tok.add_parser("train", help="train a tokenizer on text files (one text per line)")
    p.add_argument("--algo", required=True, help="bpe | bytebpe | wordpiece | char | word")
    p.add_argument("--vocab-size", type=int)
    p.add_argument("--min-freq", type=int, default=1)
    p.add_argument("--limit-alphabet", type=int, help="bpe: keep only the N most frequent characters (others become [UNK])")
    p.add_argument("--input", nargs="+", required=True)
    p.add_argument("--out", required=True)
    p = tok.add_parser("encode", help="print tokens and ids of texts")
    p.add_argument("dir")
    p.add_argument("texts", nargs="+")
    p.add_argument("--json", action="store_true", help="also print one JSON object per text as the last lines")
    for module in EXTENSIONS:
        COMMANDS.update(importlib.import_module(module).add_parsers(sub))
    return parser


COMMANDS = {"train": cmd_train, "eval": cmd_eval, "predict": cmd_predict, "embed": cmd_embed, "data": cmd_data}
TOKENIZER_COMMANDS = {"train": cmd_tokenizer_train, "encode": cmd_tokenizer_encode}
# modules that add commands: each has add_parsers(sub) -> {command name: handler(args)}
EXTENSIONS = ["nlplab.generate.cli", "nlplab.lab.cli", "nlplab.train.match_cli"]


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command = TOKENIZER_COMMANDS[args.tokenizer_command] if args.command == "tokenizer" else COMMANDS[args.command]
    try:
        command(args)
    except NlplabError as e:
        print(f"nlplab: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("nlplab: interrupted; continue a training run with `nlplab train --out RUN --resume`", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


if __name__ == "__main__":
    sys.exit(main())
