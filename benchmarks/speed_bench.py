"""Training speed of nlplab's classifiers against the same architectures written in plain torch.nn.

For each model (lstm, textcnn, bow) three versions train side by side on identical batches of ChnSentiCorp:
nlplab's `TextClassifier` with impl="fused" (the default), the same with impl="manual" (hand-written layers,
loss and Adam), and `Plain*` below, written with torch.nn only. All start from the same weights (checked: equal
logits in eval mode). A step is forward + cross-entropy + backward + clip_grad_norm_(1.0) + Adam step, as in
`nlplab.train.trainer` (classification). The versions take turns step by step (A B C on one batch, B C A on the next, ...), so
machine noise hits all of them alike; a round is `--steps` batches, the figure is the median over rounds of
samples/s, and the ratio is the ratio of those medians, nlplab / plain.

    python benchmarks/speed_bench.py                      # lstm textcnn bow, 7 rounds of 8 steps, 1 thread
    python benchmarks/speed_bench.py --models lstm --steps 5 --rounds 3 --out /tmp/speed
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from common import git_commit, machine, write_result
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from nlplab.data import load_dataset
from nlplab.data.batching import Batch, batches
from nlplab.models.classifier import ClassifierConfig, TextClassifier
from nlplab.optim import build_optimizer
from nlplab.text import CharTokenizer
from nlplab.train.classify import encode_texts, label_ids
from nlplab.train.config import TrainConfig

MODELS = ("lstm", "textcnn", "bow")
VERSIONS = ("nlplab-fused", "nlplab-manual", "plain-torch")


class PlainConv(nn.Module):
    """Conv1d per width, relu, max over the windows inside each sequence; (B, T, E), (B, T) -> (B, F·widths)."""

    def __init__(self, embed_dim: int, num_filters: int, widths: tuple[int, ...]) -> None:
        super().__init__()
        self.widths = widths
        self.convs = nn.ModuleList(nn.Conv1d(embed_dim, num_filters, k) for k in widths)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        x = x.masked_fill(~mask.unsqueeze(-1), 0.0).transpose(1, 2)
        x = F.pad(x, (0, max(0, max(self.widths) - x.shape[-1])))
        lengths = mask.sum(1, keepdim=True)
        pooled = []
        for conv, k in zip(self.convs, self.widths):
            h = torch.relu(conv(x))  # (B, F, T-k+1)
            inside = torch.arange(h.shape[-1]) <= (lengths - k).clamp(min=0)
            pooled.append(h.masked_fill(~inside.unsqueeze(1), float("-inf")).amax(-1))
        return torch.cat(pooled, dim=1)


class PlainClassifier(nn.Module):
    """nlplab's classifier architectures in plain torch.nn, with the same parameter names:
    Embedding(padding_idx) -> Dropout -> encoder -> Dropout -> Linear, cross-entropy loss."""

    def __init__(self, cfg: ClassifierConfig) -> None:
        super().__init__()
        self.model = cfg.model
        self.embedding = nn.Embedding(cfg.vocab_size, cfg.embed_dim, padding_idx=cfg.pad_id)
        if cfg.model == "lstm":
            self.encoder = nn.LSTM(cfg.embed_dim, cfg.hidden_size, batch_first=True, bidirectional=True)
            out_dim = 2 * cfg.hidden_size
        elif cfg.model == "textcnn":
            self.encoder = PlainConv(cfg.embed_dim, cfg.num_filters, tuple(cfg.kernel_sizes))
            out_dim = cfg.num_filters * len(cfg.kernel_sizes)
        else:
            self.encoder = nn.Sequential(nn.Linear(cfg.embed_dim, cfg.hidden_size), nn.ReLU())
            out_dim = cfg.hidden_size
        self.dropout = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(out_dim, cfg.num_classes)

    def forward(self, batch: Batch) -> tuple[Tensor, Tensor]:
        ids, mask, lengths = batch["ids"], batch["mask"], batch["lengths"]
        x = self.dropout(self.embedding(ids))
        if self.model == "lstm":
            packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
            out, _ = pad_packed_sequence(self.encoder(packed)[0], batch_first=True, total_length=ids.shape[1])
            h = out.masked_fill(~mask.unsqueeze(-1), float("-inf")).amax(1)
        elif self.model == "textcnn":
            h = self.encoder(x, mask)
        else:
            h = self.encoder((x * mask.unsqueeze(-1)).sum(1) / lengths.unsqueeze(-1))
        logits = self.head(self.dropout(h))
        return F.cross_entropy(logits, batch["labels"]), logits


def load_batches(cfg: TrainConfig, count: int, seed: int) -> tuple[list[Batch], int, int]:
    """`count` shuffled training batches of ChnSentiCorp, char-tokenized as `nlplab train` does; also the
    vocabulary size and the pad id."""
    data = load_dataset("chnsenticorp")
    tokenizer = CharTokenizer().train((t for t, _ in data.train), vocab_size=cfg.vocab_size, min_freq=cfg.min_freq)
    ids, _ = encode_texts(tokenizer, (t for t, _ in data.train), cfg.window_size)
    labels = label_ids(data.train, data.labels, "chnsenticorp (train)")
    order = torch.Generator().manual_seed(seed)
    stream = batches(ids, labels, cfg.batch_size, tokenizer.pad_id, shuffle=True, generator=order)
    chosen = [b for _, b in zip(range(count), stream)]
    return chosen, tokenizer.vocab_size, tokenizer.pad_id


def build_versions(cfg: TrainConfig, vocab_size: int, pad_id: int, probe: Batch) -> dict[str, Callable[[Batch], None]]:
    """One training step function per version, all three models starting from the same weights."""
    model_cfg = ClassifierConfig(model=cfg.model, vocab_size=vocab_size, num_classes=2, embed_dim=cfg.embed_dim,
                                 hidden_size=cfg.hidden_size, layers=cfg.layers, dropout=cfg.dropout,
                                 num_filters=cfg.num_filters, kernel_sizes=tuple(cfg.kernel_sizes),
                                 activation=cfg.activation, pad_id=pad_id)
    torch.manual_seed(cfg.seed)
    fused = TextClassifier(model_cfg)
    manual = TextClassifier(dataclasses.replace(model_cfg, impl="manual"))
    plain = PlainClassifier(model_cfg)
    manual.load_state_dict(fused.state_dict())
    plain.load_state_dict(fused.state_dict())
    with torch.no_grad():
        reference = fused.eval()(probe)[1]
        for other in (manual, plain):
            torch.testing.assert_close(other.eval()(probe)[1], reference, rtol=1e-4, atol=1e-4)
    optimizers = {"nlplab-fused": build_optimizer(cfg.optimizer, fused.parameters(), lr=cfg.lr, impl="fused"),
                  "nlplab-manual": build_optimizer(cfg.optimizer, manual.parameters(), lr=cfg.lr, impl="manual"),
                  "plain-torch": torch.optim.Adam(plain.parameters(), lr=cfg.lr)}
    models = {"nlplab-fused": fused, "nlplab-manual": manual, "plain-torch": plain}
    return {name: make_step(models[name].train(), optimizers[name], cfg.grad_clip) for name in VERSIONS}


def make_step(model: nn.Module, optimizer: torch.optim.Optimizer, clip: float | None) -> Callable[[Batch], None]:
    """The training step of `nlplab.train.trainer` (classification): forward, backward, gradient clipping, optimizer step."""
    def step(batch: Batch) -> None:
        loss, _ = model(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if clip:
            nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
    return step


def bench_model(cfg: TrainConfig, data: list[Batch], vocab_size: int, pad_id: int, steps: int, rounds: int,
                warmup: int) -> dict[str, object]:
    """Median samples/s of each version over `rounds` rounds of `steps` batches, each batch trained on by every
    version in turn (the order rotating from batch to batch)."""
    versions = build_versions(cfg, vocab_size, pad_id, data[0])
    for step in versions.values():
        for batch in data[:warmup]:
            step(batch)
    speeds: dict[str, list[float]] = {name: [] for name in versions}
    samples = sum(len(b["labels"]) for b in data[:steps])
    for r in range(rounds):
        seconds = dict.fromkeys(VERSIONS, 0.0)
        for i, batch in enumerate(data[:steps]):
            first = (r * steps + i) % len(VERSIONS)
            for name in VERSIONS[first:] + VERSIONS[:first]:
                t0 = time.perf_counter()
                versions[name](batch)
                seconds[name] += time.perf_counter() - t0
        for name in VERSIONS:
            speeds[name].append(samples / seconds[name])
    median = {name: statistics.median(s) for name, s in speeds.items()}
    plain = median["plain-torch"]
    return {"samples_per_second": median, "rounds": speeds,
            "ratio_fused_over_plain": median["nlplab-fused"] / plain,
            "ratio_manual_over_plain": median["nlplab-manual"] / plain}


HEADER = ("| model | plain torch.nn (samples/s) | nlplab fused (samples/s) | nlplab manual (samples/s) "
          "| fused / plain | manual / plain |\n|---|---:|---:|---:|---:|---:|")


def table_row(model: str, r: dict[str, object]) -> str:
    s = r["samples_per_second"]
    return (f"| {model} | {s['plain-torch']:.1f} | {s['nlplab-fused']:.1f} | {s['nlplab-manual']:.1f} "
            f"| {r['ratio_fused_over_plain']:.3f} | {r['ratio_manual_over_plain']:.3f} |")


def markdown(result: dict[str, object]) -> str:
    m, load = result["machine"], result["load_average_1min"]
    setup = (f"{m['cpu']}, {m['cores']} cores, {result['threads']} torch thread(s), torch {m['torch']}; "
             f"batch {result['batch_size']}, window {result['window_size']}; median of {result['rounds']} rounds of "
             f"{result['steps']} steps, the versions taking turns step by step; wall time "
             f"{result['wall_seconds']:.0f} s; 1-min load average {load['start']:.1f} at start, {load['end']:.1f} "
             "at end (the machine is shared with other jobs).")
    rows = [table_row(model, r) for model, r in result["models"].items()]
    return "\n".join([f"# Training speed: nlplab vs plain torch.nn ({result['date'][:10]})", "",
                      f"`{result['command']}`", "", setup, "", HEADER, *rows]) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--steps", type=int, default=8, help="training steps per version per round")
    parser.add_argument("--rounds", type=int, default=7, help="rounds of --steps batches; the median is reported")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per version before the rounds")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (the same for all versions)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results",
                        help="folder for speed.json and speed.md")
    args = parser.parse_args(argv)
    command = " ".join(["python", "benchmarks/speed_bench.py", *(sys.argv[1:] if argv is None else argv)])

    torch.set_num_threads(args.threads)
    start, load_start = time.perf_counter(), os.getloadavg()[0]
    cfg = TrainConfig()
    data, vocab_size, pad_id = load_batches(cfg, max(args.steps, args.warmup), cfg.seed)
    print(HEADER, flush=True)
    results = {}
    for model in args.models:
        results[model] = bench_model(TrainConfig(model=model), data, vocab_size, pad_id, args.steps, args.rounds,
                                     args.warmup)
        print(table_row(model, results[model]), flush=True)
    result = {"command": command, "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "commit": git_commit(), "machine": machine(), "threads": args.threads,
              "load_average_1min": {"start": load_start, "end": os.getloadavg()[0]},
              "data": "chnsenticorp train, char tokenizer", "batch_size": cfg.batch_size,
              "window_size": cfg.window_size, "embed_dim": cfg.embed_dim, "hidden_size": cfg.hidden_size,
              "steps": args.steps, "rounds": args.rounds, "warmup": args.warmup,
              "wall_seconds": time.perf_counter() - start, "models": results}
    write_result("speed", result, markdown(result), args.out)


if __name__ == "__main__":
    main()
