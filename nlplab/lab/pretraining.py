"""Lab `pretraining`: pre-trained word vectors help a classifier most when labelled examples are few.

Pre-training: word2vec (skip-gram, `nlplab train --task word2vec`) on unlabelled text: the zh-pretrain corpus
(`--quick`: the texts of ChnSentiCorp's training split, labels dropped, one epoch). Fine-tuning: the bag-of-words
classifier over jieba words (`nlplab train --task classify --model bow`), trained on the first n reviews of
ChnSentiCorp's training split shuffled with a fixed seed, for n in SIZES (`--quick`: QUICK_SIZES), from random
embeddings and from the word vectors (`--init-from` the word2vec run), scored on the dev split. Every run is
`nlplab.train.train` on one thread; the runs live in a temporary folder.
"""

from __future__ import annotations

import random
import tempfile
from pathlib import Path
from typing import Any

from nlplab.data.registry import load_dataset
from nlplab.io import atomic_write_text
from nlplab.lab.base import Lab, LabContext, LabResult
from nlplab.train.config import TrainConfig
from nlplab.train.trainer import train

SIZES, QUICK_SIZES = (200, 1000, 5000, None), (200, 3000)
"""Labelled training examples per run; None: the whole training split."""


def word2vec_recipe(corpus: str, quick: bool, seed: int) -> TrainConfig:
    return TrainConfig.from_dict({
        "task": "word2vec", "data": corpus, "model": "skipgram", "tokenizer": "word", "min_freq": 3, "vocab_size": None,
        "embed_dim": 64 if quick else 128, "w2v_window": 3 if quick else 5, "negatives": 5, "subsample": 1e-3,
        "optimizer": "sgd", "lr": 0.025, "schedule": "linear", "batch_size": 1024, "epochs": 1 if quick else 5,
        "seed": seed, "device": "cpu", "threads": 1})


def classifier_recipe(train_file: Path, dev_file: Path, init_from: Path | None, quick: bool, seed: int) -> TrainConfig:
    return TrainConfig.from_dict({
        "task": "classify", "data": str(train_file), "dev": str(dev_file), "model": "bow", "tokenizer": "word",
        "min_freq": 1, "embed_dim": 64 if quick else 128, "hidden_size": 128, "dropout": 0.3, "optimizer": "adam",
        "lr": 0.002, "batch_size": 32, "epochs": 6 if quick else 8, "metric": "accuracy", "seed": seed,
        "device": "cpu", "threads": 1, "init_from": None if init_from is None else str(init_from)})


def write_tsv(path: Path, rows: list[tuple[str, str]]) -> Path:
    atomic_write_text(path, "label\ttext\n" + "".join(f"{label}\t{' '.join(text.split())}\n" for text, label in rows))
    return path


def run(ctx: LabContext) -> LabResult:
    import matplotlib.pyplot as plt

    data = load_dataset("chnsenticorp")
    reviews = list(data.train)
    random.Random(ctx.seed).shuffle(reviews)
    sizes = [n or len(reviews) for n in (QUICK_SIZES if ctx.quick else SIZES)]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="nlplab-lab-pretraining-") as tmp:
        work = Path(tmp)
        corpus = "zh-pretrain"
        if ctx.quick:
            corpus = str(work / "corpus.txt")
            atomic_write_text(Path(corpus), "".join(" ".join(text.split()) + "\n" for text, _ in data.train))
        vectors = work / "word2vec"
        pretraining = train(word2vec_recipe(corpus, ctx.quick, ctx.seed), vectors, progress=False)
        dev = write_tsv(work / "dev.tsv", data.dev)
        for n in ctx.bar(sizes, desc="labelled examples"):
            subset = write_tsv(work / f"train-{n}.tsv", reviews[:n])
            figures = {}
            for route, init in (("from scratch", None), ("+ word2vec", vectors)):
                run_dir = work / f"{route}-{n}"
                metrics = train(classifier_recipe(subset, dev, init, ctx.quick, ctx.seed), run_dir, progress=False)
                figures[route] = metrics["dev"]["accuracy"]
            rows.append({"labelled examples": n, "from scratch": figures["from scratch"],
                         "+ word2vec": figures["+ word2vec"], "gain": figures["+ word2vec"] - figures["from scratch"]})

    fig, ax = plt.subplots(figsize=(6, 4))
    for route in ("from scratch", "+ word2vec"):
        ax.plot([r["labelled examples"] for r in rows], [r[route] for r in rows], marker="o", label=route)
    ax.set_xscale("log")
    ax.set_xlabel("labelled training examples")
    ax.set_ylabel("ChnSentiCorp dev accuracy")
    ax.set_title("bag of words, with and without pre-trained word vectors")
    ax.legend()
    ctx.save_plot(fig, "accuracy")

    few, most = rows[0], rows[-1]
    holds = few["gain"] > 0 and few["gain"] > most["gain"]
    summary = (f"word vectors from {pretraining['train_tokens']:,} unlabelled words add {few['gain']:+.3f} dev accuracy "
               f"with {few['labelled examples']:,} labelled reviews ({few['from scratch']:.3f} -> {few['+ word2vec']:.3f}) "
               f"and {most['gain']:+.3f} with {most['labelled examples']:,} ({most['from scratch']:.3f} -> "
               f"{most['+ word2vec']:.3f})")
    return LabResult(rows, summary, holds, {"corpus": corpus if not ctx.quick else "chnsenticorp train texts",
                                            "word2vec": {k: pretraining[k] for k in ("vocab_size", "train_tokens", "dev")}})


LAB = Lab("pretraining", "Pre-training matters most when labels are few: word vectors learned from unlabelled text "
          "raise a bag-of-words classifier's accuracy more with a few hundred labelled reviews than with thousands.", run)
