"""The five-step recipe as code: choose a model, collect labelled data, forward, backward, use the model.

`train(cfg, out)` runs it and leaves a run directory:
    config.yaml  model.json  labels.json  tokenizer/  model.safetensors  metrics.json  history.jsonl  curves.png
plus checkpoint.safetensors after every epoch, from which `resume=True` continues an interrupted run to
exactly the metrics an uninterrupted one reaches (per-epoch seeds make data order and dropout replayable).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from tqdm.auto import tqdm

from nlplab.data.batching import batches, num_batches
from nlplab.data.readers import Example
from nlplab.data.registry import TextDataset, load_dataset
from nlplab.errors import ConfigError, DataError, RunError
from nlplab.io import atomic_write_text, read_json_object
from nlplab.models.classifier import ClassifierConfig, TextClassifier
from nlplab.models.encoder import BertConfig, BertEncoder, pretrained_folder
from nlplab.optim import EarlyStopping, build_optimizer, build_scheduler, l1_penalty, l2_penalty
from nlplab.text import Tokenizer, build_tokenizer, load_tokenizer
from nlplab.text.base import PAD
from nlplab.train.checkpoint import load_state, load_weights, save_state, save_weights
from nlplab.train.config import TrainConfig, load_config
from nlplab.train.curves import plot_history
from nlplab.train.metrics import classification_report

CHECKPOINT = "checkpoint.safetensors"


def resolve_device(name: str) -> torch.device:
    """`auto` -> CUDA when available, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RunError("--device cuda asked for, but no CUDA device is available; use --device cpu or auto")
    return torch.device(name)


def encode_texts(tokenizer: Tokenizer, examples: list[Example], window_size: int) -> list[list[int]]:
    """Token ids of each text, truncated to `window_size`."""
    return [tokenizer.encode(text)[:window_size] for text, _ in examples]


def label_ids(examples: list[Example], labels: list[str], source: str) -> list[int]:
    """Map label names to ids; a label the model does not know is an error naming it."""
    index = {name: i for i, name in enumerate(labels)}
    out = []
    for row, (_, label) in enumerate(examples, start=1):
        if label not in index:
            raise DataError(f"label {label!r} of example {row} is not among the training labels ({', '.join(labels)}); "
                            "every class needs training examples", source)
        out.append(index[label])
    return out


@dataclass
class Run:
    """A trained run loaded back for use: config, tokenizer, labels and model (in eval mode)."""

    cfg: TrainConfig
    tokenizer: Tokenizer
    labels: list[str]
    model: TextClassifier
    device: torch.device

    @classmethod
    def load(cls, run_dir: str | Path, device: str = "auto") -> Run:
        run_dir = Path(run_dir)
        if not (run_dir / "config.yaml").is_file():
            raise RunError(f"{run_dir}: not a run directory (no config.yaml); pass the --out folder of `nlplab train`")
        cfg = load_config(run_dir / "config.yaml", {})
        fix = "the run is incomplete; train it again or finish it with --resume"
        model_cfg = read_json_object(run_dir / "model.json", RunError, fix)
        model_cfg["kernel_sizes"] = tuple(model_cfg["kernel_sizes"])
        labels = read_json_object(run_dir / "labels.json", RunError, fix)["labels"]
        dev = resolve_device(device)
        model = load_weights(run_dir / "model.safetensors", TextClassifier(ClassifierConfig(**model_cfg))).to(dev).eval()
        return cls(cfg, load_tokenizer(run_dir / "tokenizer"), labels, model, dev)

    def probabilities(self, texts: list[str], batch_size: int = 256) -> torch.Tensor:
        """Class probabilities (N, C) for raw texts."""
        ids = encode_texts(self.tokenizer, [(t, "") for t in texts], self.cfg.window_size)
        _, probs = evaluate(self.model, ids, None, batch_size, self.tokenizer.pad_id, self.device)
        return probs

    @torch.no_grad()
    def embeddings(self, texts: list[str], batch_size: int = 256) -> torch.Tensor:
        """Unit-length sentence vectors (N, D): the model's pooled encoding of each text, before its head."""
        ids = encode_texts(self.tokenizer, [(t, "") for t in texts], self.cfg.window_size)
        vectors = []
        for batch in batches(ids, None, batch_size, self.tokenizer.pad_id):
            batch = to_device(batch, self.device)
            vectors.append(self.model.encode(batch["ids"], batch["mask"], batch["lengths"]).float().cpu())
        return torch.nn.functional.normalize(torch.cat(vectors), dim=-1)

    def evaluate(self, examples: list[Example], source: str) -> dict[str, Any]:
        """classification_report of the model on labelled `examples`."""
        ids = encode_texts(self.tokenizer, examples, self.cfg.window_size)
        y = label_ids(examples, self.labels, source)
        loss, probs = evaluate(self.model, ids, y, 256, self.tokenizer.pad_id, self.device)
        return {"loss": loss, **report(y, probs, self.labels)}


def report(y: list[int], probs: torch.Tensor, labels: list[str]) -> dict[str, Any]:
    return classification_report(y, probs.argmax(-1), len(labels), probs=probs, labels=labels)


