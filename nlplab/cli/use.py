"""Using a model: `nlplab eval`, `predict`, `embed`, `generate`, `score`, `chat` and `match`, each over the
Predictor of `nlplab.runs.load_run`. This module does all their printing."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from nlplab.cli.args import add_compile, add_device, leaf
from nlplab.errors import ConfigError

JSON_FIGURES = {
    "classify": ("accuracy", "macro_f1", "macro_precision", "macro_recall", "roc_auc", "loss"),
    "tag": ("f1", "precision", "recall", "accuracy", "loss"),
    "match": ("loss", "accuracy", "f1", "precision", "recall", "spearman", "threshold"),
    "lm": ("loss", "ppl", "bits_per_char", "tokens"),
    "reward": ("accuracy", "margin", "loss"),
}
"""The figures on the last line of `nlplab eval`, per task."""


def print_report(task: str, rep: dict[str, Any]) -> None:
    """The human-readable part of `nlplab eval` for each task."""
    if task == "classify":
        print(f"data: {rep['data']}  examples: {rep['examples']}")
        print(f"{'label':<12}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}")
        for label, row in rep["per_class"].items():
            print(f"{label:<12}{row['precision']:>10.4f}{row['recall']:>10.4f}{row['f1']:>10.4f}{row['support']:>10}")
        print("confusion matrix (rows = true):", rep["confusion_matrix"])
    elif task == "tag":
        print(f"data: {rep['data']}  sentences: {rep['examples']}  scheme: {rep['scheme']}")
        print(f"{'type':<12}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}")
        for kind, row in [*rep["per_type"].items(), ("micro", rep)]:
            print(f"{kind:<12}{row['precision']:>10.4f}{row['recall']:>10.4f}{row['f1']:>10.4f}{row['support']:>10}")
        print(f"token accuracy {rep['accuracy']:.4f}")
    elif task == "match":
        print(f"data: {rep['data']}  pairs: {rep['examples']}  model: {rep['model']} ({rep['loss_name']})  "
              f"threshold: {rep['threshold']:.4f}")
        print("  ".join(f"{k} {rep[k]:.4f}" for k in ("accuracy", "precision", "recall", "f1", "spearman", "loss")))
    elif task == "reward":
        print(f"data: {rep['data']}  pairs: {rep['examples']}")
        print(f"accuracy {rep['accuracy']:.4f} (chosen scored above rejected)  margin {rep['margin']:.4f}  loss {rep['loss']:.4f}")
    else:
        print(f"data: {rep['data']}  documents: {rep['examples']}  tokens: {rep['tokens']}")
        print(f"perplexity {rep['ppl']:.3f}  bits per character {rep['bits_per_char']:.4f}  loss {rep['loss']:.4f} nats/token")


def warn_skipped(skipped: int, data: str) -> None:
    """The warning for preference pairs left out because their chosen and rejected answers were equal."""
    if skipped:
        print(f"nlplab: warning: {skipped} preference pair(s) of {data} skipped: the chosen answer equals the rejected "
              "one", file=sys.stderr)


def cmd_eval(args: argparse.Namespace) -> None:
    from nlplab.runs import load_run

    predictor = load_run(args.run, args.device)
    rep = predictor.evaluate(args.data)
    warn_skipped(rep.get("skipped_pairs", 0), rep["data"])
    print_report(predictor.task, rep)
    print(json.dumps({k: rep[k] for k in JSON_FIGURES[predictor.task] if k in rep}))


def describe(record: dict[str, Any]) -> str:
    """One line of `nlplab predict` for a record: label<TAB>probability<TAB>text; text<TAB>entities (as
    text/TYPE[start:end)), words or word/TAG; label<TAB>score<TAB>s1<TAB>s2; reward<TAB>prompt<TAB>response."""
    if "reward" in record:
        return f"{record['reward']:.4f}\t{record['prompt']}\t{record['response']}"
    if "probability" in record:
        return f"{record['label']}\t{record['probability']:.4f}\t{record['text']}"
    if "text_a" in record:
        return f"{record['label']}\t{record['score']:.4f}\t{record['text_a']}\t{record['text_b']}"
    if "entities" in record:
        found = [f"{e['text']}/{e['type']}[{e['start']}:{e['end']})" for e in record["entities"]]
        return f"{record['text']}\t" + ("  ".join(found) if found else "(no entities)")
    return f"{record['text']}\t" + " ".join(w["word"] + (f"/{w['tag']}" if "tag" in w else "") for w in record["words"])


def cmd_predict(args: argparse.Namespace) -> None:
    from nlplab.data import read_lines
    from nlplab.runs import load_run

    texts = list(args.texts) + ([line for line in read_lines(args.input) if line.strip()] if args.input else [])
    if not texts:
        raise ConfigError("nothing to predict: give texts as arguments or --input FILE")
    predictor = load_run(args.run, args.device)
    records = predictor.predict(texts)
    cut = sum(r.get("truncated", False) for r in records)
    if cut:
        window = getattr(getattr(predictor, "cfg", None), "window_size", "?")
        print(f"nlplab: warning: {cut} of {len(records)} inputs were longer than the model's window of {window} tokens "
              "and were cut (marked \"truncated\": true with --json)", file=sys.stderr)
    for record in records:
        print(describe(record))
    if args.json:
        print(json.dumps(records, ensure_ascii=False))


def cmd_embed(args: argparse.Namespace) -> None:
    import numpy as np

    from nlplab.data import read_lines
    from nlplab.io import atomic_write
    from nlplab.runs import load_run

    texts = [line for line in read_lines(args.input) if line.strip()]
    vectors = load_run(args.model, args.device).embed(texts, args.batch_size)

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.save(f, vectors.numpy())

    atomic_write(args.out, write)
    print(f"{len(texts)} sentence embeddings of size {vectors.shape[1]} written to {args.out}")


def prompt_ids(args: argparse.Namespace, encode: Callable[[str], list[int]]) -> list[int]:
    if (args.prompt is None) == (args.prompt_ids is None):
        raise ConfigError("give exactly one of --prompt TEXT or --prompt-ids 1,2,3")
    if args.prompt is not None:
        return encode(args.prompt)
    try:
        return [int(v) for v in args.prompt_ids.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"--prompt-ids must be comma-separated integers, got {args.prompt_ids!r}") from None


def cmd_generate(args: argparse.Namespace) -> None:
    from nlplab.runs import load_run

    predictor = load_run(args.model, args.device)
    if args.compile:
        predictor.compile()
    lm = causal_lm(predictor, "generate text")
    ids = prompt_ids(args, lm.encode)
    options = {"strategy": args.strategy, "max_new_tokens": args.max_new_tokens, "num_beams": args.beams,
               "length_penalty": args.length_penalty, "temperature": args.temperature, "top_k": args.top_k,
               "top_p": args.top_p, "repetition_penalty": args.repetition_penalty, "num_return": args.num_return,
               "seed": args.seed, "stop": args.stop}
    if args.strategy != "beam" and args.num_return == 1 and not args.json and lm.has_tokenizer:
        printed = ""
        for _, text in predictor.stream(ids, **{k: options[k] for k in ("strategy", "max_new_tokens", "temperature", "top_k",
                                                                       "top_p", "repetition_penalty", "seed", "stop")}):
            if text.startswith(printed):
                print(text[len(printed):], end="", flush=True)
            printed = text
        print()
        return
    results = predictor.generate(ids, **options)
    for k, r in enumerate(results, start=1):
        print(f"[{k}] score {r.score:.4f}\t" + (r.text if r.text is not None else " ".join(map(str, r.ids))))
    if args.json:
        print(json.dumps({"ids": [r.ids for r in results], "texts": [r.text for r in results],
                          "scores": [r.score for r in results]}, ensure_ascii=False))


def causal_lm(predictor: Any, what: str) -> Any:
    """The CausalLM behind a generating predictor, or the predictor's own message of what it can do."""
    lm = getattr(predictor, "lm", None)
    if lm is None:
        predictor.cannot(what)
    return lm


