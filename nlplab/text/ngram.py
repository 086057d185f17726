"""The n-gram language model (orders 1-5) with add-k or interpolated Kneser-Ney smoothing.

A sentence w_1..w_T is padded as <s>^(n-1) w_1..w_T </s> and scored by the chain rule under the Markov
assumption, p(sentence) = prod_{i=1}^{T+1} p(w_i | w_{i-n+1}..w_{i-1}). Perplexity is
PPL = exp(-(1/N) * sum log p(w_i | h_i)) over all N predicted tokens (each sentence's </s> included),
so the sentence with the higher probability per token has the lower perplexity.

The vocabulary V is every training token plus </s> and <unk> (<s> only ever appears as context);
a token outside V is read as <unk>.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from nlplab.errors import ConfigError, DataError
from nlplab.io import atomic_write_text, read_json_object

BOS, EOS, UNK = "<s>", "</s>", "<unk>"
SMOOTHINGS = ("kneser_ney", "add_k")
MAX_ORDER = 5
FORMAT = "nlplab-ngram"

Gram = tuple[str, ...]
# context -> (count of each next token, total of those counts, number of distinct next tokens)
Table = dict[Gram, tuple[dict[str, int], int, int]]
EMPTY_ROW: tuple[dict[str, int], int, int] = ({}, 0, 0)


class ScoredSentence(NamedTuple):
    """One sentence's score: `index` into the scored list, natural-log probability, perplexity."""

    index: int
    logprob: float
    perplexity: float


