"""Parameter-efficient fine-tuning on SST-2 from all-MiniLM-L6-v2: full fine-tuning against each method.

    python benchmarks/peft_bench.py [--methods full,lora,qlora,bitfit,adapter,prompt,prefix] [--runs DIR] [--threads N]

Each method trains with its recipe `configs/sst2-<method>.yaml` in a child process (`python -m nlplab train`), so
that its peak memory (the child's maximum resident set size, from wait4) is its own. Every recipe trains on the same
data (the whole training split, or the same random `train_examples` of it) and is scored on the same validation
split (10% of the training file, seed 0; the GLUE dev split is held out elsewhere). Recorded per method: validation
accuracy, trainable and total parameters, training seconds per epoch, peak memory, the size of what the run saves
(its adapter/ folder, or model.safetensors for full fine-tuning), and for QLoRA the memory of its frozen base.
A method is any recipe name configs/sst2-<method>.yaml (e.g. lora-attn). Writes benchmarks/results/peft.json
and peft.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from common import footer, git_commit, machine, write_result
from nlplab.peft import memory_report
from nlplab.runs import load_run
from nlplab.train.config import load_config

ROOT = Path(__file__).resolve().parents[1]
METHODS = ("full", "lora", "qlora", "bitfit", "adapter", "prompt", "prefix")
TARGETS = {"lora_within_points": 1.0, "lora_trainable_share": 0.01, "adapter_bytes": 1_000_000,
           "qlora_of_float32": 0.30}


def train_child(recipe: Path, run: Path, threads: int) -> tuple[float, int]:
    """Train `recipe` into `run` in a child process: (wall seconds, peak resident memory in bytes)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    command = [sys.executable, "-m", "nlplab", "train", "--config", str(recipe), "--out", str(run), "--no-progress"]
    start = time.perf_counter()
    child = subprocess.Popen(command, env=env, cwd=ROOT)
    _, status, usage = os.wait4(child.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{shlex.join(command)} failed")
    return time.perf_counter() - start, usage.ru_maxrss * 1024


def saved_bytes(run: Path) -> dict[str, int]:
    """Bytes of what the run keeps of its model: adapter/ (each file and in all) or model.safetensors."""
    if (run / "adapter").is_dir():
        files = {p.name: p.stat().st_size for p in sorted((run / "adapter").iterdir())}
        return {**files, "total": sum(files.values())}
    return {"model.safetensors": (run / "model.safetensors").stat().st_size,
            "total": (run / "model.safetensors").stat().st_size}


def run_method(method: str, runs: Path, threads: int) -> dict[str, Any]:
    recipe = ROOT / "configs" / f"sst2-{method}.yaml"
    run = runs / method
    wall, peak = train_child(recipe, run, threads)
    metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    history = [json.loads(line) for line in (run / "history.jsonl").read_text(encoding="utf-8").splitlines()]
    row = {"method": method, "recipe": str(recipe.relative_to(ROOT)), "config": load_config(recipe, {}).to_dict(),
           "val_accuracy": metrics["dev"]["accuracy"], "val_macro_f1": metrics["dev"]["macro_f1"],
           "val_examples": sum(map(sum, metrics["dev"]["confusion_matrix"])),
           "best_epoch": metrics["best_epoch"], "epochs_run": metrics["epochs_run"],
           "trainable": metrics["parameters"]["trainable"], "total": metrics["parameters"]["total"],
           "seconds_per_epoch": sum(h["seconds"] for h in history) / len(history), "wall_seconds": wall,
           "peak_rss_bytes": peak, "saved_bytes": saved_bytes(run), "notes": metrics["notes"]}
    if row["config"]["adapters"]["peft"] == "qlora":
        row["frozen_memory"] = memory_report(load_run(run, "cpu").model)
    return row


def targets(rows: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Each target of the issue with its measured figure and whether it is met (None: a method was not run)."""
    out: dict[str, Any] = {}
    full, lora, qlora = rows.get("full"), rows.get("lora"), rows.get("qlora")
    if full and lora:
        gap = 100 * (full["val_accuracy"] - lora["val_accuracy"])
        share = lora["trainable"] / lora["total"]
        out["lora_within_1_point_of_full"] = {"points_below_full": gap, "met": gap <= TARGETS["lora_within_points"]}
        out["lora_under_1_percent_trainable"] = {"share": share, "met": share < TARGETS["lora_trainable_share"]}
    if lora:
        size = lora["saved_bytes"]["adapter_model.safetensors"]
        out["lora_adapter_under_1_MB"] = {"bytes": size, "met": size < TARGETS["adapter_bytes"]}
    if qlora:
        report = qlora["frozen_memory"]
        out["qlora_frozen_weights_at_most_30_percent_of_float32"] = {
            "quantized_linears_of_float32": report["of_float32"],
            "whole_frozen_base_of_float32": (report["nf4_bytes"] + report["other_frozen_bytes"])
            / (report["float32_bytes"] + report["other_frozen_bytes"]),
            "met": report["of_float32"] <= TARGETS["qlora_of_float32"]}
    return out


def mib(n: float) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 1024:.0f} KiB"


def markdown(result: dict[str, Any]) -> str:
    rows = ["| method | val accuracy | Δ vs full (points) | trainable | of all | s / epoch | peak RSS | saved |",
            "|---|---|---|---|---|---|---|---|"]
    full = next((r for r in result["methods"] if r["method"] == "full"), None)
    for r in result["methods"]:
        delta = f"{100 * (r['val_accuracy'] - full['val_accuracy']):+.2f}" if full else "–"
        rows.append(f"| {r['method']} | {r['val_accuracy']:.4f} | {delta} | {r['trainable']:,} | "
                    f"{100 * r['trainable'] / r['total']:.2f}% | {r['seconds_per_epoch']:.0f} | {mib(r['peak_rss_bytes'])} | "
                    f"{mib(r['saved_bytes']['total'])} |")
    lines = [f"# Parameter-efficient fine-tuning: SST-2 from all-MiniLM-L6-v2\n", "\n".join(rows), ""]
    lines.append(f"Training data: {result['subsample']}. Validation: the {result['validation_examples']:,} sentences "
                 "split off the training file (seed 0); the GLUE dev split is held out elsewhere. Peak RSS: the training "
                 "process's maximum resident memory on the CPU. Saved: the run's adapter/ folder (adapter and task head) or "
                 "model.safetensors.\n")
    lines.append("| target | figure | met |\n|---|---|---|")
    for name, t in result["targets"].items():
        figure = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v:,}" for k, v in t.items() if k != "met")
        lines.append(f"| {name.replace('_', ' ')} | {figure} | {'yes' if t['met'] else 'no'} |")
    return "\n".join(lines) + "\n\n" + footer(result)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated: full and PEFT methods")
    parser.add_argument("--runs", help="folder for the run directories (default: a temporary folder)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of each training process (default: 1)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"), help="folder for peft.json and .md")
    args = parser.parse_args(argv)

    start, date = time.perf_counter(), datetime.now(timezone.utc).isoformat(timespec="seconds")
    with tempfile.TemporaryDirectory() as tmp:
        runs = Path(args.runs or tmp)
        rows = []
        for method in args.methods.split(","):
            rows.append(run_method(method, runs, args.threads))
            print(json.dumps({k: v for k, v in rows[-1].items() if k != "config"}), flush=True)
    notes = rows[0]["notes"]
    result = {"command": shlex.join(["python", *sys.argv]), "machine": {**machine(), "torch_threads": args.threads},
              "commit": git_commit(), "date": date, "wall_seconds": time.perf_counter() - start,
              "subsample": next((n for n in notes if "random" in n), "the whole training split"),
              "validation_examples": rows[0]["val_examples"], "methods": rows, "targets": targets({r["method"]: r for r in rows})}
    write_result("peft", result, markdown(result), Path(args.out))
    print(markdown(result))


if __name__ == "__main__":
    main()
