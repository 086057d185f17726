"""The `nlplab` command: parses arguments and calls the library. Errors a user can fix print one line, exit 2."""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nlplab import __version__
from nlplab.errors import NlplabError
from nlplab.text import TOKENIZERS
from nlplab.train.config import SECTIONS, TrainConfig

EXIT_USAGE, EXIT_INTERRUPTED = 2, 130


class Parser(argparse.ArgumentParser):
    """argparse without prefix matching (`--epoch 2` must not silently mean `--epochs`); subcommands inherit it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)


def leaf(sub: argparse._SubParsersAction, name: str, help: str, **kwargs: Any) -> argparse.ArgumentParser:
    """A subcommand's parser; it remembers itself so that an unknown flag is reported with its own usage."""
    p = sub.add_parser(name, help=help, description=help[:1].upper() + help[1:] + ".", **kwargs)
    p.set_defaults(parser=p)
    return p


def option_help(f: dataclasses.Field) -> dict[str, Any]:
    """add_argument keywords for a recipe option: its help line with choices and default, and a bool's --no- form.
    Values stay text here: the recipe reader converts and checks them, naming the flag in its message."""
    default = f.default_factory() if f.default is dataclasses.MISSING else f.default
    shown = ",".join(map(str, default)) if isinstance(default, list) else default
    text = f"{f.metadata['help']} (default: {shown})"
    if str(f.type).startswith("bool"):
        return {"action": argparse.BooleanOptionalAction, "help": text}
    choices = f.metadata["choices"]
    kind = str(f.type)
    metavar = ("{" + ",".join(choices) + "}" if choices else "N,N" if "list" in kind else "N" if "int" in kind
               else "X" if "float" in kind else "TEXT")
    if f.name == "tokenizer":
        metavar += "|DIR"
    return {"metavar": metavar, "help": text}


def add_train_parser(sub: argparse._SubParsersAction) -> None:
    p = leaf(sub, "train", "train a model into a run directory; options may come from a YAML recipe (--config)")
    run = p.add_argument_group("run directory")
    run.add_argument("--config", metavar="YAML", help="recipe file, flat or by section; flags override its keys")
    run.add_argument("--out", required=True, metavar="RUN", help="run directory to create (or to continue with --resume)")
    run.add_argument("--resume", action="store_true", help="continue an interrupted run from its last checkpoint "
                                                           "(from the beginning when it has none yet)")
    run.add_argument("--overwrite", action="store_true", help="delete the run already in --out and start again")
    run.add_argument("--no-progress", action="store_true", help="no progress bar or progress lines")
    groups = {"task": p.add_argument_group("task"),
              **{name: p.add_argument_group(f"{name}: {about}") for name, about in SECTIONS.items()}}
    for name, f in TrainConfig.fields().items():
        groups[f.metadata["section"]].add_argument(f"--{name.replace('_', '-')}", dest=name, default=None, **option_help(f))


