"""Lab `norm`: BatchNorm against LayerNorm on padded batches of variable-length text.

x (B, C, T) are the character embeddings of a padded batch of ChnSentiCorp reviews ([PAD] embeds to 0).
BatchNorm1d normalises each channel c with statistics over the whole batch and every position,
    μ_c = mean_{b,t} x[b,c,t],  σ²_c = var_{b,t} x[b,c,t],
so the pad positions enter μ and σ², and a sentence's output depends on which other sentences share its batch;
in eval mode it uses running averages of those training statistics instead. LayerNorm normalises each token over
its own C channels and sees neither the pads nor the rest of the batch.

Measured for random batches (padded to their longest review) and length-bucketed batches (`batch_rows` with
`bucket`): the pad fraction; BN's statistics with the pads against those of the real tokens only (|Δμ|/σ and the
variance ratio, averaged over channels; LN has none across tokens); the spread (std over K batches, averaged over tokens and channels) of one
sentence's output when the rest of its batch is redrawn; and the mean |train − eval| output on the real tokens of
held-out batches, after one pass over the training batches has set BN's running statistics.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import torch
from torch import Tensor

from nlplab.data.batching import batches, pad_batch
from nlplab.data.registry import load_dataset
from nlplab.lab.base import Lab, LabContext, LabResult
from nlplab.nn.layers import BatchNorm1d, Embedding, LayerNorm
from nlplab.text import build_tokenizer

CHANNELS, BATCH, WINDOW = 64, 32, 256
SHIFT, RATIO, SPREAD, GAP = "mean shift / σ", "var with / without pads", "same-sentence spread", "train−eval gap"


def channel_stats(x: Tensor, mask: Tensor) -> dict[str, float]:
    """BN's statistics of x (B, C, T) over all positions against those over the real tokens (mask (B, T))."""
    real = x.transpose(1, 2)[mask]
    mean_all, var_all = x.mean((0, 2)), x.var((0, 2), unbiased=False)
    mean_real, var_real = real.mean(0), real.var(0, unbiased=False)
    return {"pad fraction": 1 - mask.float().mean().item(), SHIFT: ((mean_all - mean_real).abs() / var_real.sqrt()).mean().item(),
            RATIO: (var_all / var_real).mean().item()}


def normalize(norm: torch.nn.Module, x: Tensor) -> Tensor:
    """Apply BN to x (B, C, T) as is, LN over the channels of each token; returns (B, C, T)."""
    return norm(x) if isinstance(norm, BatchNorm1d) else norm(x.transpose(1, 2)).transpose(1, 2)


