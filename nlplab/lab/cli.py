"""`nlplab lab list`, `nlplab lab NAME [--quick] [--seed N] --out DIR` and `nlplab tune ...`."""

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


def cmd_tune(args: argparse.Namespace) -> None:
    import optuna

    from nlplab.lab.base import markdown_table
    from nlplab.lab.tune import parse_train_flags, read_space, tune

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    result = tune(args.config, read_space(args.space), args.search, args.trials, args.out, metric=args.metric,
                  jobs=args.jobs, overrides=parse_train_flags(args.train_flags), seed=args.seed, prune=not args.no_prune,
                  progress=False if args.no_progress else None)
    print(markdown_table(result.rows), end="")
    if result.best is None:
        print(f"no trial completed; the study is in {args.out}/study.db")
        return
    best = result.best
    print(f"best: trial {best['trial']}, dev {result.metric} {best['value']:.4f}, "
          + ", ".join(f"{k} {v}" for k, v in best["params"].items()) + f"; recipe: {args.out}/best.yaml")


def add_parsers(sub: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], None]]:
    p = sub.add_parser("lab", help="reproduce a claim of the notes as a table and plots (`nlplab lab list`)")
    p.add_argument("name", help="a lab name, or `list`")
    p.add_argument("--out", help="folder for NAME.md, NAME.json and the plots")
    p.add_argument("--quick", action="store_true", help="the small variant (under a minute)")
    p.add_argument("--seed", type=int, default=0, help="seed of the lab's data order and initialisation (default: 0)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p = sub.add_parser("tune", help="search hyper-parameters of a training recipe (grid, random, Bayesian)",
                       description="Flags of `nlplab train` after `--` override the recipe, e.g. `-- --epochs 3`.")
    p.add_argument("--config", help="YAML recipe of `nlplab train` (default: its defaults)")
    p.add_argument("--space", required=True, help="YAML search space: option: {low, high[, log]} or {choices: [...]}")
    p.add_argument("--search", default="bayes", help="grid | random | bayes (TPE) | gp (hand-written GP + EI)")
    p.add_argument("--trials", type=int, required=True, help="finished trials the study should hold")
    p.add_argument("--out", required=True, help="study folder: study.db, trials/, trials.md, best.yaml, plots")
    p.add_argument("--metric", help="dev figure to optimise (default: the one the task selects epochs by)")
    p.add_argument("--jobs", type=int, default=1, help="trials run at once (threads)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampler")
    p.add_argument("--no-prune", action="store_true", help="let every trial run all its epochs")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.add_argument("train_flags", nargs=argparse.REMAINDER, help="-- then flags of `nlplab train`")
    return {"lab": cmd_lab, "tune": cmd_tune}
