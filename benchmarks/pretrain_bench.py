"""Pre-training experiments of issue 18: the zh-pretrain corpus, word2vec, a recurrent LM (ULMFiT) and a masked-LM
encoder, then classifiers fine-tuned from them on ChnSentiCorp and EWECT, beside the TF-IDF baselines (dev figures).

    python benchmarks/pretrain_bench.py corpus                       # build zh-pretrain, report its size
    python benchmarks/pretrain_bench.py word2vec --algo skipgram     # word vectors of the jieba words
    python benchmarks/pretrain_bench.py baselines                    # TF-IDF + LinearSVC / LogisticRegression
    python benchmarks/pretrain_bench.py recipe configs/pretrain-mlm.yaml        # a committed recipe into runs/NAME
    python benchmarks/pretrain_bench.py recipe configs/chnsenticorp-mlm.yaml    # ... its fine-tuning (init_from runs/...)
    python benchmarks/pretrain_bench.py report --routes LABEL=RUN[:PRETRAINING+...] ...

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
import yaml
from common import machine, write_result

from nlplab.data.corpora import held_out_texts, zh_pretrain_sources
from nlplab.data.overlap import deduplicate, overlapping
from nlplab.data.registry import load_dataset
from nlplab.io import atomic_write_text
from nlplab.models.word2vec import Word2VecConfig, train_word2vec
from nlplab.models.word_vectors import WordVectors
from nlplab.train.config import TrainConfig, flatten, read_yaml
from nlplab.train.trainer import train

ROOT = Path(__file__).resolve().parents[1]
PROBES = ["酒店", "服务", "好", "失望", "开心", "手机", "北京", "电脑"]
MLM_SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
ANALOGIES = [("北京", "中国", "东京"), ("男人", "女人", "国王"), ("好", "坏", "高兴")]


def record(work: Path, row: dict[str, Any]) -> None:
    """Append one result row (with the command and date) to <work>/results.jsonl and print it."""
    row = {"command": shlex.join(["python", *sys.argv]), "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
           "machine": machine(), **row}
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


def gensim_word2vec(args: argparse.Namespace) -> None:
    """gensim's Word2Vec on the same words with the same settings, one worker thread, beside nlplab's vectors: CPU
    time and how much the two agree on the 10 nearest neighbours of the 1,000 most frequent words."""
    from gensim.models import Word2Vec as GensimWord2Vec

    sentences = corpus_words(args.work)
    ours = WordVectors.load(args.work / f"word2vec-{args.algo}-{args.dim}.txt")
    start = time.process_time()
    model = GensimWord2Vec(sentences, vector_size=args.dim, window=args.window, negative=args.negative, min_count=args.min_count,
                           sample=args.sample, alpha=args.lr, epochs=args.epochs, sg=int(args.algo == "skipgram"), workers=1, seed=0)
    seconds = time.process_time() - start
    theirs = WordVectors(list(model.wv.index_to_key), torch.from_numpy(model.wv.vectors.copy()))
    probes = [w for w in ours.words[:1000] if w in theirs]
    overlap = [len({w for w, _ in ours.most_similar(p, 10)} & {w for w, _ in theirs.most_similar(p, 10)}) / 10 for p in probes]
    record(args.work, {"step": "word2vec-gensim", "algo": args.algo, "gensim_cpu_seconds": seconds, "vocab": len(theirs.words),
                       "neighbour_overlap_top10": sum(overlap) / len(overlap), "probes": len(probes),
                       "neighbours": {w: theirs.most_similar(w, 5) for w in PROBES if w in theirs}})


def overrides(pairs: list[str]) -> dict[str, Any]:
    """--set KEY=VALUE pairs (YAML values) over the benchmark's own settings: the CPU, one thread."""
    return {"device": "cpu", "threads": 1, **{k: yaml.safe_load(v) for k, v in (kv.split("=", 1) for kv in pairs)}}


def train_recorded(work: Path, cfg: TrainConfig, out: Path, row: dict[str, Any]) -> None:
    """Train `cfg` into `out` and record `row` with the run's figures (dev accuracy and macro-F1 of a classifier, dev
    loss and perplexity of a pre-training task), its epochs and its CPU seconds."""
    start = time.process_time()
    metrics = train(cfg, out, overwrite=True, progress=False)
    dev = metrics["dev"]
    figures = ({"dev_accuracy": dev["accuracy"], "dev_macro_f1": dev["macro_f1"]} if cfg.task == "classify"
               else {"dev_loss": dev["loss"], "dev_ppl": dev.get("ppl")})
    record(work, {"step": "classify" if cfg.task == "classify" else "pretrain", **row, "data": cfg.data,
                  "init_note": metrics.get("init", "random"), "config": cfg.to_dict(), **figures,
                  "best_epoch": metrics["best_epoch"], "epochs_run": metrics["epochs_run"],
                  "budget_spent": metrics["budget_spent"], "cpu_seconds": time.process_time() - start})


