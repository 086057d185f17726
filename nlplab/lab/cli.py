"""`nlplab lab list` and `nlplab lab NAME [--quick] [--seed N] --out DIR`."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from nlplab.errors import ConfigError


def cmd_lab(args: argparse.Namespace) -> None:
    from nlplab.lab import LABS, get_lab, run_lab

    if args.name == "list":
        for name in LABS:
            print(f"{name:<16} {get_lab(name).claim}")
        return
    if args.out is None:
        raise ConfigError("--out DIR is required to run a lab (the table, JSON and plots go there)")
    result = run_lab(args.name, args.out, quick=args.quick, seed=args.seed, progress=False if args.no_progress else None)
    print(f"{args.name}: {result.summary} -> {'holds' if result.holds else 'does NOT hold'}; results in {args.out}")


def add_parsers(sub: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], None]]:
    p = sub.add_parser("lab", help="reproduce a claim of the notes as a table and plots (`nlplab lab list`)")
    p.add_argument("name", help="a lab name, or `list`")
    p.add_argument("--out", help="folder for NAME.md, NAME.json and the plots")
    p.add_argument("--quick", action="store_true", help="the small variant (under a minute)")
    p.add_argument("--seed", type=int, default=0, help="seed of the lab's data order and initialisation (default: 0)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    return {"lab": cmd_lab}
