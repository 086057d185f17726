"""`nlplab serve MODEL`: a run or a Hugging Face folder behind the OpenAI-compatible server, on loopback unless told
otherwise. Prints one line when it listens; the app logs one line per request."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

from nlplab.errors import ConfigError

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def model_id(path: str) -> str:
    """The id the server answers to: the folder's name (all-MiniLM-L6-v2 as it is)."""
    return Path(path).resolve().name if Path(path).exists() else path


def cmd_serve(args: argparse.Namespace) -> None:
    for flag, value, least in (("--port", args.port, 0), ("--max-batch", args.max_batch, 1),
                               ("--max-new-tokens", args.max_new_tokens, 1)):
        if value < least:
            raise ConfigError(f"{flag} must be >= {least}, got {value}")
    if args.port > 65535 or not args.timeout > 0:
        raise ConfigError(f"--port must be at most 65535 and --timeout above 0; got {args.port} and {args.timeout}")
    from nlplab.runs import load_run
    from nlplab.serve.app import create_app
    from nlplab.serve.server import serve

    predictor = load_run(args.model, args.device)
    if args.compile:
        predictor.compile()
    api_key = args.api_key or os.environ.get("NLPLAB_API_KEY") or None
    ident = model_id(args.model)
    app = create_app(predictor, ident, args.max_batch, args.max_new_tokens, api_key, args.timeout)
    where = f"[{args.host}]" if ":" in args.host else args.host
    print(f"nlplab serve: {ident} ({predictor.task}: {', '.join(predictor.abilities)}) on http://{where}:{args.port}/ "
          f"— playground at /, OpenAI API at /v1{'' if api_key else ', no API key'}", file=sys.stderr, flush=True)
    if args.host not in LOOPBACK and not api_key:
        print(f"nlplab serve: warning: listening on {args.host} without --api-key: anyone who can reach this machine "
              "can use the model", file=sys.stderr, flush=True)
    try:
        serve(app, args.host, args.port)
    except KeyboardInterrupt:  # uvicorn shuts down gracefully on Ctrl-C, then raises the signal again
        pass
    print("nlplab serve: stopped", file=sys.stderr, flush=True)


def add_parsers(sub: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], None]]:
    what = "serve a model over HTTP: OpenAI-compatible API, batching and a web playground"
    p = sub.add_parser("serve", help=what, description=what[:1].upper() + what[1:] + ".")
    p.add_argument("model", help="an nlplab run, a Hugging Face folder (BERT encoder or causal LM), or all-MiniLM-L6-v2")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    p.add_argument("--max-batch", type=int, default=16,
                   help="most requests in one forward pass; 1 serves one at a time (default: 16)")
    p.add_argument("--max-new-tokens", type=int, default=512, help="cap on a request's max_tokens (default: 512)")
    p.add_argument("--api-key", help="require `Authorization: Bearer KEY` on /v1/ (default: $NLPLAB_API_KEY, else open)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds a request may take (default: 60)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present) | cpu | cuda | cuda:N (default: auto)")
    p.add_argument("--compile", action="store_true", help="run the model under torch.compile (the first requests compile)")
    return {"serve": cmd_serve}