def recipe(args: argparse.Namespace) -> None:
    """Train a committed recipe (configs/NAME.yaml, with --set overrides) through nlplab train into runs/NAME (the
    README's convention, so fine-tuning recipes find their pre-training run), and record its figures and CPU time."""
    values = {**flatten(read_yaml(args.config), str(args.config)), **overrides(args.set)}
    name = args.name or args.config.stem
    out = ROOT / "runs" / name
    train_recorded(args.work, TrainConfig.from_dict(values, source=str(args.config)), out,
                   {"name": name, "recipe": str(args.config), "run": str(out)})


def classify(args: argparse.Namespace) -> None:
    """Fine-tune a classifier on --data from configs/<data>.yaml with --set overrides, through nlplab train: --init
    RUN[,RUN] is its init_from (a word2vec, lm or mlm run), --discriminative and --unfreeze its ULMFiT options."""
    path = ROOT / "configs" / f"{args.data}.yaml"
    values = {**flatten(read_yaml(path), str(path)), **overrides(args.set),
              "discriminative_lr": args.discriminative, "gradual_unfreeze": args.unfreeze}
    if args.init != "none":
        values["init_from"] = args.init
    train_recorded(args.work, TrainConfig.from_dict(values, source=str(path)), args.work / "classify" / args.name,
                   {"name": args.name, "init": args.init, "discriminative": args.discriminative, "unfreeze": args.unfreeze})


def baselines(args: argparse.Namespace) -> None:
    """TF-IDF of character 1-3-grams + LinearSVC / LogisticRegression, fit on train, scored on dev (the issue's
    reference figures on the held-out tests are 0.927 accuracy and 0.703 macro-F1)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.svm import LinearSVC

    for data in ("chnsenticorp", "ewect"):
        dataset = load_dataset(data)
        for name, classifier in (("LinearSVC", LinearSVC()), ("LogisticRegression", LogisticRegression(max_iter=1000))):
            start = time.process_time()
            vectorizer = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True)
            classifier.fit(vectorizer.fit_transform([t for t, _ in dataset.train]), [y for _, y in dataset.train])
            predicted = classifier.predict(vectorizer.transform([t for t, _ in dataset.dev]))
            gold = [y for _, y in dataset.dev]
            record(args.work, {"step": "baseline", "name": f"tfidf-char1-3+{name}", "data": data,
                               "dev_accuracy": accuracy_score(gold, predicted),
                               "dev_macro_f1": f1_score(gold, predicted, average="macro"),
                               "cpu_seconds": time.process_time() - start})


def latest(rows: list[dict[str, Any]], **match: Any) -> dict[str, Any] | None:
    """The last row of results.jsonl with these values, or None."""
    found = [r for r in rows if all(r.get(k) == v for k, v in match.items())]
    return found[-1] if found else None


def pre_training_minutes(steps: list[dict[str, Any] | None]) -> str:
    """The table's pre-training cell: CPU minutes, or wall-clock minutes (marked) where a step recorded no CPU time."""
    if any(step is None for step in steps):
        return "?"
    if all(step.get("cpu_seconds") is not None for step in steps):
        return f"{sum(step['cpu_seconds'] for step in steps) / 60:.1f}"
    return f"{sum(step['wall_seconds'] for step in steps) / 60:.0f} wall"


