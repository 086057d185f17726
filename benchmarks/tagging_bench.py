"""Sequence-labelling benchmark: People's Daily NER and word segmentation, MSRA cross-corpus NER, CRF speed.

    python benchmarks/tagging_bench.py [--parts speed,ner,seg] [--epochs N] [--runs DIR] [--out DIR]

  speed  the hand-written CRF's NLL (forward algorithm) + Viterbi against pytorch-crf's on the same batch and
         weights: sequences per second of each and their ratio (forward+backward of the NLL, then decode).
  ner    `configs/pd98-ner.yaml` (BiLSTM-CRF) and the same recipe without the CRF: entity F1 on the pd98-ner test
         split; the CRF model is then evaluated on all of `msra_ner/dev.tsv` (cross-corpus, never trained on).
  seg    `configs/pd98-seg.yaml` (BiLSTM-CRF): word F1 on the pd98-seg test split, beside jieba's default
         segmentation (jieba.lcut, precise mode, HMM on) of the same sentences scored the same way.
Each part updates `<out>/tagging.json` (command, machine, date, wall time, figures) and `<out>/tagging.md`.
Run with one thread: OMP_NUM_THREADS=1 nice -n 10 python benchmarks/tagging_bench.py
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from common import RESULTS, git_commit, machine, write_result

from nlplab.data.registry import find_data
from nlplab.data.tagging import load_tagging, read_uer_tsv
from nlplab.nn.crf import CRF
from nlplab.runs import load_run
from nlplab.train.config import TrainConfig, read_yaml
from nlplab.train.spans import bmes_spans, span_report, word_spans
from nlplab.train.trainer import train

ROOT = Path(__file__).resolve().parents[1]
PARTS = ("speed", "ner", "seg")


def recipe(name: str, epochs: int | None, **changes: Any) -> tuple[TrainConfig, str]:
    values = {k.replace("-", "_"): v for k, v in read_yaml(ROOT / "configs" / name).items()}
    values.update(changes)
    source = f"configs/{name}" + "".join(f", {k}={v}" for k, v in changes.items())
    if epochs is not None:
        values["epochs"] = epochs
        source += f", epochs={epochs}"
    return TrainConfig.from_dict({**values, "device": "cpu"}, source=source), source


def run_recipe(name: str, label: str, epochs: int | None, runs: Path, **changes: Any) -> tuple[dict[str, Any], Path]:
    cfg, source = recipe(name, epochs, **changes)
    start = time.perf_counter()
    metrics = train(cfg, runs / label, progress=False)
    test = metrics["test"]
    row = {"model": label, "recipe": source, "config": cfg.to_dict(), "test_f1": test["f1"], "test_precision": test["precision"],
           "test_recall": test["recall"], "test_accuracy": test["accuracy"], "dev_f1": metrics["dev"]["f1"],
           "per_type": {k: v["f1"] for k, v in test["per_type"].items()} if len(test["per_type"]) > 1 else None,
           "best_epoch": metrics["best_epoch"], "epochs_run": metrics["epochs_run"],
           "train_seconds": metrics["train_seconds"], "wall_seconds": time.perf_counter() - start}
    print(json.dumps(row), flush=True)
    return row, runs / label


def part_ner(epochs: int | None, runs: Path) -> dict[str, Any]:
    crf_row, crf_run = run_recipe("pd98-ner.yaml", "bilstm-crf", epochs, runs)
    plain_row, _ = run_recipe("pd98-ner.yaml", "bilstm", epochs, runs, crf=False)
    msra_path = find_data("msra_ner") / "dev.tsv"
    items = read_uer_tsv(msra_path)
    report = load_run(crf_run, "cpu").evaluate(str(msra_path))
    msra = {"model": "bilstm-crf (trained on pd98-ner)", "data": "msra_ner/dev.tsv (all)", "sentences": len(items),
            "f1": report["f1"], "precision": report["precision"], "recall": report["recall"],
            "per_type": {k: v["f1"] for k, v in report["per_type"].items()}}
    return {"models": [crf_row, plain_row], "msra_cross_corpus": msra}


def part_seg(epochs: int | None, runs: Path) -> dict[str, Any]:
    import jieba

    jieba.setLogLevel(logging.WARNING)
    row, _ = run_recipe("pd98-seg.yaml", "bilstm-crf", epochs, runs)
    test = load_tagging("pd98-seg").test
    start = time.perf_counter()
    predicted = [word_spans(jieba.lcut("".join(s.chars))) for s in test]
    seconds = time.perf_counter() - start
    report = span_report([bmes_spans(s.tags) for s in test], predicted)
    baseline = {"model": "jieba.lcut (default: precise mode, HMM)", "test_f1": report["f1"], "test_precision": report["precision"],
                "test_recall": report["recall"], "seconds": seconds}
    print(json.dumps(baseline), flush=True)
    return {"models": [row], "baselines": [baseline], "test_sentences": len(test)}


def timed(fn, repeats: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def part_speed(batch: int = 64, steps: int = 50, tags: int = 7, repeats: int = 20) -> dict[str, Any]:
    from torchcrf import CRF as TorchCRF

    torch.manual_seed(0)
    ours, theirs = CRF(tags), TorchCRF(tags, batch_first=True)
    with torch.no_grad():
        theirs.start_transitions.copy_(ours.start)
        theirs.end_transitions.copy_(ours.end)
        theirs.transitions.copy_(ours.transitions)
    emissions = torch.randn(batch, steps, tags, requires_grad=True)
    gold = torch.randint(0, tags, (batch, steps))
    lengths = torch.randint(steps // 2, steps + 1, (batch,))
    lengths[0] = steps
    mask = torch.arange(steps) < lengths[:, None]

    def run_ours() -> None:
        ours(emissions, gold, mask).backward()
        ours.decode(emissions.detach(), mask)

    def run_theirs() -> None:
        (-theirs(emissions, gold, mask)).backward()
        theirs.decode(emissions.detach(), mask)

    seconds = {"nlplab": timed(run_ours, repeats), "pytorch-crf": timed(run_theirs, repeats)}
    return {"batch": batch, "max_steps": steps, "tags": tags, "repeats": repeats, "dtype": "float32",
            "seconds_per_batch": seconds, "sequences_per_second": {k: batch / v for k, v in seconds.items()},
            "speedup": seconds["pytorch-crf"] / seconds["nlplab"]}


def markdown(result: dict[str, Any]) -> str:
    out = ["# Sequence labelling: People's Daily 1998 (pd98) NER and segmentation, MSRA cross-corpus, CRF speed\n"]
    if "ner" in result:
        ner = result["ner"]
        out += ["## pd98-ner test split: entity-level micro F1 (exact span match)\n",
                "| model | test F1 | precision | recall | PER F1 | LOC F1 | ORG F1 | best epoch | train time (s) | recipe |",
                "|---|---|---|---|---|---|---|---|---|---|"]
        for r in ner["models"]:
            t = r["per_type"]
            out.append(f"| {r['model']} | {r['test_f1']:.4f} | {r['test_precision']:.4f} | {r['test_recall']:.4f} | "
                       f"{t['PER']:.4f} | {t['LOC']:.4f} | {t['ORG']:.4f} | {r['best_epoch']}/{r['epochs_run']} | "
                       f"{r['train_seconds']:.0f} | {r['recipe']} |")
        out += ["", ("Train time is wall-clock on a shared 2-core machine whose load changed during the runs (see Provenance); "
                     "it does not compare the two models' speed (see the CRF speed table for that).")]
        m = ner["msra_cross_corpus"]
        t = m["per_type"]
        out += ["", (f"Cross-corpus: the BiLSTM-CRF above on {m['data']} ({m['sentences']} sentences, never seen in "
                     f"training): entity F1 **{m['f1']:.4f}** (P {m['precision']:.4f}, R {m['recall']:.4f}; "
                     f"PER {t['PER']:.4f}, LOC {t['LOC']:.4f}, ORG {t['ORG']:.4f}).\n")]
    if "seg" in result:
        seg = result["seg"]
        out += [f"## pd98-seg test split ({seg['test_sentences']} sentences): word-level F1\n",
                "| segmenter | test F1 | precision | recall | recipe |", "|---|---|---|---|---|"]
        for r in seg["models"]:
            out.append(f"| {r['model']} | {r['test_f1']:.4f} | {r['test_precision']:.4f} | {r['test_recall']:.4f} | {r['recipe']} "
                       f"(best epoch {r['best_epoch']}/{r['epochs_run']}, {r['train_seconds']:.0f} s) |")
        for r in seg["baselines"]:
            out.append(f"| {r['model']} | {r['test_f1']:.4f} | {r['test_precision']:.4f} | {r['test_recall']:.4f} | no training; "
                       "its dictionary follows other conventions than PKU's |")
        out.append("")
    if "speed" in result:
        s = result["speed"]
        out += ["## CRF speed: NLL forward+backward, then Viterbi, one batch\n",
                (f"Batch {s['batch']}, up to {s['max_steps']} steps (masked lengths), {s['tags']} tags, {s['dtype']}, "
                 f"mean of {s['repeats']} repeats.\n"), "| implementation | sequences/s | s/batch |", "|---|---|---|"]
        for name, rate in s["sequences_per_second"].items():
            out.append(f"| {name} | {rate:.0f} | {s['seconds_per_batch'][name]:.4f} |")
        out += ["", f"nlplab / pytorch-crf speed ratio: **{s['speedup']:.2f}x**\n"]
    out.append("## Provenance\n")
    for part, p in result["provenance"].items():
        mach = p["machine"]
        out.append(f"- {part}: `{p['command']}`; {mach['cpu']}, {mach['cores']} cores, torch {mach['torch']} "
                   f"({mach['torch_threads']} threads), load {mach['load_average'][0]:.1f}; {p['date']}; commit {p['commit']}; "
                   f"{p['wall_seconds']:.0f} s")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, of {', '.join(PARTS)}")
    parser.add_argument("--epochs", type=int, help="override the recipes' epochs")
    parser.add_argument("--runs", help="folder for the run directories (default: a temporary folder)")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    unknown = set(args.parts.split(",")) - set(PARTS)
    if unknown:
        parser.error(f"unknown part(s) {', '.join(sorted(unknown))}; choose from {', '.join(PARTS)}")
    torch.set_num_threads(1)
    out = Path(args.out)
    previous = out / "tagging.json"
    result = json.loads(previous.read_text(encoding="utf-8")) if previous.is_file() else {"provenance": {}}
    with tempfile.TemporaryDirectory() as tmp:
        runs = Path(args.runs or tmp)
        for part in args.parts.split(","):
            start = time.perf_counter()
            result[part] = part_speed() if part == "speed" else (part_ner if part == "ner" else part_seg)(args.epochs, runs / part)
            result["provenance"][part] = {"command": shlex.join(["python", *sys.argv]), "machine": machine(),
                                          "commit": git_commit(), "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                                          "wall_seconds": time.perf_counter() - start}
            write_result("tagging", result, markdown(result), out)
            print(f"{part} done", flush=True)
    print(markdown(result))


if __name__ == "__main__":
    main()
