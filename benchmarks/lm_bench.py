"""Perplexity of every language model on the same held-out split of pd98-text with the same char vocabulary.

n-grams (unigram, bigram, trigram, interpolated Kneser-Ney) are counted on the training documents; the neural
models (RNN, LSTM, GRU, gated CNN, GPT) train for the same wall-clock budget on one CPU thread each, one after
the other (the budget counts the process's CPU time in training steps, so other load on the machine does not
shrink it), with validation perplexity (on the first `--curve-tokens` tokens of the validation stream) measured
every `--every` seconds of training for the curve. At the end each model is scored on the whole validation and
test splits: N = Σ_d (|d| + 1) predictions for every model (see nlplab.train.lm).

    python benchmarks/lm_bench.py                       # 10-minute budget per neural model, as the issue asks
    python benchmarks/lm_bench.py --budget 0.2 --models ngram1,gru --out /tmp/lmb    # a smoke run

benchmarks/gpu_bench.py builds the same table on a GPU (`run_neural` with a device and a wall clock).
"""

from __future__ import annotations

import argparse
import datetime
import shlex
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from common import RESULTS, git_commit, machine, write_result

from nlplab.io import atomic_write
from nlplab.optim import build_optimizer
from nlplab.runtime import autocast
from nlplab.train.config import TrainConfig
from nlplab.train.lm import LMTask, stream_nll
from nlplab.train.trainer import train

SHAPES = {  # per neural model: TrainConfig fields
    "rnn": {"embed_dim": 128, "hidden_size": 256, "layers": 1, "lr": 2e-3},
    "lstm": {"embed_dim": 128, "hidden_size": 256, "layers": 1, "lr": 2e-3},
    "gru": {"embed_dim": 128, "hidden_size": 256, "layers": 1, "lr": 2e-3},
    "cnn": {"hidden_size": 256, "layers": 4, "kernel_sizes": [4], "lr": 1e-3},
    "gpt": {"hidden_size": 256, "layers": 4, "heads": 4, "lr": 1e-3},
}
MODELS = ("ngram1", "ngram2", "ngram3", *SHAPES)


def base_config(tokenizer: str, **fields: object) -> TrainConfig:
    return TrainConfig.from_dict({"task": "lm", "data": "pd98-text", "tokenizer": tokenizer, "vocab_size": None,
                                  "min_freq": 2, "window_size": 128, "batch_size": 16, "dropout": 0.1, "device": "cpu",
                                  **fields})


def vocabulary(work: Path, **fields: object) -> tuple[dict, str]:
    """One char vocabulary for every model: the metrics and tokenizer folder of a unigram run, reused by the rest."""
    first = train(base_config("char", model="ngram", order=1, **fields), work / "vocab")
    return first, str(work / "vocab" / "tokenizer")


def run_ngram(order: int, tokenizer: str, work: Path, **fields: object) -> dict:
    metrics = train(base_config(tokenizer, model="ngram", order=order, **fields), work / f"ngram{order}")
    return {"model": f"{order}-gram KN", "train_seconds": metrics["train_seconds"], "dev_ppl": metrics["dev"]["ppl"],
            "test_ppl": metrics["test"]["ppl"], "test_bits_per_char": metrics["test"]["bits_per_char"],
            "parameters": None, "curve": []}


