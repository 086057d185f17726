"""`nlplab tokenizer train|encode` and `nlplab data`."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable

from nlplab.cli.args import leaf
from nlplab.text import TOKENIZERS


def cmd_tokenizer_train(args: argparse.Namespace) -> None:
    from nlplab.data import read_lines
    from nlplab.text import build_tokenizer

    texts = [line for path in args.input for line in read_lines(path) if line.strip()]
    options = {"limit_alphabet": args.limit_alphabet} if args.limit_alphabet is not None else {}
    tok = build_tokenizer(args.algo, **options).train(texts, vocab_size=args.vocab_size, min_freq=args.min_freq,
                                                      progress=not args.no_progress)
    tok.save(args.out)
    merges = getattr(tok, "merges", [])
    if merges:
        print("first merges:", ", ".join(f"{a} + {b}" for a, b in merges[:10]))
    print(f"{tok.algo} tokenizer, vocab size {tok.vocab_size}, saved to {args.out}")


def cmd_tokenizer_encode(args: argparse.Namespace) -> None:
    from nlplab.text import load_tokenizer

    tok = load_tokenizer(args.dir)
    rows = []
    for text in args.texts:
        ids = tok.encode(text)
        rows.append({"tokens": [tok.id_to_token[i] for i in ids], "ids": ids})
    for text, row in zip(args.texts, rows):
        print(text)
        print("  tokens:", " ".join(row["tokens"]))
        print("  ids:   ", " ".join(map(str, row["ids"])))
    if args.json:
        for row in rows:
            print(json.dumps(row, ensure_ascii=False))


def cmd_data(args: argparse.Namespace) -> None:
    from nlplab.data.catalog import catalog, roots

    print("benchmark data sets are looked for in: " + ", ".join(roots()) + " (set NLPLAB_DATA to add a folder)")
    print(f"{'name':<20}{'task':<11}{'train':>8}{'dev':>7}{'test':>7}  unit; note")
    for e in catalog():
        if e.sizes is None:
            print(f"{e.name:<20}{e.task:<11}{'unavailable':>22}  {e.note}")
        else:
            train, dev, test = e.sizes.values()
            print(f"{e.name:<20}{e.task:<11}{train:>8}{dev:>7}{test:>7}  {e.unit}; {e.note}")


TOKENIZER_COMMANDS = {"train": cmd_tokenizer_train, "encode": cmd_tokenizer_encode}


def add_parsers(sub: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], None]]:
    leaf(sub, "data", "list every named data set of every task, its size and whether it is available here")
    tok = leaf(sub, "tokenizer", "train or use a tokenizer")
    tok_sub = tok.add_subparsers(dest="tokenizer_command", required=True, metavar="COMMAND")
    p = leaf(tok_sub, "train", "train a tokenizer on text files (one text per line)")
    p.add_argument("--algo", required=True, metavar="{" + ",".join(sorted(TOKENIZERS)) + "}", help="the algorithm")
    p.add_argument("--vocab-size", type=int, help="the vocabulary size to reach (bpe, bytebpe, wordpiece: required)")
    p.add_argument("--min-freq", type=int, default=1, help="a merge or token needs at least this count (default: 1)")
    p.add_argument("--limit-alphabet", type=int, help="bpe: keep only the N most frequent characters (others become [UNK])")
    p.add_argument("--input", nargs="+", required=True, help="text files, one text per line")
    p.add_argument("--out", required=True, help="folder for tokenizer.json and tokenizer_config.json")
    p.add_argument("--no-progress", action="store_true", help="no progress bar or progress lines")
    p = leaf(tok_sub, "encode", "print the tokens and ids of texts")
    p.add_argument("dir", help="a saved tokenizer folder (or a run's tokenizer/)")
    p.add_argument("texts", nargs="+", help="texts to encode")
    p.add_argument("--json", action="store_true", help="also print one JSON object per text as the last lines")
    return {"data": cmd_data, "tokenizer": lambda args: TOKENIZER_COMMANDS[args.tokenizer_command](args)}