def report(args: argparse.Namespace) -> None:
    """benchmarks/results/pretrain.json and .md from <work>/results.jsonl: the corpus, the pre-trained models and a
    table of routes (rows named by --routes NAME=RUN_NAME_WITHOUT_DATA, pre-training steps after a colon)."""
    rows = [json.loads(line) for line in (args.work / "results.jsonl").read_text(encoding="utf-8").splitlines()]
    corpus = latest(rows, step="corpus")
    pretraining = {"word2vec": latest(rows, step="word2vec"), "word2vec-gensim": latest(rows, step="word2vec-gensim"),
                   "lm-forward": latest(rows, step="lm", direction="forward"),
                   "lm-backward": latest(rows, step="lm", direction="backward"),
                   **{r["name"]: latest(rows, step="pretrain", name=r["name"]) for r in rows if r["step"] == "pretrain"}}
    table = []
    for spec in args.routes:
        label, _, rest = spec.partition("=")
        run, _, needs = rest.partition(":")
        steps = [pretraining[n] for n in needs.split("+") if n]
        pre = pre_training_minutes(steps)
        cells = {}
        for data in ("chnsenticorp", "ewect"):
            row = latest(rows, step="baseline", name=run, data=data) or latest(rows, step="classify", name=f"{data}-{run}")
            if row is not None:
                cells[data] = {k: row[k] for k in ("dev_accuracy", "dev_macro_f1", "cpu_seconds")}
                cells[data]["config"] = row.get("config")
        table.append({"route": label, "run": run, "pretraining_minutes": pre, **cells})
    lines = ["| route | pre-training CPU min | ChnSentiCorp dev accuracy | fine-tune CPU min | EWECT dev macro-F1 (accuracy) | fine-tune CPU min |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in table:
        c, e = r.get("chnsenticorp"), r.get("ewect")
        lines.append(f"| {r['route']} | {r['pretraining_minutes']} | "
                     + (f"{c['dev_accuracy']:.4f} | {c['cpu_seconds'] / 60:.1f}" if c else "– | –") + " | "
                     + (f"{e['dev_macro_f1']:.4f} ({e['dev_accuracy']:.4f}) | {e['cpu_seconds'] / 60:.1f}" if e else "– | –") + " |")
    w2v = pretraining["word2vec"]
    markdown = (f"# Pre-training, then fine-tuning (issue 18): dev figures\n\n"
                f"Corpus `zh-pretrain`: {corpus['documents']:,} documents, {corpus['characters']:,} characters "
                f"(after de-duplication {corpus['after_dedup']['characters']:,}; "
                f"{corpus['dropped_overlap']['documents']:,} documents dropped for overlapping a dev/test text).\n\n"
                + "\n".join(lines) + "\n\nTargets (dev, as the signal of the held-out tests): ChnSentiCorp accuracy >= 0.93, "
                "EWECT macro-F1 >= 0.72. CPU minutes are process time on one thread (other load does not count).\n\n"
                + (f"word2vec ({w2v['config']['algo']}, {w2v['vocab']:,} words, {w2v['tokens']:,} tokens, "
                   f"{w2v['cpu_seconds'] / 60:.1f} CPU min): nearest neighbours "
                   + "; ".join(f"{w}: {', '.join(n for n, _ in v[:5])}" for w, v in w2v["neighbours"].items()) + "\n"
                   if w2v else "")
                + "\nCommands: `python benchmarks/pretrain_bench.py STEP ...`, each row's command in pretrain.json. "
                "\"wall\": a step that recorded only the loop's wall-clock seconds.\n")
    payload = {"command": shlex.join(["python", *sys.argv]), "machine": machine(), "corpus": corpus,
               "pretraining": pretraining, "routes": table,
               "runs": [r for r in rows if r["step"] in ("classify", "baseline")]}
    write_result("pretrain", payload, markdown)
    print(markdown)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "pretrain")
    steps = parser.add_subparsers(dest="step", required=True)
    steps.add_parser("corpus")
    steps.add_parser("baselines")
    rep = steps.add_parser("report")
    rep.add_argument("--routes", nargs="+", required=True, help="LABEL=RUN[:PRETRAINING+...], e.g. '+ word2vec=bow-w2v:word2vec'")
    w2v_options = argparse.ArgumentParser(add_help=False)
    w2v_options.add_argument("--algo", default="skipgram")
    w2v_options.add_argument("--dim", type=int, default=128)
    w2v_options.add_argument("--window", type=int, default=5)
    w2v_options.add_argument("--negative", type=int, default=5)
    w2v_options.add_argument("--min-count", type=int, default=3)
    w2v_options.add_argument("--sample", type=float, default=1e-3)
    w2v_options.add_argument("--lr", type=float, default=0.025)
    w2v_options.add_argument("--epochs", type=int, default=5)
    w2v_options.add_argument("--batch-size", type=int, default=1024)
    steps.add_parser("word2vec", parents=[w2v_options])
    steps.add_parser("word2vec-gensim", parents=[w2v_options])
    rec = steps.add_parser("recipe")
    rec.add_argument("config", type=Path, help="a recipe, e.g. configs/pretrain-mlm.yaml")
    rec.add_argument("--name", help="run folder under runs/ and the name in results.jsonl (default: the recipe's stem)")
    rec.add_argument("--set", nargs="*", default=[], help="recipe overrides KEY=VALUE (YAML values)")
    cls = steps.add_parser("classify")
    cls.add_argument("--data", required=True, choices=["chnsenticorp", "ewect"])
    cls.add_argument("--name", required=True, help="run folder under <work>/classify")
    cls.add_argument("--init", default="none", help="none | a word2vec, lm or mlm run | FORWARD_LM_RUN,BACKWARD_LM_RUN")
    cls.add_argument("--set", nargs="*", default=[], help="recipe overrides KEY=VALUE (YAML values)")
    cls.add_argument("--discriminative", type=float, help="discriminative learning rates: factor per layer (2.6)")
    cls.add_argument("--unfreeze", action="store_true", help="gradual unfreezing, one more layer group per epoch")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    args.work.mkdir(parents=True, exist_ok=True)
    steps_run = {"corpus": build_corpus, "baselines": baselines, "word2vec": word2vec, "word2vec-gensim": gensim_word2vec,
                 "recipe": recipe, "classify": classify, "report": report}
    steps_run[args.step](args)


if __name__ == "__main__":
    main()
