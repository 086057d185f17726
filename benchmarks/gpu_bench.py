"""GPU figures: nlplab's GPT against Hugging Face's GPT2LMHeadModel with the same weights — training step tokens/s,
peak memory and model FLOPs utilisation (MFU), eager and under torch.compile; decoding tokens/s (greedy and beam 4,
same ids); and the LM perplexity table of lm_bench.py with every neural model trained for the same GPU time.

1. Peak: the device's matrix rate is measured first, the best of square matmuls in the training dtype (bf16 on
   CUDA, float32 on the CPU): 2n³ FLOPs per product.
2. Training: GPT-2 small (12 layers, d = 768, 12 heads, vocab 50,257, T = 1024, batch 16), dropout 0, bf16 autocast
   on CUDA, AdamW (fused on CUDA). Both models start from the same random weights (checked: their float32 logits
   agree within 1e-3, and the first losses within 1%). A version warms up for `--warmup` steps (compiled, these
   compile; their compile time is torch's own count, reported apart) and is then timed over `--steps` steps.
   Model FLOPs per token (PaLM's count, causal attention not halved): 6·N + 12·L·T·d, N the weights of the matrix
   products (12·L·d² in the blocks + V·d in the LM head); MFU = FLOPs per token × tokens/s ÷ peak.
3. Decoding: a 32-token prompt, `--new` new tokens, EOS disabled; nlplab's greedy / beam 4 against transformers'
   generate(), ids checked equal, in bf16 weights on CUDA.
4. Perplexity: lm_bench's models on pd98-text, each neural model trained for `--lm-budget` seconds of GPU time
   (wall clock with the device synchronised), bf16 autocast.

    python benchmarks/gpu_bench.py                                   # on a CUDA GPU, as the issue asks
    python benchmarks/gpu_bench.py --tiny --device cpu --out /tmp/g  # a tiny shape on the CPU (the suite runs it)

--tiny shrinks every part (2 layers, d = 64, T = 48, a synthetic corpus for the perplexity table) so the script
runs end to end in seconds; its figures mean nothing.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import random
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
import transformers
from common import RESULTS, footer, git_commit, machine, write_result
from lm_bench import SHAPES as LM_SHAPES
from lm_bench import run_neural, run_ngram, table, vocabulary

from nlplab.generate import beam_search, greedy
from nlplab.models.gpt import GPT
from nlplab.models.lm import lm_loss
from nlplab.runtime import autocast, compile_model, compile_seconds, resolve_device

FULL = {"shape": {"n_layer": 12, "n_embd": 768, "n_head": 12, "vocab_size": 50257, "n_positions": 1024},
        "batch": 16, "matmul_sizes": (4096, 8192), "lm_models": "ngram1,ngram2,ngram3,rnn,lstm,gru,cnn,gpt"}
TINY = {"shape": {"n_layer": 2, "n_embd": 64, "n_head": 4, "vocab_size": 512, "n_positions": 48},
        "batch": 2, "matmul_sizes": (128, 256), "lm_models": "ngram3,gpt"}
PROMPT = 32


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def clock_of(device: torch.device) -> Callable[[], float]:
    """Wall-clock seconds once the device has finished the work queued so far."""
    def clock() -> float:
        synchronize(device)
        return time.perf_counter()

    return clock


def matmul_peak(device: torch.device, dtype: torch.dtype, sizes: tuple[int, ...], repeats: int = 20) -> dict:
    """The best measured rate of (n, n) @ (n, n) products over `sizes`, FLOP/s (2n³ per product)."""
    clock, rates = clock_of(device), {}
    for n in sizes:
        a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
        a @ b
        t = clock()
        for _ in range(repeats):
            a @ b
        rates[n] = 2 * n**3 * repeats / (clock() - t)
    return {"flops_per_second": max(rates.values()), "by_size": rates, "dtype": str(dtype).removeprefix("torch.")}


def flops_per_token(shape: dict, tokens: int) -> float:
    """6·N + 12·L·T·d: N = 12·L·d² + V·d, the weights of the matrix products (see the module docstring)."""
    layers, d = shape["n_layer"], shape["n_embd"]
    return 6 * (12 * layers * d * d + shape["vocab_size"] * d) + 12 * layers * tokens * d


def same_weights(shape: dict, device: torch.device) -> tuple[GPT, transformers.GPT2LMHeadModel]:
    """A random GPT-2 of `shape` (dropout 0) and nlplab's GPT loaded from its saved folder."""
    torch.manual_seed(0)
    config = transformers.GPT2Config(**shape, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0,
                                     eos_token_id=0)
    folder = tempfile.mkdtemp()
    transformers.GPT2LMHeadModel(config).save_pretrained(folder)
    return GPT.from_pretrained(folder).to(device), transformers.GPT2LMHeadModel.from_pretrained(folder).to(device)


