"""`nlplab train`: every recipe option as a flag (`add_recipe_arguments`), a YAML recipe, and the run directory."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from nlplab.cli.args import leaf
from nlplab.train.config import TrainConfig, add_recipe_arguments


def cmd_train(args: argparse.Namespace) -> None:
    """Train; under torchrun every process runs this, and rank 0 alone prints."""
    from nlplab.dist.launch import launched
    from nlplab.train.config import load_config
    from nlplab.train.trainer import CHECKPOINT, describe_epoch, train

    overrides = {name: getattr(args, name) for name in TrainConfig.fields()}
    out, config_path = Path(args.out), args.config
    if args.resume and config_path is None and (out / "config.yaml").is_file():
        config_path = out / "config.yaml"
    cfg = load_config(config_path, overrides)
    main = launched()[0] == 0
    if main and args.resume and (out / "config.yaml").is_file() and not (out / CHECKPOINT).is_file():
        print(f"{out}: interrupted before its first checkpoint; training it again from the beginning", file=sys.stderr)
    metrics = train(cfg, out, resume=args.resume, overwrite=args.overwrite,
                    on_epoch_end=lambda _epoch, row: print(describe_epoch(row), flush=True),
                    progress=False if args.no_progress else None,
                    on_start=lambda info: print(info["summary"], flush=True))
    if not main:
        return
    from nlplab.cli.use import warn_skipped

    warn_skipped(metrics.get("skipped_pairs", 0), cfg.data)
    test = {k: v for k, v in metrics["test"].items() if isinstance(v, (int, float))}
    print(f"best epoch {metrics['best_epoch']} | test " + " ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                                                            for k, v in test.items()) + f" | run: {args.out}")
    print(json.dumps(test))


def add_parsers(sub: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], None]]:
    p = leaf(sub, "train", "train a model into a run directory; options may come from a YAML recipe (--config)")
    run = p.add_argument_group("run directory")
    run.add_argument("--config", metavar="YAML", help="recipe file, flat or by section; flags override its keys")
    run.add_argument("--out", required=True, metavar="RUN", help="run directory to create (or to continue with --resume)")
    run.add_argument("--resume", action="store_true", help="continue an interrupted run from its last checkpoint "
                                                           "(from the beginning when it has none yet)")
    run.add_argument("--overwrite", action="store_true", help="delete the run already in --out and start again")
    run.add_argument("--no-progress", action="store_true", help="no progress bar or progress lines")
    add_recipe_arguments(p)
    return {"train": cmd_train}