def cmd_score(args: argparse.Namespace) -> None:
    from nlplab.runs import load_run

    rows = load_run(args.run, args.device).score(args.texts)
    print(f"{'rank':<6}{'log p':>12}{'perplexity':>14}  sentence")
    for rank, row in enumerate(rows, start=1):
        print(f"{rank:<6}{row['logprob']:>12.3f}{row['ppl']:>14.3f}  {row['text']}")
    if args.json:
        print(json.dumps(rows, ensure_ascii=False))


def cmd_chat(args: argparse.Namespace) -> None:
    from nlplab.generate.chat import Chat
    from nlplab.runs import load_run

    predictor = load_run(args.model, args.device)
    if args.compile:
        predictor.compile()
    lm = causal_lm(predictor, "chat")
    chat = Chat(lm, max_length=args.max_length, max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                top_p=args.top_p, seed=args.seed, system=args.system, stop=args.stop)
    print("nlplab chat — empty line or Ctrl-D to quit, /clear to forget the history", file=sys.stderr)
    for line in sys.stdin if not sys.stdin.isatty() else iter(lambda: input("你: "), None):
        query = line.strip()
        if not query:
            break
        if query == "/clear":
            chat.clear()
            continue
        print("模型: ", end="", flush=True)
        for piece in chat.stream(query):
            print(piece, end="", flush=True)
        print(flush=True)


def cmd_match(args: argparse.Namespace) -> None:
    from nlplab.runs import load_run

    results = load_run(args.run, args.device).search(args.query, args.corpus, args.top_k)
    for query, hits in zip(args.query, results):
        print(f"query: {query}")
        for rank, (line, score) in enumerate(hits, start=1):
            print(f"{rank}\t{score:.4f}\t{line}")
    print(json.dumps([{"query": q, "hits": [{"text": line, "score": s} for line, s in hits]}
                      for q, hits in zip(args.query, results)], ensure_ascii=False))