def run_neural(name: str, tokenizer: str, budget: float, every: float, curve_tokens: int,
               device: torch.device = torch.device("cpu"), clock: Callable[[], float] = time.process_time,
               **fields: object) -> dict:
    """Train `name` for `budget` seconds of `clock` spent in training steps (bf16 autocast on CUDA), then score it."""
    cfg = base_config(tokenizer, model=name, **{**SHAPES[name], "device": device.type, **fields})
    task = LMTask(cfg, Path(tempfile.mkdtemp()), resume=False, device=device)
    model = task.model
    optimizer = build_optimizer("adam", model.parameters(), lr=cfg.lr)
    probe = task.streams["dev"][: curve_tokens + 1]
    curve, spent, steps, epoch = [], 0.0, 0, 0
    next_eval = 0.0
    while spent < budget:
        epoch += 1
        for batch in task.train_batches(torch.Generator().manual_seed(epoch)):
            if spent >= next_eval:
                nll, n = stream_nll(model, probe, cfg.window_size, 64, task.device)
                curve.append({"seconds": spent, "steps": steps, "val_ppl": float(torch.exp(torch.tensor(nll / n)))})
                print(f"  {name} {spent:7.1f}s step {steps:6d} val ppl {curve[-1]['val_ppl']:.2f}", flush=True)
                next_eval += every
            t0 = clock()
            model.train()
            with autocast(task.device):
                loss, _, _ = task.step(batch)
            optimizer.zero_grad(set_to_none=True)
            task.objective(loss).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            spent += clock() - t0
            steps += 1
            if spent >= budget:
                break
    nll, n = stream_nll(model, probe, cfg.window_size, 64, task.device)
    curve.append({"seconds": spent, "steps": steps, "val_ppl": float(torch.exp(torch.tensor(nll / n)))})
    dev, test = task.evaluate("dev"), task.evaluate("test")
    return {"model": name.upper() if name != "cnn" else "gated CNN", "train_seconds": spent, "steps": steps,
            "epochs": round(steps / task.num_train_batches(), 2), "dev_ppl": dev["ppl"], "test_ppl": test["ppl"],
            "test_bits_per_char": test["bits_per_char"], "parameters": sum(p.numel() for p in model.parameters()),
            "shape": SHAPES[name], "curve": curve}


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for row in rows:
        if row["curve"]:
            ax.plot([c["seconds"] / 60 for c in row["curve"]], [c["val_ppl"] for c in row["curve"]], label=row["model"])
        else:
            ax.axhline(row["dev_ppl"], linestyle="--", linewidth=1, label=f"{row['model']} (counted)")
    ax.set_yscale("log")
    ax.set_xlabel("training CPU time (minutes, 1 thread)")
    ax.set_ylabel("validation perplexity (char)")
    ax.set_title("pd98-text: validation perplexity against training time")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)


def table(rows: list[dict], time_header: str) -> list[str]:
    """The Markdown table of the rows of run_ngram / run_neural."""
    lines = [f"| model | parameters | {time_header} | steps (epochs) | validation PPL | test PPL | test bits/char |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        steps = f"{r['steps']} ({r['epochs']})" if "steps" in r else "counts"
        params = f"{r['parameters'] / 1e6:.2f} M" if r["parameters"] else "—"
        lines.append(f"| {r['model']} | {params} | {r['train_seconds']:.0f} s | {steps} | {r['dev_ppl']:.2f} | "
                     f"{r['test_ppl']:.2f} | {r['test_bits_per_char']:.3f} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--budget", type=float, default=10.0, help="minutes of training per neural model")
    parser.add_argument("--every", type=float, default=30.0, help="seconds of training between curve points")
    parser.add_argument("--curve-tokens", type=int, default=20000)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    started, t0 = datetime.datetime.now(datetime.timezone.utc), time.perf_counter()
    work = Path(tempfile.mkdtemp())
    first, tokenizer = vocabulary(work)
    rows = []
    for name in args.models.split(","):
        print(f"== {name}", flush=True)
        if name.startswith("ngram"):
            rows.append(run_ngram(int(name[5:]), tokenizer, work))
        else:
            rows.append(run_neural(name, tokenizer, args.budget * 60, args.every, args.curve_tokens))
        print(f"   test ppl {rows[-1]['test_ppl']:.2f}", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    plot(rows, args.out / "lm_perplexity.png")
    payload = {"command": "python " + shlex.join(sys.argv), "date": started.isoformat(timespec="seconds"),
               "wall_seconds": time.perf_counter() - t0, "machine": machine(), "commit": git_commit(),
               "data": {"corpus": "pd98-text", "documents": first["documents"], "vocab_size": first["vocab_size"],
                        "tokens": {"dev": first["dev"]["tokens"], "test": first["test"]["tokens"]}},
               "budget_minutes": args.budget, "rows": rows}
    lines = [f"# Language models on pd98-text (char level, vocabulary {first['vocab_size']})", "",
             f"Same split ({first['documents']} documents), same vocabulary; neural models trained for {args.budget:g} "
             "CPU minutes each (1 thread). Lower is better.", "",
             *table(rows, "training CPU")]
    lines += ["", "![validation perplexity against training time](lm_perplexity.png)", "",
              f"`{payload['command']}` — {started:%Y-%m-%d}, {payload['wall_seconds'] / 60:.0f} min wall, "
              f"{payload['machine']['cpu']}, torch threads 1."]
    write_result("lm", payload, "\n".join(lines) + "\n", args.out)


if __name__ == "__main__":
    main()
