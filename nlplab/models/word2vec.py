"""word2vec (Mikolov et al., 2013): skip-gram and CBOW trained with negative sampling, frequent words subsampled.

Two tables of shape (V, D): input vectors v (the word vectors kept, drawn from U(±0.5/D)) and output vectors u
(zeros), as in the C tool. With σ the logistic function and k noise words n_1 … n_k drawn from P_n:

    skip-gram   each centre w predicts each context word c:          h = v_w,                 target c
    CBOW        the context words c_1 … c_m predict the centre w:   h = (v_c1 + … + v_cm)/m,  target w
    ℓ = −log σ(u_target·h) − Σ_j log σ(−u_nj·h)

Gradients, written out (s = σ(u·h)):
    ∂ℓ/∂u_target = (s_target − 1)·h      ∂ℓ/∂u_nj = s_nj·h      ∂ℓ/∂h = (s_target − 1)·u_target + Σ_j s_nj·u_nj
and ∂ℓ/∂v_w = ∂ℓ/∂h (skip-gram) or ∂ℓ/∂v_ci = ∂ℓ/∂h / m (CBOW). Training is plain SGD on the rows a batch touches,
the learning rate falling linearly to lr·1e-4 over the run (the C tool's schedule).

    noise           P_n(w) ∝ count(w)^0.75
    subsampling     each occurrence of w is kept with probability min(1, √(t / f(w))), f(w) = count(w) / total
                    (Mikolov et al., 2013b: P(discard) = 1 − √(t / f))
    window          each centre draws its window b uniformly from 1 … window (nearer words count more often)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nlplab.errors import ConfigError
from nlplab.models.word_vectors import WordVectors

ALGOS = ("skipgram", "cbow")


@dataclass
class Word2VecConfig:
    """Hyper-parameters; the defaults are the C tool's (skip-gram: lr 0.025; CBOW usually takes 0.05)."""

    algo: str = "skipgram"
    dim: int = 100
    window: int = 5
    negative: int = 5
    min_count: int = 5
    max_vocab: int | None = None
    sample: float = 1e-3
    noise_power: float = 0.75
    lr: float = 0.025
    epochs: int = 5
    batch_size: int = 1024
    seed: int = 0

    def validate(self) -> None:
        checks = [(self.algo in ALGOS, f"algo must be one of {', '.join(ALGOS)}"), (self.dim >= 1, "dim must be >= 1"),
                  (self.window >= 1, "window must be >= 1"), (self.negative >= 1, "negative must be >= 1"),
                  (self.min_count >= 1, "min_count must be >= 1"), (self.sample >= 0, "sample must be >= 0 (0: keep all)"),
                  (self.lr > 0, "lr must be > 0"), (self.epochs >= 1, "epochs must be >= 1"),
                  (self.batch_size >= 1, "batch_size must be >= 1")]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"word2vec: {message}")


def negative_sampling_loss(h: Tensor, u_target: Tensor, u_noise: Tensor) -> Tensor:
    """ℓ per example: h (B, D), u_target (B, D), u_noise (B, k, D) -> (B,)."""
    positive = F.logsigmoid((u_target * h).sum(-1))
    negative = F.logsigmoid(-torch.einsum("bkd,bd->bk", u_noise, h)).sum(-1)
    return -(positive + negative)


