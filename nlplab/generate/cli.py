"""`nlplab generate`, `nlplab score` and `nlplab chat`."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

from nlplab.errors import ConfigError


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
    from nlplab.generate.causal import generate, load_causal_lm, picker, stream_text

    lm = load_causal_lm(args.model, args.device)
    ids = prompt_ids(args, lm.encode)
    options = {"strategy": args.strategy, "max_new_tokens": args.max_new_tokens, "num_beams": args.beams,
               "length_penalty": args.length_penalty, "temperature": args.temperature, "top_k": args.top_k,
               "top_p": args.top_p, "repetition_penalty": args.repetition_penalty, "num_return": args.num_return,
               "seed": args.seed, "stop": args.stop}
    if args.strategy != "beam" and args.num_return == 1 and not args.json:
        pick = picker(args.strategy, args.temperature, args.top_k, args.top_p, args.repetition_penalty, args.seed)
        printed = ""
        for _, text in stream_text(lm, ids, pick, args.max_new_tokens, args.stop):
            if text.startswith(printed):
                print(text[len(printed):], end="", flush=True)
            printed = text
        print()
        return
    results = generate(lm, ids, **options)
    for k, r in enumerate(results, start=1):
        print(f"[{k}] score {r.score:.4f}\t{r.text}")
    if args.json:
        print(json.dumps({"ids": [r.ids for r in results], "texts": [r.text for r in results],
                          "scores": [r.score for r in results]}, ensure_ascii=False))


def cmd_score(args: argparse.Namespace) -> None:
    from nlplab.train.lm import LMRun

    if not args.texts:
        raise ConfigError("give one or more sentences to score")
    run = LMRun.load(args.run, args.device)
    rows = run.score(args.texts)
    print(f"{'rank':<6}{'log p':>12}{'perplexity':>14}  sentence")
    for rank, (i, logprob, ppl) in enumerate(rows, start=1):
        print(f"{rank:<6}{logprob:>12.3f}{ppl:>14.3f}  {args.texts[i]}")
    if args.json:
        print(json.dumps([{"text": args.texts[i], "logprob": lp, "ppl": ppl} for i, lp, ppl in rows], ensure_ascii=False))


def cmd_chat(args: argparse.Namespace) -> None:
    from nlplab.generate.chat import Chat

    chat = Chat(args.model, max_length=args.max_length, max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                top_p=args.top_p, seed=args.seed, system=args.system, stop=args.stop, device=args.device)
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


def add_parsers(sub: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], None]]:
    p = sub.add_parser("generate", help="continue a prompt with a language model (nlplab run or Hugging Face folder)")
    p.add_argument("model", help="an nlplab LM run or a Hugging Face causal-LM folder")
    p.add_argument("--prompt", help="prompt text")
    p.add_argument("--prompt-ids", help="prompt as comma-separated token ids")
    p.add_argument("--strategy", default="greedy", help="greedy | beam | sample")
    p.add_argument("--beams", type=int, default=4)
    p.add_argument("--length-penalty", type=float, default=1.0)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-k", type=int)
    p.add_argument("--top-p", type=float)
    p.add_argument("--repetition-penalty", type=float, default=1.0)
    p.add_argument("--max-new-tokens", type=int, default=50)
    p.add_argument("--num-return", type=int, default=1)
    p.add_argument("--seed", type=int)
    p.add_argument("--stop", action="append", default=[], help="stop when this text appears (repeatable)")
    p.add_argument("--json", action="store_true", help='last line {"ids": [[...]], "texts": [...], "scores": [...]}')
    p.add_argument("--device", default="auto")
    p = sub.add_parser("score", help="log-probability and perplexity of sentences, most reasonable first")
    p.add_argument("run", help="an nlplab LM run (n-gram or neural)")
    p.add_argument("texts", nargs="*")
    p.add_argument("--json", action="store_true")
    p.add_argument("--device", default="auto")
    p = sub.add_parser("chat", help="multi-turn chat with a causal LM, streaming (reads queries from stdin)")
    p.add_argument("model", help="a Hugging Face chat model folder or an nlplab LM run")
    p.add_argument("--max-length", type=int, default=2048, help="longest prompt in tokens; older turns are dropped")
    p.add_argument("--max-new-tokens", type=int, default=256)
    p.add_argument("--temperature", type=float, default=0.8, help="0 = greedy")
    p.add_argument("--top-p", type=float, default=0.8)
    p.add_argument("--seed", type=int)
    p.add_argument("--system", help="system message (for templates that take one)")
    p.add_argument("--stop", action="append", default=[])
    p.add_argument("--device", default="auto")
    return {"generate": cmd_generate, "score": cmd_score, "chat": cmd_chat}
