"""Pre-training experiments of issue 18: the zh-pretrain corpus, word2vec, a recurrent LM (ULMFiT) and a masked-LM
encoder, then classifiers fine-tuned from them on ChnSentiCorp and EWECT, beside the TF-IDF baselines (dev figures).

    python benchmarks/pretrain_bench.py corpus                       # build zh-pretrain, report its size
    python benchmarks/pretrain_bench.py word2vec --algo skipgram     # word vectors of the jieba words
    python benchmarks/pretrain_bench.py baselines                    # TF-IDF + LinearSVC / LogisticRegression

Every step writes under --work (default runs/pretrain) and appends one JSON line per figure to
<work>/results.jsonl with its CPU seconds (process time, so other load on the machine does not count).
Run on one torch thread: OMP_NUM_THREADS=1 nice -n 10 python benchmarks/pretrain_bench.py ...
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from common import machine
from nlplab.data.corpora import held_out_texts, zh_pretrain_sources
from nlplab.data.overlap import deduplicate, overlapping
from nlplab.io import atomic_write_text
from nlplab.models.word2vec import Word2VecConfig, train_word2vec
from nlplab.train.config import TrainConfig
from nlplab.train.trainer import train

ROOT = Path(__file__).resolve().parents[1]
PROBES = ["酒店", "服务", "好", "失望", "开心", "手机", "北京", "电脑"]
ANALOGIES = [("北京", "中国", "东京"), ("男人", "女人", "国王"), ("好", "坏", "高兴")]


def record(work: Path, row: dict[str, Any]) -> None:
    """Append one result row (with the command and date) to <work>/results.jsonl and print it."""
    row = {"command": shlex.join(["python", *sys.argv]), "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
           "torch_threads": torch.get_num_threads(), **row}
    with open(work / "results.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(json.dumps(row, ensure_ascii=False), flush=True)


def corpus_file(work: Path) -> Path:
    return work / "zh-pretrain.txt"


def build_corpus(args: argparse.Namespace) -> None:
    """zh-pretrain, step by step: candidates per source, de-duplication, the overlap check; writes one line per document."""
    start = time.process_time()
    sources = zh_pretrain_sources()
    origin: dict[str, str] = {}
    for name, docs in sources.items():
        for doc in docs:
            origin.setdefault(doc, name)
    documents = deduplicate([doc for docs in sources.values() for doc in docs])
    drop = overlapping(documents, held_out_texts())
    kept = [doc for i, doc in enumerate(documents) if i not in drop]
    atomic_write_text(corpus_file(args.work), "".join(" ".join(doc.split()) + "\n" for doc in kept))

    def chars(docs: list[str]) -> Counter[str]:
        counts: Counter[str] = Counter()
        for doc in docs:
            counts[origin[doc]] += len(doc)
        return counts

    record(args.work, {"step": "corpus", "documents": len(kept), "characters": sum(map(len, kept)),
                       "candidates": {k: [len(v), sum(map(len, v))] for k, v in sources.items()},
                       "after_dedup": {"documents": len(documents), "characters": sum(map(len, documents))},
                       "dropped_overlap": {"documents": len(drop), "characters_by_source": chars([documents[i] for i in drop])},
                       "characters_by_source": chars(kept), "cpu_seconds": time.process_time() - start})


def corpus_words(work: Path) -> list[list[str]]:
    """The jieba words of every corpus document (cached in <work>/zh-pretrain.words.txt)."""
    cache = work / "zh-pretrain.words.txt"
    if not cache.is_file():
        import jieba

        jieba.setLogLevel(logging.WARNING)
        lines = corpus_file(work).read_text(encoding="utf-8").splitlines()
        atomic_write_text(cache, "".join(" ".join(w for w in jieba.lcut(line) if not w.isspace()) + "\n" for line in lines))
    return [line.split() for line in cache.read_text(encoding="utf-8").splitlines()]


def word2vec(args: argparse.Namespace) -> None:
    start = time.process_time()
    sentences = corpus_words(args.work)
    tokenize_seconds = time.process_time() - start
    cfg = Word2VecConfig(algo=args.algo, dim=args.dim, window=args.window, negative=args.negative, min_count=args.min_count,
                         sample=args.sample, lr=args.lr, epochs=args.epochs, batch_size=args.batch_size)
    model, history = train_word2vec(sentences, cfg)
    vectors = model.vectors()
    out = args.work / f"word2vec-{args.algo}-{args.dim}.txt"
    vectors.save(out)
    record(args.work, {"step": "word2vec", "config": vars(cfg), "vocab": len(vectors.words), "tokens": sum(map(len, sentences)),
                       "history": history, "vectors": str(out), "tokenize_cpu_seconds": tokenize_seconds,
                       "cpu_seconds": time.process_time() - start,
                       "neighbours": {w: vectors.most_similar(w, 5) for w in PROBES if w in vectors},
                       "analogies": {" : ".join(q): vectors.analogy(*q, k=3) for q in ANALOGIES if all(w in vectors for w in q)}})


def language_model(args: argparse.Namespace) -> None:
    """A recurrent LM on the corpus (forward) or on every document reversed (backward, same tokenizer as forward's)."""
    data = corpus_file(args.work)
    if args.direction == "backward":
        data = args.work / "zh-pretrain.reversed.txt"
        lines = corpus_file(args.work).read_text(encoding="utf-8").splitlines()
        atomic_write_text(data, "".join(line[::-1] + "\n" for line in lines))
    out = args.work / f"lm-{args.model}-{args.direction}"
    tokenizer = str(args.work / f"lm-{args.model}-forward" / "tokenizer") if args.direction == "backward" else "char"
    cfg = TrainConfig.from_dict({"task": "lm", "data": str(data), "model": args.model, "tokenizer": tokenizer,
                                 "vocab_size": None, "min_freq": args.min_freq, "window_size": args.window,
                                 "embed_dim": args.embed_dim, "hidden_size": args.hidden_size, "layers": 1,
                                 "dropout": args.dropout, "batch_size": args.batch_size, "lr": args.lr,
                                 "schedule": "cosine", "warmup_steps": 200, "epochs": args.epochs, "device": "cpu"})
    start = time.process_time()
    metrics = train(cfg, out, progress=False)
    record(args.work, {"step": "lm", "direction": args.direction, "run": str(out), "config": cfg.to_dict(),
                       "dev_ppl": metrics["dev"]["ppl"], "test_ppl": metrics["test"]["ppl"],
                       "vocab_size": metrics["vocab_size"], "cpu_seconds": time.process_time() - start})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "pretrain")
    steps = parser.add_subparsers(dest="step", required=True)
    steps.add_parser("corpus")
    w2v = steps.add_parser("word2vec")
    w2v.add_argument("--algo", default="skipgram")
    w2v.add_argument("--dim", type=int, default=128)
    w2v.add_argument("--window", type=int, default=5)
    w2v.add_argument("--negative", type=int, default=5)
    w2v.add_argument("--min-count", type=int, default=3)
    w2v.add_argument("--sample", type=float, default=1e-3)
    w2v.add_argument("--lr", type=float, default=0.025)
    w2v.add_argument("--epochs", type=int, default=5)
    w2v.add_argument("--batch-size", type=int, default=1024)
    lm = steps.add_parser("lm")
    lm.add_argument("--direction", choices=["forward", "backward"], default="forward")
    lm.add_argument("--model", default="lstm")
    lm.add_argument("--embed-dim", type=int, default=256)
    lm.add_argument("--hidden-size", type=int, default=512)
    lm.add_argument("--window", type=int, default=128)
    lm.add_argument("--min-freq", type=int, default=3)
    lm.add_argument("--dropout", type=float, default=0.1)
    lm.add_argument("--batch-size", type=int, default=32)
    lm.add_argument("--lr", type=float, default=2e-3)
    lm.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    args.work.mkdir(parents=True, exist_ok=True)
    {"corpus": build_corpus, "word2vec": word2vec, "lm": language_model}[args.step](args)


if __name__ == "__main__":
    main()
