"""The `nlplab` command: parses arguments, calls the library and prints. Errors a user can fix print one line and
exit 2; an interrupt exits 130 with what to do next.

Each command family lives in a module with `add_parsers(sub) -> {command: handler(args)}` (`MODULES`)."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nlplab import __version__
from nlplab.dist.launch import launched
from nlplab.errors import ConfigError, NlplabError, RunError

EXIT_USAGE, EXIT_INTERRUPTED = 2, 130
MODULES = ["nlplab.cli.train", "nlplab.cli.use", "nlplab.cli.tokenizer", "nlplab.cli.peft", "nlplab.lab.cli",
           "nlplab.serve.cli"]


class Parser(argparse.ArgumentParser):
    """argparse without prefix matching (`--epoch 2` must not silently mean `--epochs`); subcommands inherit it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, Any]]:
    """The parser of every command, and {command: handler}."""
    parser = Parser(prog="nlplab", description="NLP from the study notes: train, evaluate, predict, generate, serve, "
                                               "tokenize, reproduce the notes' claims.")
    parser.add_argument("--version", action="version", version=f"nlplab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    handlers: dict[str, Any] = {}
    for module in MODULES:
        handlers.update(importlib.import_module(module).add_parsers(sub))
    return parser, handlers


def command_parser(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The (sub)command parser that `args` came through, for its own usage line in error messages."""
    while True:
        actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not actions or getattr(args, actions[0].dest, None) is None:
            return parser
        parser = actions[0].choices[getattr(args, actions[0].dest)]


def resume_hint(args: argparse.Namespace) -> str:
    """What to do after an interrupt: resume a training run that saved something, else run again."""
    if args.command == "train" and (Path(args.out) / "config.yaml").is_file():
        return f"continue the run with `nlplab train --out {args.out} --resume`"
    return "nothing was saved; run the command again"


def main(argv: Sequence[str] | None = None) -> int:
    parser, handlers = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        command_parser(parser, args).error(f"unrecognized arguments: {' '.join(unknown)}")
    rank = launched()[0]
    try:
        handlers[args.command](args)
    except NlplabError as e:
        if rank == 0 or not isinstance(e, (ConfigError, RunError)):  # the same on every process: said once
            print(f"nlplab: error{f' (rank {rank})' if rank else ''}: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        if rank == 0:
            print(f"nlplab: interrupted; {resume_hint(args)}", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


if __name__ == "__main__":
    sys.exit(main())
