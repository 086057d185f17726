"""Generation speed: nlplab's decoding with and without the KV cache, against transformers' generate() on the same
weights, for greedy and beam search (4 beams), and greedy through `nlplab.generate.causal.generate` (what `nlplab
generate` runs: ids and their log-probability, which it takes from the decoding steps, no second forward pass).

A random Hugging Face GPT-2 (6 layers, d=384, 6 heads, vocab 8000, 512 positions) is saved and loaded by nlplab's
GPT. Each round decodes the same prompts (32 tokens, `--new` new tokens, EOS disabled so every run makes all
of them) with every version, in an order that rotates from prompt to prompt; the figure is the median over rounds
of new tokens per second; a ratio is the median over rounds of that round's ratio (the versions of one round
run side by side, so load that changes between rounds cancels out). Before timing, the versions are checked to produce the
same ids.

    python benchmarks/generation_bench.py                 # 1 torch thread, as committed
    python benchmarks/generation_bench.py --rounds 1 --prompts 1 --new 8 --out /tmp/gb
"""

from __future__ import annotations

import argparse
import datetime
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Callable

import torch
import transformers
from common import RESULTS, git_commit, machine, write_result

from nlplab.generate import beam_search, greedy
from nlplab.generate.causal import CausalLM, generate, nlplab_chat
from nlplab.models.gpt import GPT

SHAPE = {"n_layer": 6, "n_embd": 384, "n_head": 6, "n_positions": 512, "vocab_size": 8000}
PROMPT = 32


def versions(ours: GPT, theirs: transformers.GPT2LMHeadModel, new: int) -> dict[str, Callable[[torch.Tensor], list[int]]]:
    def hf(prompt: torch.Tensor, **kw: object) -> list[int]:
        out = theirs.generate(prompt[None], attention_mask=torch.ones(1, len(prompt), dtype=torch.long), max_new_tokens=new,
                              min_new_tokens=new, do_sample=False, top_k=None, top_p=None, temperature=None,
                              pad_token_id=0, eos_token_id=None, **kw)
        return out[0, len(prompt):].tolist()

    lm = CausalLM(ours, list, list, None, SHAPE["n_positions"], nlplab_chat, "random GPT-2", has_tokenizer=False,
                  vocab_size=SHAPE["vocab_size"])
    return {
        "nlplab greedy (KV cache)": lambda p: greedy(ours, p, new).tolist(),
        "nlplab generate() greedy, scored": lambda p: generate(lm, p.tolist(), "greedy", new)[0].ids,
        "nlplab greedy (no cache)": lambda p: greedy(ours, p, new, use_cache=False).tolist(),
        "HF greedy": lambda p: hf(p),
        "nlplab beam 4 (KV cache)": lambda p: beam_search(ours, p, new, num_beams=4)[0].ids.tolist(),
        "HF beam 4": lambda p: hf(p, num_beams=4, length_penalty=1.0, early_stopping=True),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--prompts", type=int, default=3)
    parser.add_argument("--new", type=int, default=64)
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    torch.set_num_threads(1)
    started, t0 = datetime.datetime.now(datetime.timezone.utc), time.perf_counter()
    torch.manual_seed(0)
    folder = tempfile.mkdtemp()
    transformers.GPT2LMHeadModel(transformers.GPT2Config(**SHAPE, bos_token_id=0, eos_token_id=0)).save_pretrained(folder)
    theirs = transformers.GPT2LMHeadModel.from_pretrained(folder).eval()
    ours = GPT.from_pretrained(folder).eval()
    prompts = [torch.randint(0, SHAPE["vocab_size"], (PROMPT,), generator=torch.Generator().manual_seed(i))
               for i in range(args.prompts)]
    runs = versions(ours, theirs, args.new)
    with torch.no_grad():
        outputs = {name: run(prompts[0]) for name, run in runs.items()}
    same = {"greedy": outputs["nlplab greedy (KV cache)"] == outputs["nlplab greedy (no cache)"] == outputs["HF greedy"]
            == outputs["nlplab generate() greedy, scored"],
            "beam 4": outputs["nlplab beam 4 (KV cache)"] == outputs["HF beam 4"]}
    names, rates = list(runs), {name: [] for name in runs}
    for r in range(args.rounds):
        spent = dict.fromkeys(names, 0.0)
        for k, prompt in enumerate(prompts):
            order = names[(k + r) % len(names):] + names[: (k + r) % len(names)]
            for name in order:
                t = time.perf_counter()
                with torch.no_grad():
                    runs[name](prompt)
                spent[name] += time.perf_counter() - t
        for name in names:
            rates[name].append(args.new * len(prompts) / spent[name])
        print(f"round {r + 1}: " + ", ".join(f"{n} {rates[n][-1]:.0f}" for n in names), flush=True)
    median = {name: statistics.median(v) for name, v in rates.items()}
    def ratio(a: str, b: str) -> float:
        return statistics.median(x / y for x, y in zip(rates[a], rates[b]))

    ratios = {"greedy nlplab/HF": ratio("nlplab greedy (KV cache)", "HF greedy"),
              "generate() greedy, scored, nlplab/HF": ratio("nlplab generate() greedy, scored", "HF greedy"),
              "beam 4 nlplab/HF": ratio("nlplab beam 4 (KV cache)", "HF beam 4"),
              "KV cache speed-up (greedy)": ratio("nlplab greedy (KV cache)", "nlplab greedy (no cache)")}
    payload = {"command": "python " + shlex.join(sys.argv), "date": started.isoformat(timespec="seconds"),
               "wall_seconds": time.perf_counter() - t0, "machine": machine(), "commit": git_commit(), "shape": SHAPE,
               "prompt_tokens": PROMPT, "new_tokens": args.new, "prompts": args.prompts, "rounds": args.rounds,
               "same_ids": same, "tokens_per_second": median, "all_rounds": rates, "ratios": ratios}
    lines = [f"# Generation speed (GPT-2 shape {SHAPE}, prompt {PROMPT} tokens, {args.new} new tokens, 1 thread)", "",
             "| version | new tokens/s (median of rounds) |", "|---|---|"]
    lines += [f"| {name} | {median[name]:.1f} |" for name in names]
    lines += ["", "| ratio (median of per-round ratios) | value |", "|---|---|"] + [f"| {k} | {v:.2f} |" for k, v in ratios.items()]
    lines += ["", f"Same ids as transformers: greedy {same['greedy']}, beam 4 {same['beam 4']}.", "",
              f"`{payload['command']}` — {started:%Y-%m-%d}, {payload['wall_seconds']:.0f} s wall, {payload['machine']['cpu']}."]
    write_result("generation", payload, "\n".join(lines) + "\n", __import__("pathlib").Path(args.out))


if __name__ == "__main__":
    main()