@torch.no_grad()
def evaluate(model: TextClassifier, ids: list[list[int]], y: list[int] | None, batch_size: int, pad_id: int,
             device: torch.device) -> tuple[float, torch.Tensor]:
    """Mean loss (nan without labels) and probabilities (N, C) of `model` over a data set, in eval mode."""
    was_training = model.training
    model.eval()
    total, probs = 0.0, torch.zeros(len(ids), model.cfg.num_classes)
    for batch in batches(ids, y, batch_size, pad_id, bucket=len(ids)):
        with autocast(device):
            loss, logits = model(to_device(batch, device))
        if loss is not None:
            total += loss.item() * len(batch["ids"])
        probs[batch["rows"]] = torch.softmax(logits.float(), -1).cpu()
    model.train(was_training)
    return (total / len(ids) if y is not None else float("nan")), probs


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    # lengths stay on the CPU (packed RNN sequences need them there), and so do the row indices
    return {k: v if k in ("lengths", "rows") else v.to(device, non_blocking=True) for k, v in batch.items()}


def autocast(device: torch.device) -> torch.autocast:
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def prepare(cfg: TrainConfig, run_dir: Path, resume: bool) -> tuple[TextDataset, Tokenizer]:
    """Load the data and the tokenizer: a saved one (the run's own on resume, the pretrained encoder's with
    `--init-from`, or `--tokenizer DIR`), else train one on the training texts."""
    data = load_dataset(cfg.data, cfg.dev)
    if resume and (run_dir / "tokenizer").is_dir():
        return data, load_tokenizer(run_dir / "tokenizer")
    if cfg.init_from is not None:
        return data, load_tokenizer(pretrained_folder(cfg.init_from))
    if Path(cfg.tokenizer).exists():
        return data, load_tokenizer(cfg.tokenizer)
    tok = build_tokenizer(cfg.tokenizer).train((t for t, _ in data.train), vocab_size=cfg.vocab_size, min_freq=cfg.min_freq)
    return data, tok


def transformer_shape(cfg: TrainConfig, tokenizer: Tokenizer, pretrained: BertEncoder | None) -> dict[str, Any] | None:
    """BertConfig fields of the `transformer` classifier: the pretrained encoder's, or a small encoder sized by the
    config (hidden_size, layers, heads, a 4x feed-forward, one position per window slot)."""
    if cfg.model != "transformer":
        return None
    if pretrained is not None:
        shape = asdict(pretrained.cfg)
        if cfg.window_size > shape["max_position_embeddings"]:
            raise ConfigError(f"window_size {cfg.window_size} exceeds the {shape['max_position_embeddings']} positions of "
                              f"{cfg.init_from}; use --window-size {shape['max_position_embeddings']} or less")
    else:
        if cfg.hidden_size % cfg.heads:
            raise ConfigError(f"hidden_size {cfg.hidden_size} must be divisible by heads {cfg.heads}")
        shape = asdict(BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=cfg.hidden_size, num_layers=cfg.layers,
                                  num_heads=cfg.heads, intermediate_size=4 * cfg.hidden_size, max_position_embeddings=cfg.window_size,
                                  dropout=cfg.dropout, pad_token_id=tokenizer.vocab.get(PAD)))
    shape.pop("impl")
    return shape


