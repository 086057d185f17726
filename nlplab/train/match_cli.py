"""`nlplab match RUN --query TEXT [--query TEXT ...] --corpus FILE [--top-k 5]`: retrieval with a bi-encoder run."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable

from nlplab.errors import ConfigError


def cmd_match(args: argparse.Namespace) -> None:
    from nlplab.train.match import MatchRun

    if args.top_k < 1:
        raise ConfigError(f"--top-k must be >= 1; got {args.top_k}")
    results = MatchRun.load(args.run, args.device).search(args.query, args.corpus, args.top_k)
    for query, hits in zip(args.query, results):
        print(f"query: {query}")
        for rank, (line, score) in enumerate(hits, start=1):
            print(f"{rank}\t{score:.4f}\t{line}")
    print(json.dumps([{"query": q, "hits": [{"text": line, "score": s} for line, s in hits]}
                      for q, hits in zip(args.query, results)], ensure_ascii=False))


def add_parsers(sub: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], None]]:
    p = sub.add_parser("match", help="the corpus lines closest to a query, by a bi-encoder matching run; "
                                     "last line is JSON")
    p.add_argument("run", help="a `--task match` run with a bi-encoder (bow, cnn, lstm, simcse)")
    p.add_argument("--query", action="append", required=True, help="query text (repeat for several)")
    p.add_argument("--corpus", required=True, help="text file, one candidate per line (its embeddings are cached in RUN/retrieval/)")
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--device", default="auto")
    return {"match": cmd_match}