def negative_sampling_grads(h: Tensor, u_target: Tensor, u_noise: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """ℓ (B,) and its gradients with respect to h (B, D), u_target (B, D) and u_noise (B, k, D), by the formulas
    of the module docstring."""
    score_t = (u_target * h).sum(-1)
    score_n = torch.einsum("bkd,bd->bk", u_noise, h)
    loss = -(F.logsigmoid(score_t) + F.logsigmoid(-score_n).sum(-1))
    g_t, g_n = torch.sigmoid(score_t) - 1, torch.sigmoid(score_n)
    grad_h = g_t[:, None] * u_target + torch.einsum("bk,bkd->bd", g_n, u_noise)
    return loss, grad_h, g_t[:, None] * h, g_n[..., None] * h[:, None, :]


def subsample_keep(counts: Tensor, sample: float) -> Tensor:
    """Probability of keeping each occurrence of each word: min(1, √(t / f)), f = count / total; sample 0 keeps all."""
    if sample == 0:
        return torch.ones_like(counts, dtype=torch.float64)
    freq = counts.double() / counts.sum()
    return torch.sqrt(sample / freq).clamp(max=1.0)


def noise_distribution(counts: Tensor, power: float = 0.75) -> Tensor:
    """P_n(w) = count(w)^power / Σ count^power."""
    weights = counts.double() ** power
    return weights / weights.sum()


def build_vocab(sentences: Iterable[Sequence[str]], min_count: int, max_vocab: int | None = None) -> tuple[list[str], list[int]]:
    """Words seen at least `min_count` times, most frequent first (ties by first appearance), and their counts."""
    counts = Counter(word for sentence in sentences for word in sentence)
    kept = [(w, n) for w, n in counts.most_common(max_vocab) if n >= min_count]
    if not kept:
        raise ConfigError(f"word2vec: no word occurs {min_count} times or more; lower min_count or give more text")
    return [w for w, _ in kept], [n for _, n in kept]


def skipgram_pairs(ids: Tensor, sentence: Tensor, window: Tensor, max_window: int) -> tuple[Tensor, Tensor]:
    """(centres, contexts) of every pair within a centre's window b_i and the same sentence; ids, sentence and window
    are (N,) over the token stream."""
    centres, contexts = [], []
    for d in [*range(-max_window, 0), *range(1, max_window + 1)]:
        i = torch.arange(max(0, -d), len(ids) - max(0, d))
        keep = (window[i] >= abs(d)) & (sentence[i] == sentence[i + d])
        centres.append(ids[i[keep]])
        contexts.append(ids[i[keep] + d])
    return torch.cat(centres), torch.cat(contexts)


def cbow_contexts(ids: Tensor, sentence: Tensor, window: Tensor, max_window: int) -> tuple[Tensor, Tensor, Tensor]:
    """(centres (M,), contexts (M, 2·window) padded with 0, mask (M, 2·window)) for the tokens with at least one
    context word within their window and sentence."""
    offsets = [*range(-max_window, 0), *range(1, max_window + 1)]
    pos = torch.arange(len(ids))[:, None] + torch.tensor(offsets)
    inside = (pos >= 0) & (pos < len(ids))
    pos = pos.clamp(0, len(ids) - 1)
    mask = inside & (sentence[pos] == sentence[:, None]) & (window[:, None] >= torch.tensor(offsets).abs())
    has = mask.any(1)
    return ids[has], torch.where(mask, ids[pos], 0)[has], mask[has]


class Word2Vec(nn.Module):
    """The two tables and the training of the module docstring. `words` and `counts` come from `build_vocab`."""

    def __init__(self, cfg: Word2VecConfig, words: list[str], counts: list[int]) -> None:
        super().__init__()
        cfg.validate()
        self.cfg, self.words = cfg, list(words)
        self.index = {w: i for i, w in enumerate(self.words)}
        self.register_buffer("counts", torch.tensor(counts, dtype=torch.long))
        generator = torch.Generator().manual_seed(cfg.seed)
        self.input = nn.Parameter((torch.rand(len(words), cfg.dim, generator=generator) - 0.5) / cfg.dim)
        self.output = nn.Parameter(torch.zeros(len(words), cfg.dim))

    def hidden(self, inputs: Tensor, mask: Tensor | None) -> Tensor:
        """h: v[inputs] (B, D) for skip-gram; the masked mean of v[inputs] (B, m) -> (B, D) for CBOW."""
        if mask is None:
            return self.input[inputs]
        m = mask.to(self.input.dtype)
        return (self.input[inputs] * m[..., None]).sum(1) / m.sum(1, keepdim=True)

    def loss(self, inputs: Tensor, targets: Tensor, noise: Tensor, mask: Tensor | None = None) -> Tensor:
        """Mean ℓ over a batch, differentiable by autograd: inputs (B,) centres (skip-gram) or (B, m) contexts with
        mask (B, m) (CBOW), targets (B,), noise (B, k)."""
        return negative_sampling_loss(self.hidden(inputs, mask), self.output[targets], self.output[noise]).mean()

    @torch.no_grad()
    def table_grads(self, inputs: Tensor, targets: Tensor, noise: Tensor,
                    mask: Tensor | None = None) -> tuple[Tensor, tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
        """Mean ℓ and the gradients of `loss` as (rows, values) per table, for index_add: duplicated rows sum."""
        loss, grad_h, grad_t, grad_n = negative_sampling_grads(self.hidden(inputs, mask), self.output[targets], self.output[noise])
        scale = 1.0 / len(targets)
        out_rows = torch.cat([targets, noise.flatten()])
        out_vals = torch.cat([grad_t, grad_n.flatten(0, 1)]) * scale
        if mask is None:
            return loss.mean(), (inputs, grad_h * scale), (out_rows, out_vals)
        m = mask.to(grad_h.dtype)
        in_vals = (grad_h * scale / m.sum(1, keepdim=True))[:, None, :] * m[..., None]
        return loss.mean(), (inputs[mask], in_vals[mask]), (out_rows, out_vals)

    @torch.no_grad()
    def sgd_step(self, inputs: Tensor, targets: Tensor, noise: Tensor, mask: Tensor | None, lr: float) -> float:
        """One SGD step on the summed (not mean) loss of the batch, as the C tool updates per pair; returns mean ℓ."""
        loss, grad_in, grad_out = self.table_grads(inputs, targets, noise, mask)
        self.apply_grads(grad_in, grad_out, lr * len(targets))
        return float(loss)

    @torch.no_grad()
    def apply_grads(self, grad_in: tuple[Tensor, Tensor], grad_out: tuple[Tensor, Tensor], lr: float) -> None:
        """v[rows] -= lr · values and u[rows] -= lr · values, for the (rows, values) pairs `table_grads` gives."""
        for table, (rows, values) in ((self.input, grad_in), (self.output, grad_out)):
            table.index_add_(0, rows, values.to(table.dtype), alpha=-lr)

    def encode(self, sentences: Iterable[Sequence[str]]) -> tuple[Tensor, Tensor]:
        """The stream of in-vocabulary word ids (N,) and the sentence each comes from (N,); unknown words are dropped."""
        ids, sentence = [], []
        for s, words in enumerate(sentences):
            row = [self.index[w] for w in words if w in self.index]
            ids.extend(row)
            sentence.extend([s] * len(row))
        return torch.tensor(ids, dtype=torch.long), torch.tensor(sentence, dtype=torch.long)

    def epoch_examples(self, ids: Tensor, sentence: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor | None]:
        """One epoch's examples in random order: subsample the stream, draw each centre's window, pair up;
        returns (inputs, targets, mask or None) as `loss` takes them."""
        cfg = self.cfg
        keep = torch.rand(len(ids), generator=generator, dtype=torch.float64) < subsample_keep(self.counts.cpu(), cfg.sample)[ids]
        ids, sentence = ids[keep], sentence[keep]
        window = torch.randint(1, cfg.window + 1, (len(ids),), generator=generator)
        if cfg.algo == "skipgram":
            inputs, targets = skipgram_pairs(ids, sentence, window, cfg.window)
            mask = None
        else:
            targets, inputs, mask = cbow_contexts(ids, sentence, window, cfg.window)
        order = torch.randperm(len(targets), generator=generator)
        return inputs[order], targets[order], None if mask is None else mask[order]

    def train_epoch(self, ids: Tensor, sentence: Tensor, epoch: int) -> dict[str, float]:
        """Epoch `epoch` (1, 2, …) over the stream `encode` gives; its randomness comes from a generator seeded
        with (seed, epoch) alone, so a run resumed after any epoch continues as if never stopped."""
        cfg = self.cfg
        generator = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch)
        noise_p = noise_distribution(self.counts, cfg.noise_power)
        inputs, targets, mask = self.epoch_examples(ids, sentence, generator)
        loss_sum = 0.0
        for start in range(0, len(targets), cfg.batch_size):
            rows = slice(start, start + cfg.batch_size)
            n = len(targets[rows])
            noise = torch.multinomial(noise_p, n * cfg.negative, replacement=True, generator=generator).view(n, -1)
            progress = (epoch - 1 + start / len(targets)) / cfg.epochs
            lr = cfg.lr * max(1e-4, 1 - progress)
            loss_sum += n * self.sgd_step(inputs[rows], targets[rows], noise, None if mask is None else mask[rows], lr)
        return {"epoch": epoch, "loss": loss_sum / max(1, len(targets)), "examples": len(targets)}

    def fit(self, sentences: Sequence[Sequence[str]],
            on_epoch_end: Callable[[int, dict[str, float]], None] | None = None) -> list[dict[str, float]]:
        """Train for cfg.epochs over `sentences` (lists of words); returns one row per epoch (mean ℓ, examples)."""
        ids, sentence = self.encode(sentences)
        history = []
        for epoch in range(1, self.cfg.epochs + 1):
            history.append(self.train_epoch(ids, sentence, epoch))
            if on_epoch_end is not None:
                on_epoch_end(epoch, history[-1])
        return history

    def vectors(self) -> WordVectors:
        """The input vectors as WordVectors."""
        return WordVectors(list(self.words), self.input.detach().clone())


def train_word2vec(sentences: Sequence[Sequence[str]], cfg: Word2VecConfig) -> tuple[Word2Vec, list[dict[str, float]]]:
    """Build the vocabulary of `sentences`, train a Word2Vec on them and return it with its history."""
    words, counts = build_vocab(sentences, cfg.min_count, cfg.max_vocab)
    model = Word2Vec(cfg, words, counts)
    return model, model.fit(sentences)

