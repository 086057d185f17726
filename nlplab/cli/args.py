"""Pieces every command's parser shares."""

from __future__ import annotations

import argparse
from typing import Any


def leaf(sub: argparse._SubParsersAction, name: str, help: str, **kwargs: Any) -> argparse.ArgumentParser:
    """A subcommand's parser, with its help line as description."""
    return sub.add_parser(name, help=help, description=help[:1].upper() + help[1:] + ".", **kwargs)


def add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="auto (CUDA when present) | cpu | cuda | cuda:N (default: auto)")


def add_compile(p: argparse.ArgumentParser) -> None:
    p.add_argument("--compile", action="store_true", help="run the model under torch.compile (the first calls compile)")