def losses(ids: torch.Tensor) -> dict[str, Callable[[torch.nn.Module], torch.Tensor]]:
    return {"nlplab": lambda model: lm_loss(model, ids[:, :-1], ids[:, 1:])[0],
            "HF": lambda model: F.cross_entropy(model(ids[:, :-1]).logits.float().flatten(0, 1), ids[:, 1:].flatten())}


def train_rate(model: torch.nn.Module, loss_of: Callable[[torch.nn.Module], torch.Tensor], tokens: int,
               device: torch.device, warmup: int, steps: int) -> dict:
    """Train `model` for warmup + steps AdamW steps; the timed steps' tokens/s, peak memory, first loss."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device.type == "cuda")
    model.train()
    clock, c0, first = clock_of(device), compile_seconds(), None

    def step() -> float:
        with autocast(device):
            loss = loss_of(model)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.item()

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t = clock()
    for k in range(warmup):
        loss = step()
        first = loss if k == 0 else first
    warmup_seconds, compiling = clock() - t, compile_seconds() - c0
    t = clock()
    for _ in range(steps):
        step()
    seconds = (clock() - t) / steps
    return {"tokens_per_second": tokens / seconds, "step_seconds": seconds, "warmup_seconds": warmup_seconds,
            "compile_seconds": compiling, "first_loss": first,
            "peak_memory_gib": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None}


def training(setup: dict, device: torch.device, warmup: int, steps: int, backend: str, peak: float) -> dict:
    shape, batch = setup["shape"], setup["batch"]
    ids = torch.randint(0, shape["vocab_size"], (batch, shape["n_positions"] + 1), device=device,
                        generator=torch.Generator(device).manual_seed(0))
    tokens = batch * shape["n_positions"]
    rows, models = {}, dict(zip(("nlplab", "HF"), same_weights(shape, device)))
    with torch.no_grad():  # the same function: float32 logits of one row agree
        gap = (models["nlplab"].eval()(ids[:1, :-1])[0] - models["HF"].eval()(ids[:1, :-1]).logits).abs().max().item()
    for compiled in (False, True):
        for name, loss_of in losses(ids).items():
            model = copy.deepcopy(models[name])
            if compiled:
                compile_model(model, backend=backend)
            row = train_rate(model, loss_of, tokens, device, warmup, steps)
            row["mfu"] = flops_per_token(shape, shape["n_positions"]) * row["tokens_per_second"] / peak
            rows[f"{name} {'compiled' if compiled else 'eager'}"] = row
            del model
            if device.type == "cuda":
                torch.cuda.empty_cache()
    first = [row["first_loss"] for row in rows.values()]
    return {"tokens_per_step": tokens, "flops_per_token": flops_per_token(shape, shape["n_positions"]), "rows": rows,
            "logit_gap": gap, "same_logits": gap < 1e-3, "same_first_loss": max(first) - min(first) <= 1e-2 * abs(first[0]),
            "ratios": {f"nlplab/HF {mode}": rows[f"nlplab {mode}"]["tokens_per_second"] / rows[f"HF {mode}"]["tokens_per_second"]
                       for mode in ("eager", "compiled")}}


def decoding(setup: dict, device: torch.device, new: int, rounds: int) -> dict:
    ours, theirs = same_weights(setup["shape"], device)
    if device.type == "cuda":
        ours, theirs = ours.bfloat16(), theirs.bfloat16()
    ours.eval(), theirs.eval()
    prompt = torch.randint(0, setup["shape"]["vocab_size"], (PROMPT,), device=device,
                           generator=torch.Generator(device).manual_seed(1))

    def hf(**kw: object) -> list[int]:
        out = theirs.generate(prompt[None], attention_mask=torch.ones_like(prompt)[None], max_new_tokens=new,
                              min_new_tokens=new, do_sample=False, top_k=None, top_p=None, temperature=None,
                              pad_token_id=0, eos_token_id=None, **kw)
        return out[0, PROMPT:].tolist()

    runs = {"nlplab greedy": lambda: greedy(ours, prompt, new).tolist(), "HF greedy": hf,
            "nlplab beam 4": lambda: beam_search(ours, prompt, new, num_beams=4)[0].ids.tolist(),
            "HF beam 4": lambda: hf(num_beams=4, length_penalty=1.0, early_stopping=True)}
    clock, rates = clock_of(device), {name: [] for name in runs}
    with torch.no_grad():
        ids = {name: run() for name, run in runs.items()}
        for _ in range(rounds):
            for name, run in runs.items():
                t = clock()
                run()
                rates[name].append(new / (clock() - t))
    median = {name: statistics.median(v) for name, v in rates.items()}
    return {"prompt_tokens": PROMPT, "new_tokens": new, "rounds": rounds, "tokens_per_second": median,
            "same_ids": {"greedy": ids["nlplab greedy"] == ids["HF greedy"], "beam 4": ids["nlplab beam 4"] == ids["HF beam 4"]},
            "ratios": {s: median[f"nlplab {s}"] / median[f"HF {s}"] for s in ("greedy", "beam 4")}}


def tiny_corpus(folder: Path) -> str:
    """A small synthetic text file (one document a line) standing in for pd98-text under --tiny."""
    rng, words = random.Random(0), ["今天", "天气", "很好", "我们", "去", "公园", "散步", "明天", "下雨", "。"]
    path = folder / "tiny.txt"
    path.write_text("\n".join("".join(rng.choices(words, k=rng.randint(4, 12))) for _ in range(60)) + "\n", encoding="utf-8")
    return str(path)


def perplexity(models: str, device: torch.device, budget: float, tiny: bool) -> list[dict]:
    work = Path(tempfile.mkdtemp())
    fields = {"data": tiny_corpus(work), "window_size": 16} if tiny else {}
    shape = {"hidden_size": 32, "embed_dim": 16, "layers": 1} if tiny else {}
    _, tokenizer = vocabulary(work, **fields)
    rows = []
    for name in models.split(","):
        if name.startswith("ngram"):
            rows.append(run_ngram(int(name[5:]), tokenizer, work, **fields))
        else:
            rows.append(run_neural(name, tokenizer, budget, budget / 4, 20000, device, clock_of(device),
                                   **fields, **{k: v for k, v in shape.items() if k in LM_SHAPES[name]}))
        print(f"  {rows[-1]['model']}: test ppl {rows[-1]['test_ppl']:.2f}", flush=True)
    return rows


def markdown(result: dict) -> str:
    t, d = result["training"], result["decoding"]
    lines = [f"# GPU benchmark ({result['device_name']})", "",
             f"Measured matmul peak: **{result['peak']['flops_per_second'] / 1e12:.1f} TFLOP/s** "
             f"({result['peak']['dtype']}). Training shape {result['shape']}, batch {result['batch']}, "
             f"{result['training_dtype']}; {t['flops_per_token'] / 1e9:.2f} GFLOP per token.", "",
             "| training step | tokens/s | step (ms) | compile (s) | peak memory (GiB) | MFU |", "|---|---:|---:|---:|---:|---:|"]
    for name, r in t["rows"].items():
        memory = "—" if r["peak_memory_gib"] is None else f"{r['peak_memory_gib']:.1f}"
        lines.append(f"| {name} | {r['tokens_per_second']:,.0f} | {r['step_seconds'] * 1e3:.1f} | "
                     f"{r['compile_seconds']:.1f} | {memory} | {r['mfu']:.1%} |")
    lines += ["", " · ".join(f"{k}: **{v:.2f}×**" for k, v in t["ratios"].items())
              + f" (same logits: {t['same_logits']}, same first loss: {t['same_first_loss']})", "",
              f"| decoding ({d['prompt_tokens']}-token prompt, {d['new_tokens']} new tokens) | tokens/s |", "|---|---:|"]
    lines += [f"| {name} | {v:.1f} |" for name, v in d["tokens_per_second"].items()]
    lines += ["", " · ".join(f"{k} nlplab/HF: **{v:.2f}×**" for k, v in d["ratios"].items())
              + f" (same ids: {d['same_ids']})", "",
              f"Perplexity (lm_bench's models, {result['lm_data']}; each neural model trained for "
              f"{result['lm_budget_seconds']:g} s of device time):", "", *table(result["lm_rows"], "training time"), ""]
    return "\n".join(lines) + "\n" + footer(result, "; --tiny: shapes too small to mean anything" if result["tiny"] else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", help="auto (CUDA when present) | cpu | cuda | cuda:N")
    parser.add_argument("--tiny", action="store_true", help="tiny shapes and corpus: a check that the script runs")
    parser.add_argument("--warmup", type=int, default=3, help="untimed training steps, at least 1 (compiling ones)")
    parser.add_argument("--steps", type=int, default=20, help="timed training steps")
    parser.add_argument("--new", type=int, default=128, help="new tokens per decoding")
    parser.add_argument("--rounds", type=int, default=3, help="timed decodings per version")
    parser.add_argument("--lm-budget", type=float, default=60.0, help="seconds of device time per neural LM")
    parser.add_argument("--backend", default="inductor", help="torch.compile backend (eager: capture only)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.warmup < 1 or args.steps < 1:
        parser.error("--warmup and --steps must be at least 1")
    device = resolve_device(args.device)
    setup = TINY if args.tiny else FULL
    if device.type == "cpu":
        torch.set_num_threads(1)
    started, t0 = datetime.datetime.now(datetime.timezone.utc), time.perf_counter()
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    peak = matmul_peak(device, dtype, setup["matmul_sizes"])
    print(f"matmul peak {peak['flops_per_second'] / 1e12:.2f} TFLOP/s", flush=True)
    result = {"command": "python " + shlex.join(sys.argv), "date": started.isoformat(timespec="seconds"),
              "machine": machine(), "commit": git_commit(), "tiny": args.tiny,
              "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU",
              "shape": setup["shape"], "batch": setup["batch"], "training_dtype": f"{dtype} autocast".removeprefix("torch.")
              if device.type == "cuda" else "float32", "peak": peak, "backend": args.backend,
              "training": training(setup, device, args.warmup, args.steps, args.backend, peak["flops_per_second"])}
    print(" · ".join(f"{k} {v:.2f}" for k, v in result["training"]["ratios"].items()), flush=True)
    result["decoding"] = decoding(setup, device, args.new, args.rounds)
    result["lm_data"] = "a synthetic corpus (--tiny)" if args.tiny else "pd98-text, char vocabulary"
    result["lm_budget_seconds"] = args.lm_budget
    result["lm_rows"] = perplexity(setup["lm_models"], device, args.lm_budget, args.tiny)
    result["wall_seconds"] = time.perf_counter() - t0
    write_result("gpu", result, markdown(result), args.out)


if __name__ == "__main__":
    main()