def cmd_train(args: argparse.Namespace) -> None:
    from nlplab.train.config import load_config
    from nlplab.train.trainer import CHECKPOINT, describe_epoch, train

    overrides = {name: getattr(args, name) for name in TrainConfig.fields()}
    out, config_path = Path(args.out), args.config
    if args.resume and config_path is None and (out / "config.yaml").is_file():
        config_path = out / "config.yaml"
    cfg = load_config(config_path, overrides)
    if args.resume and (out / "config.yaml").is_file() and not (out / CHECKPOINT).is_file():
        print(f"{out}: interrupted before its first checkpoint; training it again from the beginning", file=sys.stderr)
    metrics = train(cfg, out, resume=args.resume, overwrite=args.overwrite,
                    on_epoch_end=lambda _epoch, row: print(describe_epoch(row), flush=True),
                    progress=False if args.no_progress else None)
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
    from nlplab.runtime import resolve_device

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
    tok = build_tokenizer(args.algo, **options).train(texts, vocab_size=args.vocab_size, min_freq=args.min_freq,
                                                      progress=not args.no_progress)
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
    from nlplab.data.catalog import catalog, roots

    print("benchmark data sets are looked for in: " + ", ".join(roots()) + " (set NLPLAB_DATA to add a folder)")
    print(f"{'name':<18}{'task':<10}{'train':>8}{'dev':>7}{'test':>7}  unit / note")
    for e in catalog():
        if e.sizes is None:
            print(f"{e.name:<18}{e.task:<10}{'unavailable':>22}  {e.note}")
        else:
            train, dev, test = e.sizes.values()
            print(f"{e.name:<18}{e.task:<10}{train:>8}{dev:>7}{test:>7}  {e.unit}; {e.note}")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="nlplab", description="NLP from the study notes: train, evaluate, predict, generate, tokenize.")
    parser.add_argument("--version", action="version", version=f"nlplab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_train_parser(sub)
    p = leaf(sub, "eval", "evaluate a run; the last line is a JSON object of metrics")
    p.add_argument("run", help="a run directory (the --out of `nlplab train`)")
    p.add_argument("--data", help="a file in the run's task format, or a named data set (default: the test split of the "
                                  "run's data set)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (default: auto)")
    p = leaf(sub, "predict", "the model's output for each text: label and probability, entities, words or match")
    p.add_argument("run", help="a run directory")
    p.add_argument("texts", nargs="*", help="texts to predict (matching runs: sentence1<TAB>sentence2)")
    p.add_argument("--input", help="file with one text per line (blank lines skipped)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (default: auto)")
    p = leaf(sub, "embed", "one sentence embedding per input line, saved as a NumPy .npy file")
    p.add_argument("model", help="an nlplab run, a Hugging Face BERT folder, or all-MiniLM-L6-v2")
    p.add_argument("--input", required=True, help="text file, one sentence per line (blank lines skipped)")
    p.add_argument("--out", required=True, help="output .npy file, shape (lines, dim)")
    p.add_argument("--batch-size", type=int, default=64, help="sentences per forward pass (default: 64)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (default: auto)")
    leaf(sub, "data", "list every named data set of every task, its size and whether it is available here")
    tok = sub.add_parser("tokenizer", help="train or use a tokenizer", description="Train or use a tokenizer.")
    tok_sub = tok.add_subparsers(dest="tokenizer_command", required=True, metavar="COMMAND")
    p = leaf(tok_sub, "train", "train a tokenizer on text files (one text per line)")
    p.add_argument("--algo", required=True, metavar="{" + ",".join(sorted(TOKENIZERS)) + "}", help="the algorithm")
    p.add_argument("--vocab-size", type=int, help="the vocabulary size to reach (default: as large as the data allows)")
    p.add_argument("--min-freq", type=int, default=1, help="a merge or token needs at least this count (default: 1)")
    p.add_argument("--limit-alphabet", type=int, help="bpe: keep only the N most frequent characters (others become [UNK])")
    p.add_argument("--input", nargs="+", required=True, help="text files, one text per line")
    p.add_argument("--out", required=True, help="folder for tokenizer.json and tokenizer_config.json")
    p.add_argument("--no-progress", action="store_true", help="no progress bar or progress lines")
    p = leaf(tok_sub, "encode", "print the tokens and ids of texts")
    p.add_argument("dir", help="a saved tokenizer folder (or a run's tokenizer/)")
    p.add_argument("texts", nargs="+", help="texts to encode")
    p.add_argument("--json", action="store_true", help="also print one JSON object per text as the last lines")
    for module in EXTENSIONS:
        COMMANDS.update(importlib.import_module(module).add_parsers(sub))
    return parser


COMMANDS = {"train": cmd_train, "eval": cmd_eval, "predict": cmd_predict, "embed": cmd_embed, "data": cmd_data}
TOKENIZER_COMMANDS = {"train": cmd_tokenizer_train, "encode": cmd_tokenizer_encode}
# modules that add commands: each has add_parsers(sub) -> {command name: handler(args)}
EXTENSIONS = ["nlplab.generate.cli", "nlplab.lab.cli", "nlplab.train.match_cli"]


def command_parser(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The (sub)command parser that `args` came through, for its own usage line in error messages."""
    while True:
        actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not actions or getattr(args, actions[0].dest, None) is None:
            return parser
        parser = actions[0].choices[getattr(args, actions[0].dest)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        command_parser(parser, args).error(f"unrecognized arguments: {' '.join(unknown)}")
    command = TOKENIZER_COMMANDS[args.tokenizer_command] if args.command == "tokenizer" else COMMANDS[args.command]
    try:
        command(args)
    except NlplabError as e:
        print(f"nlplab: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"nlplab: interrupted; {resume_hint(args)}", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


def resume_hint(args: argparse.Namespace) -> str:
    """What to do after an interrupt: resume a training run that saved something, else just run again."""
    if args.command == "train" and (Path(args.out) / "config.yaml").is_file():
        return f"continue the run with `nlplab train --out {args.out} --resume`"
    return "nothing was saved; run the command again"


if __name__ == "__main__":
    sys.exit(main())
