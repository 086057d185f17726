"""`nlplab peft merge RUN --out DIR`: a parameter-efficient run's adapter folded into its base, written as a Hugging
Face folder that loads without nlplab (`nlplab.runs.merge`)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from nlplab.cli.args import leaf


def cmd_merge(args: argparse.Namespace) -> None:
    from nlplab.runs.merge import HEAD_FILE, merge_run

    merged = merge_run(args.run, args.out)
    what = f"{merged.method} adapter merged into its base" if merged.method else "a fully fine-tuned run (no adapter)"
    print(f"{merged.folder}: {what}; a Hugging Face {merged.architecture} folder with its tokenizer "
          f"(transformers: {merged.architecture}.from_pretrained)")
    if merged.heads:
        print(f"{merged.folder / HEAD_FILE}: the task head ({', '.join(merged.heads)}) is no transformers architecture; "
              f"its tensors are kept under their nlplab names")


def add_parsers(sub: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], None]]:
    peft = leaf(sub, "peft", "work with parameter-efficient (--peft) runs")
    peft_sub = peft.add_subparsers(dest="peft_command", required=True, metavar="COMMAND")
    p = leaf(peft_sub, "merge", "fold a run's LoRA, QLoRA or BitFit adapter into its base and write a Hugging Face folder")
    p.add_argument("run", help="a run directory of `nlplab train --peft lora|qlora|bitfit` (or of full fine-tuning)")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for config.json, model.safetensors, the "
                                                                "tokenizer and head.safetensors")
    return {"peft": lambda args: {"merge": cmd_merge}[args.peft_command](args)}