class NGramLM:
    """An n-gram language model p(w | h), h the n-1 tokens before w.

    add_k:      p(w | h) = (c(h w) + k) / (c(h) + k |V|),  c(h) = sum_w c(h w); an unseen h gives 1/|V|.

    kneser_ney (interpolated, Chen & Goodman 1998, one discount 0 < D <= 1), from the highest order down:
        p_n(w | h) = max(c(h w) - D, 0) / c(h) + lambda(h) p_{n-1}(w | h'),   lambda(h) = D N1+(h .) / c(h)
    where h' drops the oldest token of h and N1+(h .) is the number of distinct w with c(h w) > 0.
    Each lower order m < n replaces the count by the continuation count c_m(g) = N1+(. g), the number of
    distinct tokens seen before the m-gram g, so a token is likely in proportion to how many contexts it
    follows. The unigram order interpolates with the uniform distribution 1/|V|, so unseen tokens get mass;
    a context never seen (c(h) = 0) backs off fully: p_m(w | h) = p_{m-1}(w | h').
    """

    def __init__(self, order: int = 3, smoothing: str = "kneser_ney", k: float = 1.0, discount: float = 0.75) -> None:
        if not isinstance(order, int) or not 1 <= order <= MAX_ORDER:
            raise ConfigError(f"n-gram order must be an integer from 1 to {MAX_ORDER}, got {order!r}")
        if smoothing not in SMOOTHINGS:
            raise ConfigError(f"unknown n-gram smoothing {smoothing!r}; choose one of {', '.join(SMOOTHINGS)}")
        if not k > 0:
            raise ConfigError(f"add-k smoothing needs k > 0, got {k!r}")
        if not 0 < discount <= 1:
            raise ConfigError(f"Kneser-Ney discount must be in (0, 1], got {discount!r}")
        self.order, self.smoothing, self.k, self.discount = order, smoothing, float(k), float(discount)
        self.vocab: list[str] = []
        self.counts: dict[Gram, int] = {}
        self._known: set[str] = set()
        self._tables: dict[int, Table] = {}

    def fit(self, sentences: Iterable[Sequence[str]]) -> NGramLM:
        """Count the n-grams of the padded `sentences` (each a sequence of tokens) and build the model."""
        counts: Counter[Gram] = Counter()
        seen: set[str] = set()
        n = self.order
        for line, sentence in enumerate(sentences, 1):
            tokens = list(sentence)
            if BOS in tokens or EOS in tokens:
                raise DataError(f"sentence {line} holds the reserved token {BOS!r} or {EOS!r}; remove it, the model adds them itself")
            seen.update(tokens)
            padded = [BOS] * (n - 1) + tokens + [EOS]
            counts.update(tuple(padded[i - n + 1 : i + 1]) for i in range(n - 1, len(padded)))
        if not counts:
            raise DataError("no sentences to train the n-gram model on; pass a non-empty corpus")
        self._build(sorted(seen - {UNK}) + [EOS, UNK], counts)
        return self

    def _build(self, vocab: list[str], counts: dict[Gram, int]) -> None:
        """Index the n-gram `counts` by context, and for Kneser-Ney each lower order's continuation counts."""
        self.vocab, self.counts = vocab, dict(counts)
        self._known = set(vocab) | {BOS}
        self._tables = {}
        grams: dict[Gram, int] = self.counts
        for m in range(self.order, 0, -1):
            rows: dict[Gram, dict[str, int]] = {}
            for gram, c in grams.items():
                rows.setdefault(gram[:-1], {})[gram[-1]] = c
            self._tables[m] = {h: (row, sum(row.values()), len(row)) for h, row in rows.items()}
            if self.smoothing == "add_k":
                break
            grams = Counter(gram[1:] for gram in grams)  # N1+(. g): the keys are distinct, so this counts predecessors

    def _context(self, context: Sequence[str]) -> Gram:
        """The last n-1 tokens of `context`, unknown ones as <unk>, left-padded with <s> (start of sentence)."""
        if not self.vocab:
            raise ConfigError("the n-gram model is not trained; call fit(sentences) or load(path) first")
        width = self.order - 1
        tokens = [t if t in self._known else UNK for t in list(context)[-width:]] if width else []
        return (BOS,) * (width - len(tokens)) + tuple(tokens)

    def prob(self, token: str, context: Sequence[str] = ()) -> float:
        """p(token | context): the probability that `token` follows the tokens `context` (see the class doc)."""
        h = self._context(context)
        w = token if token in self._known and token != BOS else UNK
        if self.smoothing == "add_k":
            row, total, _ = self._tables[self.order].get(h, EMPTY_ROW)
            return (row.get(w, 0) + self.k) / (total + self.k * len(self.vocab))
        p = 1.0 / len(self.vocab)
        for m in range(1, self.order + 1):
            row, total, types = self._tables[m].get(h[self.order - m :], EMPTY_ROW)
            if total:
                p = (max(row.get(w, 0) - self.discount, 0.0) + self.discount * types * p) / total
        return p

    def logprob(self, token: str, context: Sequence[str] = ()) -> float:
        """log p(token | context), natural log."""
        return math.log(self.prob(token, context))

    def sentence_logprob(self, tokens: Sequence[str]) -> float:
        """log p(w_1..w_T </s>) = sum_{i=1}^{T+1} log p(w_i | w_{i-n+1}..w_{i-1}), natural log, </s> included."""
        padded = [BOS] * (self.order - 1) + list(tokens) + [EOS]
        return sum(self.logprob(padded[i], padded[i - self.order + 1 : i]) for i in range(self.order - 1, len(padded)))

    def perplexity(self, sentences: Iterable[Sequence[str]]) -> float:
        """exp(-(sum of sentence log-probabilities) / N), N the number of tokens scored, each </s> included."""
        total, n_tokens = 0.0, 0
        for sentence in sentences:
            total += self.sentence_logprob(sentence)
            n_tokens += len(sentence) + 1
        if n_tokens == 0:
            raise DataError("no sentences to compute perplexity on; pass at least one sentence")
        return math.exp(-total / n_tokens)

    def score(self, sentences: Sequence[Sequence[str]]) -> list[ScoredSentence]:
        """Each sentence's log-probability and perplexity, most reasonable (lowest perplexity) first."""
        scored = []
        for i, sentence in enumerate(sentences):
            lp = self.sentence_logprob(sentence)
            scored.append(ScoredSentence(i, lp, math.exp(-lp / (len(sentence) + 1))))
        return sorted(scored, key=lambda s: s.perplexity)

    def save(self, path: str | Path) -> Path:
        """Write the options, vocabulary and n-gram counts to `path` as JSON (atomically)."""
        if not self.vocab:
            raise ConfigError("the n-gram model is not trained; call fit(sentences) before save")
        data = {
            "format": FORMAT, "order": self.order, "smoothing": self.smoothing, "k": self.k, "discount": self.discount,
            "vocab": self.vocab, "counts": [[list(gram), c] for gram, c in self.counts.items()],
        }
        return atomic_write_text(path, json.dumps(data, ensure_ascii=False))

    @classmethod
    def load(cls, path: str | Path) -> NGramLM:
        """Read a model written by `save`."""
        fix = "pass a file written by NGramLM.save"
        data: dict[str, Any] = read_json_object(path, DataError, fix)
        if data.get("format") != FORMAT:
            raise DataError(f"{path}: not an n-gram model file (format {data.get('format')!r}); {fix}")
        try:
            model = cls(data["order"], data["smoothing"], data["k"], data["discount"])
            counts = {tuple(gram): int(c) for gram, c in data["counts"]}
            if any(len(gram) != model.order or not all(isinstance(t, str) for t in gram) for gram in counts):
                raise ValueError(f"n-grams must be {model.order} strings long")
            vocab = [str(t) for t in data["vocab"]]
        except (KeyError, TypeError, ValueError, ConfigError) as e:
            raise DataError(f"{path}: corrupted n-gram model ({type(e).__name__}: {e}); {fix}") from None
        model._build(vocab, counts)
        return model
