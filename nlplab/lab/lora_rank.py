"""Lab `lora-rank`: LoRA's claim that the update a pretrained model needs for a task has a low rank, so that a
small r suffices (Hu et al., 2021, table 6: r = 1 already does well on q and v).

all-MiniLM-L6-v2 is fine-tuned on SST-2 in full and with LoRA on q and v for r = 1, 2, 4, 8, 16, 64 (α = 16 for
every r, as the paper keeps α fixed), each run on the same random subsample of the training split (seed 0), one
epoch, and scored on the same validation sentences (the dev split cut off the training file). Each run's recipe
is the benchmark's (`configs/sst2-full.yaml`, `configs/sst2-lora.yaml`), on its 2,000 training sentences, scored
on fewer to keep seven runs within a few CPU minutes: the first 1,000 of those validation sentences; `--quick`
trains on 128 and scores on 200 (cut at 32 tokens), r = 1 and 64 only.

The claim holds when the small ranks (r ≤ 4) come, on average, within one point of full fine-tuning, and the
largest rank gains less than one point over them.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any

from nlplab.data.registry import load_dataset, subsample
from nlplab.lab.base import Lab, LabContext, LabResult
from nlplab.train.config import TrainConfig
from nlplab.train.trainer import train

RANKS, QUICK_RANKS, SMALL = (1, 2, 4, 8, 16, 64), (1, 64), 4
RECIPE = {"task": "classify", "model": "transformer", "init_from": "all-MiniLM-L6-v2", "window_size": 64,
          "dropout": 0.1, "epochs": 1, "batch_size": 32, "optimizer": "adamw", "weight_decay": 0.01,
          "schedule": "linear", "device": "cpu"}
FULL = {"lr": 5e-5, "peft": None}
LORA = {"lr": 2e-3, "peft": "lora", "lora_alpha": 16, "lora_dropout": 0.1, "lora_targets": "q,v"}


def write_tsv(path: Path, examples: list[tuple[str, str]]) -> str:
    path.write_text("label\tsentence\n" + "".join(f"{label}\t{text}\n" for text, label in examples), encoding="utf-8")
    return str(path)


def fine_tune(data: str, dev: str, examples: int, seed: int, out: Path, **method: Any) -> dict[str, Any]:
    """One run on `examples` training sentences, warmed up over its first 10% of steps: validation accuracy,
    trainable and total parameters, training seconds."""
    warmup = max(math.ceil(examples / RECIPE["batch_size"]) // 10, 1)
    cfg = TrainConfig.from_dict({**RECIPE, **method, "data": data, "dev": dev, "seed": seed, "warmup_steps": warmup})
    metrics = train(cfg, out, overwrite=True, progress=False)
    return {"val accuracy": metrics["dev"]["accuracy"], "trainable": metrics["parameters"]["trainable"],
            "total": metrics["parameters"]["total"], "train seconds": metrics["train_seconds"]}


def run(ctx: LabContext) -> LabResult:
    import matplotlib.pyplot as plt

    n_train, n_val, ranks = (128, 200, QUICK_RANKS) if ctx.quick else (2_000, 1_000, RANKS)
    window = {"window_size": 32} if ctx.quick else {}
    sst2 = load_dataset("sst2")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = write_tsv(tmp / "train.tsv", subsample(sst2.train, n_train))
        dev = write_tsv(tmp / "dev.tsv", sst2.dev[:n_val])
        jobs = [("full fine-tuning", None, {**FULL, **window})]
        jobs += [(f"LoRA r={r}", r, {**LORA, **window, "lora_r": r}) for r in ranks]
        rows = []
        for label, r, method in ctx.bar(jobs, desc="runs"):
            figures = ctx.step(label, lambda: fine_tune(data, dev, n_train, ctx.seed, tmp / f"run-{r}", **method))
            rows.append({"method": label, "r": r, **figures})
    full = rows[0]["val accuracy"]
    for row in rows:
        row["trainable %"] = 100 * row["trainable"] / row["total"]
        row["Δ vs full (points)"] = 100 * (row["val accuracy"] - full)
    lora = [row for row in rows if row["r"] is not None]
    small = [row["val accuracy"] for row in lora if row["r"] <= SMALL]
    small_mean, largest = sum(small) / len(small), lora[-1]
    gain = 100 * (largest["val accuracy"] - small_mean)
    holds = 100 * (full - small_mean) <= 1.0 and gain < 1.0

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([row["r"] for row in lora], [row["val accuracy"] for row in lora], "o-", label="LoRA on q, v")
    for row in lora:
        ax.annotate(f"{row['trainable']:,}", (row["r"], row["val accuracy"]), textcoords="offset points",
                    xytext=(0, 6), ha="center", fontsize=7)
    ax.axhline(full, color="k", ls="--", lw=1, label=f"full fine-tuning ({rows[0]['trainable']:,} trained)")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("rank r (labels: trainable parameters)")
    ax.set_ylabel("validation accuracy")
    ax.set_title(f"SST-2 from all-MiniLM-L6-v2: {n_train:,} sentences, 1 epoch, {n_val:,} scored")
    ax.legend(loc="lower right")
    ctx.save_plot(fig, "accuracy")

    summary = (f"full fine-tuning {full:.4f}; LoRA r ≤ {SMALL} averages {small_mean:.4f} "
               f"({100 * (small_mean - full):+.2f} points) with {lora[0]['trainable %']:.2f}–"
               f"{max(row['trainable %'] for row in lora if row['r'] <= SMALL):.2f}% of the parameters trained; "
               f"r = {largest['r']} gains {gain:+.2f} points over them")
    return LabResult(rows, summary, holds, {"train_examples": n_train, "validation_examples": n_val,
                                            "recipes": {"full": {**RECIPE, **FULL}, "lora": {**RECIPE, **LORA}}})


LAB = Lab("lora-rank", "A small LoRA rank suffices: on SST-2 from all-MiniLM-L6-v2, LoRA of rank r ≤ 4 on q and v "
                       "comes within a point of full fine-tuning, and r = 64 adds less than a point", run)
