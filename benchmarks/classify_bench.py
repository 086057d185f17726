"""Accuracy benchmark of text classification: nlplab's neural classifiers beside a TF-IDF baseline.

    python benchmarks/classify_bench.py --data chnsenticorp|ewect [--models bow,textcnn,lstm] [--epochs N] [--out DIR]

Each model trains with the recipe `configs/<data>-<model>.yaml` when it exists, else `configs/<data>.yaml`
with `model` set to it (else nlplab's defaults); `--epochs` overrides the recipe. The baselines are
TF-IDF of character 1-3-grams fed to LinearSVC (and, for EWECT, LogisticRegression), fit on train and
scored on dev. Writes `<out>/<data>.json` (command, machine, figures) and `<out>/<data>.md` (a table).
The data sets' test split is their dev split (the real test is held out), so every figure here is dev.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sklearn.base import ClassifierMixin
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.svm import LinearSVC

from common import footer, machine
from nlplab.data.registry import TextDataset, load_dataset
from nlplab.train.config import TrainConfig, read_yaml
from nlplab.train.trainer import train

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
BASELINES: dict[str, list[tuple[str, ClassifierMixin]]] = {
    "chnsenticorp": [("tfidf-char1-3+LinearSVC", LinearSVC())],
    "ewect": [("tfidf-char1-3+LogisticRegression", LogisticRegression(max_iter=1000)),
              ("tfidf-char1-3+LinearSVC", LinearSVC())],
}


def recipe(data: str, model: str, epochs: int | None) -> tuple[TrainConfig, str]:
    """The TrainConfig of `model` on `data` and where it came from (see the module docstring)."""
    own, shared = CONFIGS / f"{data}-{model}.yaml", CONFIGS / f"{data}.yaml"
    if own.is_file():
        values, source = read_yaml(own), str(own.relative_to(ROOT))
    elif shared.is_file():
        values, source = read_yaml(shared), f"{shared.relative_to(ROOT)} with model={model}"
    else:
        values, source = {}, "nlplab defaults"
    values = {k.replace("-", "_"): v for k, v in values.items()}
    values.update({"data": data, "model": model})
    if epochs is not None:
        values["epochs"] = epochs
        source += f", epochs={epochs}"
    return TrainConfig.from_dict(values, source=source), source


def run_model(data: str, model: str, epochs: int | None, runs: Path) -> dict[str, Any]:
    """Train one model into `runs/<model>` and return its dev figures and timings."""
    cfg, source = recipe(data, model, epochs)
    start = time.perf_counter()
    metrics = train(cfg, runs / model, progress=False)
    wall = time.perf_counter() - start
    history = [json.loads(line) for line in (runs / model / "history.jsonl").read_text().splitlines()]
    samples = sum(h["samples_per_second"] * h["seconds"] for h in history)
    return {"model": model, "recipe": source, "config": cfg.to_dict(),
            "dev_accuracy": metrics["dev"]["accuracy"], "dev_macro_f1": metrics["dev"]["macro_f1"],
            "best_epoch": metrics["best_epoch"], "epochs_run": metrics["epochs_run"],
            "train_seconds": metrics["train_seconds"], "wall_seconds": wall,
            "samples_per_second": samples / metrics["train_seconds"]}


def run_baseline(name: str, classifier: ClassifierMixin, data: TextDataset) -> dict[str, Any]:
    """Fit TF-IDF (char 1-3-grams, sublinear tf) + `classifier` on train, score on dev, timed."""
    start = time.perf_counter()
    vectorizer = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True)
    features = vectorizer.fit_transform([text for text, _ in data.train])
    classifier.fit(features, [label for _, label in data.train])
    seconds = time.perf_counter() - start
    predicted = classifier.predict(vectorizer.transform([text for text, _ in data.dev]))
    gold = [label for _, label in data.dev]
    return {"model": name, "recipe": f"TfidfVectorizer(analyzer='char', ngram_range=(1, 3), sublinear_tf=True) + {classifier!r}",
            "features": features.shape[1], "dev_accuracy": accuracy_score(gold, predicted),
            "dev_macro_f1": f1_score(gold, predicted, average="macro"), "train_seconds": seconds,
            "samples_per_second": len(data.train) / seconds}


def markdown(result: dict[str, Any]) -> str:
    """The results as a Markdown table, with the command and machine under it."""
    rows = ["| model | dev accuracy | dev macro-F1 | best epoch | train time (s) | samples/s | recipe |",
            "|---|---|---|---|---|---|---|"]
    for r in result["models"] + result["baselines"]:
        epoch = f"{r['best_epoch']}/{r['epochs_run']}" if "best_epoch" in r else "–"
        rows.append(f"| {r['model']} | {r['dev_accuracy']:.4f} | {r['dev_macro_f1']:.4f} | {epoch} | "
                    f"{r['train_seconds']:.1f} | {r['samples_per_second']:.0f} | {r['recipe']} |")
    return (f"# {result['data']}: dev figures\n\n" + "\n".join(rows) + "\n\n"
            "The test split of this data set is its dev split (the real test split is held out elsewhere).\n\n"
            + footer(result))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, choices=sorted(BASELINES))
    parser.add_argument("--models", default="bow,textcnn,gru,lstm", help="comma-separated nlplab models")
    parser.add_argument("--epochs", type=int, help="override the recipes' epochs")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"), help="folder for <data>.json and .md")
    parser.add_argument("--runs", help="folder for the run directories (default: a temporary folder)")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    dataset = load_dataset(args.data)
    with tempfile.TemporaryDirectory() as tmp:
        runs = Path(args.runs or tmp)
        models = []
        for model in args.models.split(","):
            models.append(run_model(args.data, model, args.epochs, runs))
            print(json.dumps(models[-1]), flush=True)
    baselines = []
    for name, classifier in BASELINES[args.data]:
        baselines.append(run_baseline(name, classifier, dataset))
        print(json.dumps(baselines[-1]), flush=True)
    result = {"data": args.data, "command": shlex.join(["python", *sys.argv]), "machine": machine(),
              "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "wall_seconds": time.perf_counter() - start, "models": models, "baselines": baselines}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.data}.json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (out / f"{args.data}.md").write_text(markdown(result), encoding="utf-8")
    print(markdown(result))


if __name__ == "__main__":
    main()