def add_parsers(sub: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], None]]:
    p = leaf(sub, "eval", "evaluate a run; the last line is a JSON object of metrics")
    p.add_argument("run", help="a run directory (the --out of `nlplab train`)")
    p.add_argument("--data", help="a file in the run's task format, or a named data set (default: the test split of the "
                                  "run's data set)")
    add_device(p)

    p = leaf(sub, "predict", "the model's output for each text: label and probability, entities, words, match and score, "
                             "or reward")
    p.add_argument("run", help="a run directory")
    p.add_argument("texts", nargs="*", help="texts to predict (matching runs: sentence1<TAB>sentence2; reward runs: "
                                            "prompt<TAB>response)")
    p.add_argument("--input", help="file with one text per line (blank lines skipped)")
    p.add_argument("--json", action="store_true", help="also print the records as one JSON list on the last line")
    add_device(p)

    p = leaf(sub, "embed", "one sentence embedding per input line, saved as a NumPy .npy file")
    p.add_argument("model", help="an nlplab run (classify, or match with a bi-encoder), a Hugging Face BERT folder, "
                                 "or all-MiniLM-L6-v2")
    p.add_argument("--input", required=True, help="text file, one sentence per line (blank lines skipped)")
    p.add_argument("--out", required=True, help="output .npy file, shape (lines, dim)")
    p.add_argument("--batch-size", type=int, default=64, help="sentences per forward pass (default: 64)")
    add_device(p)

    p = leaf(sub, "generate", "continue a prompt with a language model (nlplab run or Hugging Face folder)")
    p.add_argument("model", help="an nlplab LM run or a Hugging Face causal-LM folder")
    p.add_argument("--prompt", help="prompt text")
    p.add_argument("--prompt-ids", help="prompt as comma-separated token ids (needs no tokenizer)")
    p.add_argument("--strategy", default="greedy", metavar="{greedy,beam,sample}", help="decoding strategy (default: greedy)")
    p.add_argument("--beams", type=int, default=4, help="beam: beams kept at each step (default: 4)")
    p.add_argument("--length-penalty", type=float, default=1.0, help="beam: score / length^penalty (default: 1.0)")
    p.add_argument("--temperature", type=float, default=1.0, help="sample: logits / T; 0 means greedy (default: 1.0)")
    p.add_argument("--top-k", type=int, help="sample: keep the k most likely tokens")
    p.add_argument("--top-p", type=float, help="sample: keep the smallest set of tokens with probability >= p")
    p.add_argument("--repetition-penalty", type=float, default=1.0, help="divide the logits of seen tokens (default: 1.0)")
    p.add_argument("--max-new-tokens", type=int, default=50, help="most tokens to generate (default: 50)")
    p.add_argument("--num-return", type=int, default=1, help="continuations to return (default: 1)")
    p.add_argument("--seed", type=int, help="seed of sampling")
    p.add_argument("--stop", action="append", default=[], help="stop when this text appears (repeatable)")
    p.add_argument("--json", action="store_true", help='last line {"ids": [[...]], "texts": [...], "scores": [...]}')
    add_device(p)
    add_compile(p)

    p = leaf(sub, "score", "log-probability and perplexity of sentences, most reasonable first")
    p.add_argument("run", help="an nlplab LM run (n-gram or neural)")
    p.add_argument("texts", nargs="*", help="sentences to score")
    p.add_argument("--json", action="store_true", help="last line: the rows as JSON")
    add_device(p)

    p = leaf(sub, "chat", "multi-turn chat with a causal LM, streaming (reads queries from stdin)")
    p.add_argument("model", help="a Hugging Face chat model folder or an nlplab LM run")
    p.add_argument("--max-length", type=int, default=2048, help="longest prompt in tokens; older turns are dropped (default: 2048)")
    p.add_argument("--max-new-tokens", type=int, default=256, help="most tokens per answer (default: 256)")
    p.add_argument("--temperature", type=float, default=0.8, help="0 = greedy (default: 0.8)")
    p.add_argument("--top-p", type=float, default=0.8, help="nucleus sampling threshold (default: 0.8)")
    p.add_argument("--seed", type=int, help="seed of sampling")
    p.add_argument("--system", help="system message (for templates that take one)")
    p.add_argument("--stop", action="append", default=[], help="stop when this text appears (repeatable)")
    add_device(p)
    add_compile(p)

    p = leaf(sub, "match", "the corpus lines closest to a query, by a bi-encoder matching run; last line is JSON")
    p.add_argument("run", help="a `--task match` run with a bi-encoder (bow, cnn, lstm, simcse)")
    p.add_argument("--query", action="append", required=True, help="query text (repeat for several)")
    p.add_argument("--corpus", required=True, help="text file, one candidate per line (its embeddings are cached in RUN/retrieval/)")
    p.add_argument("--top-k", type=int, default=5, help="hits per query (default: 5)")
    add_device(p)
    return {"eval": cmd_eval, "predict": cmd_predict, "embed": cmd_embed, "generate": cmd_generate, "score": cmd_score,
            "chat": cmd_chat, "match": cmd_match}