def run(ctx: LabContext) -> LabResult:
    import matplotlib.pyplot as plt

    data = load_dataset("chnsenticorp")
    train_texts = [text for text, _ in data.train][: 2000 if ctx.quick else None]
    held_out = [text for text, _ in data.dev][: 256 if ctx.quick else None]
    tokenizer = build_tokenizer("char").train(train_texts, vocab_size=6000, min_freq=2)
    train_ids = [tokenizer.encode(t)[:WINDOW] for t in train_texts]
    held_ids = [tokenizer.encode(t)[:WINDOW] for t in held_out]
    torch.manual_seed(ctx.seed)
    embedding = Embedding(tokenizer.vocab_size, CHANNELS, padding_idx=tokenizer.pad_id).requires_grad_(False)

    def embed(ids: Tensor) -> Tensor:
        return embedding(ids).transpose(1, 2)

    schemes = {"random": 0, "length-bucketed": 50}
    rows, per_batch = [], {}
    for scheme, bucket in ctx.bar(schemes.items(), desc="batching"):
        generator = torch.Generator().manual_seed(ctx.seed)
        train_batches = list(batches(train_ids, None, BATCH, tokenizer.pad_id, shuffle=True, generator=generator, bucket=bucket))
        held_batches = list(batches(held_ids, None, BATCH, tokenizer.pad_id, shuffle=True, generator=generator, bucket=bucket))
        rng = random.Random(ctx.seed)
        sentences = rng.sample(range(len(held_ids)), 8 if ctx.quick else 40)
        per_batch[scheme] = [channel_stats(embed(b["ids"]), b["mask"]) for b in train_batches]
        bn_stats = {k: sum(f[k] for f in per_batch[scheme]) / len(train_batches) for k in per_batch[scheme][0]}
        ln_stats = {"pad fraction": bn_stats["pad fraction"], SHIFT: "per token", RATIO: "per token"}
        for name, make, stats in (("BatchNorm1d", lambda: BatchNorm1d(CHANNELS), bn_stats),
                                  ("LayerNorm", lambda: LayerNorm(CHANNELS), ln_stats)):
            rows.append({"norm": name, "batching": scheme, **stats,
                         SPREAD: sentence_spread(make(), embed, held_ids, train_ids, sentences, bucket,
                                                 tokenizer.pad_id, rng, 4 if ctx.quick else 10),
                         GAP: train_eval_gap(make(), embed, train_batches, held_batches)})

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4))
    for scheme, figures in per_batch.items():
        ax1.scatter([f["pad fraction"] for f in figures], [f[RATIO] for f in figures], s=8, label=f"{scheme} batches")
    ax1.plot([0, 1], [1, 0], color="grey", linestyle=":", label="1 − pad fraction")
    ax1.set_xlabel("pad fraction of the batch")
    ax1.set_ylabel("BN σ² with pads / σ² of real tokens")
    ax1.set_title("padding pollutes BatchNorm's variance")
    ax1.legend()
    short = {"BatchNorm1d": "BN", "LayerNorm": "LN", "random": "random", "length-bucketed": "bucketed"}
    labels = [f"{short[r['norm']]}\n{short[r['batching']]}" for r in rows]
    positions = torch.arange(len(rows)).float()
    ax2.bar(positions - 0.2, [r[SPREAD] for r in rows], 0.4, label="same sentence, other batches (std)")
    ax2.bar(positions + 0.2, [r[GAP] for r in rows], 0.4, label="|train − eval| output")
    ax2.set_xticks(positions.tolist(), labels)
    ax2.set_title("output dependence on the batch and the mode")
    ax2.legend()
    ctx.save_plot(fig, "padding")

    def row(norm: str, scheme: str) -> dict:
        return next(r for r in rows if r["norm"] == norm and r["batching"] == scheme)

    bn, bn_bucket, ln = row("BatchNorm1d", "random"), row("BatchNorm1d", "length-bucketed"), row("LayerNorm", "random")
    ln_rows = [r for r in rows if r["norm"] == "LayerNorm"]
    holds = (bn["pad fraction"] > 0.3 and bn[RATIO] < 0.8
             and bn_bucket["pad fraction"] < bn["pad fraction"]
             and bn[RATIO] < bn_bucket[RATIO]
             and bn[SPREAD] > 0.01 and bn[GAP] > 0.01
             and all(r[SPREAD] < 1e-5 and r[GAP] < 1e-5 for r in ln_rows))
    summary = (f"random batches are {bn['pad fraction']:.0%} padding and BN's variance with the pads is "
               f"{bn[RATIO]:.2f}× that of the real tokens (mean shift {bn[SHIFT]:.3f} σ); bucketing cuts "
               f"padding to {bn_bucket['pad fraction']:.0%} (ratio {bn_bucket[RATIO]:.2f}); one sentence's BN "
               f"output varies by {bn[SPREAD]:.3f} (std) with its batch-mates and by "
               f"{bn[GAP]:.3f} (mean |Δ|) between train and eval mode; LayerNorm's figures are {ln[SPREAD]:.1g} and "
               f"{ln[GAP]:.1g}")
    return LabResult(rows, summary, holds, {"batch_size": BATCH, "channels": CHANNELS, "window": WINDOW,
                                            "train_texts": len(train_ids), "held_out_texts": len(held_ids)})


def sentence_spread(norm: torch.nn.Module, embed: Callable[[Tensor], Tensor], held_ids: list[list[int]],
                    pool: list[list[int]], sentences: list[int], bucket: int, pad_id: int, rng: random.Random,
                    draws: int) -> float:
    """Std, over `draws` batches of BATCH − 1 other texts, of each sentence's train-mode output on its real tokens,
    averaged over tokens, channels and sentences. With `bucket`, the batch-mates are of similar length (the
    neighbours in a length-sorted pool of `bucket` batches), else drawn at random."""
    norm.train()
    by_length = sorted(range(len(pool)), key=lambda i: len(pool[i]))
    spreads = []
    for s in sentences:
        nearest = min(range(len(by_length)), key=lambda j: abs(len(pool[by_length[j]]) - len(held_ids[s])))
        window = by_length[max(0, nearest - bucket * BATCH // 2) : nearest + bucket * BATCH // 2] if bucket else by_length
        outputs = []
        for _ in range(draws):
            mates = rng.sample(window, BATCH - 1)
            ids, lengths = pad_batch([held_ids[s], *(pool[m] for m in mates)], pad_id)
            with torch.no_grad():
                outputs.append(normalize(norm, embed(ids))[0, :, : lengths[0]])
        spreads.append(torch.stack(outputs).std(0).mean())
    return torch.stack(spreads).mean().item()


def train_eval_gap(norm: torch.nn.Module, embed: Callable[[Tensor], Tensor], train_batches: list[dict],
                   held_batches: list[dict]) -> float:
    """Mean |train-mode − eval-mode output| on the real tokens of the held-out batches, after one train-mode pass
    over the training batches has moved BN's running statistics (LN has none)."""
    with torch.no_grad():
        norm.train()
        for b in train_batches:
            normalize(norm, embed(b["ids"]))
        norm.eval()
        eval_out = [normalize(norm, embed(b["ids"])) for b in held_batches]
        norm.train()
        gaps = [(normalize(norm, embed(b["ids"])) - y).abs().transpose(1, 2)[b["mask"]].mean()
                for b, y in zip(held_batches, eval_out)]
    return torch.stack(gaps).mean().item()


LAB = Lab("norm", "BatchNorm's statistics on padded text batches include the pad positions and the other sentences "
          "of the batch, so a sentence's output depends on padding, on its batch-mates and on train vs eval mode; "
          "LayerNorm normalises each token by itself and does not.", run)