def train(cfg: TrainConfig, out: str | Path, resume: bool = False,
          on_epoch_end: Callable[[int, dict[str, Any]], None] | None = None, progress: bool | None = None) -> dict[str, Any]:
    """Train a classifier as `cfg` says into run directory `out`; returns the final metrics."""
    run_dir = Path(out)
    checkpoint_path = run_dir / CHECKPOINT
    if resume and not checkpoint_path.is_file():
        raise RunError(f"{run_dir}: nothing to resume (no {CHECKPOINT}); run without --resume")
    if not resume and (run_dir / "config.yaml").exists():
        raise RunError(f"{run_dir}: already holds a run; continue it with --resume or choose another --out")
    device = resolve_device(cfg.device)
    data, tokenizer = prepare(cfg, run_dir, resume)
    labels = data.labels
    splits = {name: (encode_texts(tokenizer, data.split(name), cfg.window_size), label_ids(data.split(name), labels, f"{cfg.data} ({name})"))
              for name in ("train", "dev", "test") if name != "test" or data.test is not data.dev}
    splits.setdefault("test", splits["dev"])

    torch.manual_seed(cfg.seed)
    pretrained = BertEncoder.from_pretrained(pretrained_folder(cfg.init_from)) if cfg.init_from is not None and not resume else None
    model_cfg = ClassifierConfig(
        model=cfg.model, vocab_size=tokenizer.vocab_size, num_classes=len(labels), embed_dim=cfg.embed_dim,
        hidden_size=cfg.hidden_size, layers=cfg.layers, dropout=cfg.dropout, num_filters=cfg.num_filters,
        kernel_sizes=tuple(cfg.kernel_sizes), activation=cfg.activation, pad_id=tokenizer.vocab.get(PAD), impl=cfg.impl,
        ngrams=cfg.ngrams, ngram_buckets=cfg.ngram_buckets, bert=transformer_shape(cfg, tokenizer, pretrained))
    model = TextClassifier(model_cfg)
    if pretrained is not None:
        model.encoder.load_state_dict(pretrained.state_dict())
    model = model.to(device)
    steps_per_epoch = num_batches(len(splits["train"][0]), cfg.batch_size)
    optimizer = build_optimizer(cfg.optimizer, model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                                momentum=cfg.momentum, impl=cfg.impl)
    scheduler = build_scheduler(cfg.schedule, optimizer, total_steps=cfg.epochs * steps_per_epoch,
                                warmup_steps=cfg.warmup_steps, step_size=steps_per_epoch)
    stopper = EarlyStopping(patience=cfg.early_stop or cfg.epochs, mode="max")
    history: list[dict[str, Any]] = []
    start_epoch = 1

    if resume:
        state = load_state(checkpoint_path)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        stopper.load_state_dict(state["early_stopping"])
        history, start_epoch = state["history"], state["epoch"] + 1
    else:
        run_dir.mkdir(parents=True, exist_ok=True)
        tokenizer.save(run_dir / "tokenizer")
        atomic_write_text(run_dir / "labels.json", json.dumps({"labels": labels}, ensure_ascii=False))
        atomic_write_text(run_dir / "model.json", json.dumps(asdict(model_cfg)))
        atomic_write_text(run_dir / "config.yaml", yaml.safe_dump(cfg.to_dict(), allow_unicode=True, sort_keys=False))

    weights = [p for p in model.parameters() if p.dim() > 1]
    train_ids, train_y = splits["train"]
    stopped = bool(history) and stopper.bad_epochs >= stopper.patience
    for epoch in range(start_epoch, cfg.epochs + 1):
        if stopped:
            break
        model.train()
        torch.manual_seed(cfg.seed * 1_000_003 + epoch)
        order = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch)
        t0, seen, loss_sum, correct = time.perf_counter(), 0, 0.0, 0
        bar = tqdm(batches(train_ids, train_y, cfg.batch_size, tokenizer.pad_id, shuffle=True, generator=order, bucket=cfg.bucket),
                   total=steps_per_epoch, desc=f"epoch {epoch}/{cfg.epochs}", disable=not progress if progress is not None else None, leave=False)
        for batch in bar:
            batch = to_device(batch, device)
            with autocast(device):
                loss, logits = model(batch)
            objective = loss
            if cfg.l1:
                objective = objective + l1_penalty(weights, cfg.l1)
            if cfg.l2:
                objective = objective + l2_penalty(weights, cfg.l2)
            optimizer.zero_grad(set_to_none=True)
            objective.backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            scheduler.step()
            n = len(batch["labels"])
            seen += n
            loss_sum += loss.item() * n
            correct += (logits.argmax(-1) == batch["labels"]).sum().item()
            bar.set_postfix(loss=f"{loss_sum / seen:.4f}")
        seconds = time.perf_counter() - t0
        val_loss, val_probs = evaluate(model, *splits["dev"], 256, tokenizer.pad_id, device)
        val = report(splits["dev"][1], val_probs, labels)
        row = {"epoch": epoch, "train_loss": loss_sum / seen, "train_accuracy": correct / seen, "val_loss": val_loss,
               "val_accuracy": val["accuracy"], "val_macro_f1": val["macro_f1"], "lr": optimizer.param_groups[0]["lr"],
               "seconds": seconds, "samples_per_second": seen / seconds}
        history.append(row)
        stopped = stopper.step(val[cfg.metric], model)
        save_state(checkpoint_path, {"epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                     "scheduler": scheduler.state_dict(), "early_stopping": stopper.state_dict(), "history": history})
        atomic_write_text(run_dir / "history.jsonl", "".join(json.dumps(h) + "\n" for h in history))
        print(f"epoch {epoch}: train loss {row['train_loss']:.4f} acc {row['train_accuracy']:.4f} | "
              f"val loss {val_loss:.4f} acc {val['accuracy']:.4f} macro-F1 {val['macro_f1']:.4f} | {seconds:.1f}s", flush=True)
        if on_epoch_end is not None:
            on_epoch_end(epoch, row)

    stopper.restore(model)
    save_weights(run_dir / "model.safetensors", model)
    dev_loss, dev_probs = evaluate(model, *splits["dev"], 256, tokenizer.pad_id, device)
    test_loss, test_probs = ((dev_loss, dev_probs) if splits["test"] is splits["dev"]
                             else evaluate(model, *splits["test"], 256, tokenizer.pad_id, device))
    metrics = {
        "data": cfg.data, "notes": data.notes, "best_epoch": stopper.best_epoch, "epochs_run": len(history),
        "train_seconds": sum(h["seconds"] for h in history),
        "dev": {"loss": dev_loss, **report(splits["dev"][1], dev_probs, labels)},
        "test": {"loss": test_loss, **report(splits["test"][1], test_probs, labels)},
    }
    atomic_write_text(run_dir / "metrics.json", json.dumps(metrics, ensure_ascii=False, indent=2))
    plot_history(history, run_dir / "curves.png", metric=cfg.metric)
    return metrics
