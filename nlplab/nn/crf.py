"""Linear-chain conditional random field (Lafferty et al., 2001), the output layer of BiLSTM-CRF taggers.

For a sentence of T tokens with emission scores E (T, K) from an encoder and tags y_1 … y_T among K tags:

    score(y) = start[y_1] + Σ_t E[t, y_t] + Σ_{t≥2} A[y_{t-1}, y_t] + end[y_T]
    p(y | E) = exp score(y) / Z,      Z = Σ_{y'} exp score(y')           (K^T sequences)

Z comes from the forward algorithm in log space, O(T·K²) instead of O(K^T):

    α_1[j] = start[j] + E[1, j]
    α_t[j] = logsumexp_i (α_{t-1}[i] + A[i, j]) + E[t, j]
    log Z  = logsumexp_j (α_T[j] + end[j])

and the negative log-likelihood of the gold tags is  log Z - score(y). Viterbi decoding replaces logsumexp
by max and remembers the argmax (back-pointers) to read the best sequence backwards.

Batches: emissions (B, T, K), tags (B, T), mask (B, T) bool, True on the first `length` steps of each row
(left-aligned, every row at least one token). At a padded step α (or the Viterbi score) is carried over
unchanged, so each row ends on its own last real token.

Constraints (`allowed`, from `bio_constraints`): a forbidden start, transition or end scores
`FORBIDDEN` (-10⁴) in the forward algorithm and in Viterbi, so decoding never emits it; the penalty is
finite so that a gold sequence breaking a constraint gives a large, finite loss rather than inf.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from nlplab.errors import ConfigError, DataError
from nlplab.nn.functional import at_least_float32

FORBIDDEN = -1e4


def bio_constraints(labels: Sequence[str]) -> tuple[Tensor, Tensor, Tensor]:
    """Allowed (start (K,), transitions (K, K) [from, to], end (K,)) for BIO tags `O`, `B-X`, `I-X`:
    I-X may only follow B-X or I-X, so it may not start a sentence. Any tag may end one."""
    kinds = [(label.partition("-")[0], label.partition("-")[2]) for label in labels]
    for label, (prefix, kind) in zip(labels, kinds):
        if not (label == "O" or (prefix in ("B", "I") and kind)):
            raise ConfigError(f"BIO constraints need tags O, B-X or I-X; got {label!r}")
    inside = torch.tensor([prefix == "I" for prefix, _ in kinds])
    follows = torch.tensor([[prefix_j != "I" or (prefix_i in ("B", "I") and kind_i == kind_j)
                             for prefix_j, kind_j in kinds] for prefix_i, kind_i in kinds])
    return ~inside, follows, torch.ones(len(labels), dtype=torch.bool)


class CRF(nn.Module):
    """Start, end and transition scores of K tags with NLL (`forward`) and Viterbi (`decode`); see the module
    docstring. Scores are computed in at least float32 whatever the emissions' dtype (e.g. bf16 autocast)."""

    def __init__(self, num_tags: int, constraints: tuple[Tensor, Tensor, Tensor] | None = None) -> None:
        super().__init__()
        if num_tags < 1:
            raise ConfigError(f"a CRF needs at least one tag, got {num_tags}")
        self.num_tags = num_tags
        self.start = nn.Parameter(torch.empty(num_tags).uniform_(-0.1, 0.1))
        self.end = nn.Parameter(torch.empty(num_tags).uniform_(-0.1, 0.1))
        self.transitions = nn.Parameter(torch.empty(num_tags, num_tags).uniform_(-0.1, 0.1))
        allowed = constraints or tuple(torch.ones(shape, dtype=torch.bool) for shape in (num_tags, (num_tags, num_tags), num_tags))
        for name, mask in zip(("allowed_start", "allowed_transitions", "allowed_end"), allowed):
            self.register_buffer(name, mask.bool(), persistent=False)

    def scores(self) -> tuple[Tensor, Tensor, Tensor]:
        """(start (K,), transitions (K, K), end (K,)) with the forbidden entries set to FORBIDDEN."""
        return tuple(torch.where(ok, w, FORBIDDEN) for w, ok in ((self.start, self.allowed_start),
                     (self.transitions, self.allowed_transitions), (self.end, self.allowed_end)))

    def _check(self, emissions: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
        if emissions.dim() != 3 or emissions.shape[-1] != self.num_tags:
            raise DataError(f"emissions must have shape (B, T, {self.num_tags}), got {tuple(emissions.shape)}")
        if mask is None:
            mask = emissions.new_ones(emissions.shape[:2], dtype=torch.bool)
        if mask.shape != emissions.shape[:2] or not mask[:, 0].all():
            raise DataError(f"mask must have shape {tuple(emissions.shape[:2])} and be True at the first step of every row")
        return at_least_float32(emissions), mask.bool()

    def log_partition(self, emissions: Tensor, mask: Tensor | None = None) -> Tensor:
        """log Z of each row by the forward algorithm: (B, T, K), (B, T) -> (B,)."""
        emissions, mask = self._check(emissions, mask)
        start, transitions, end = self.scores()
        alpha = start + emissions[:, 0]  # (B, K)
        for t in range(1, emissions.shape[1]):
            step = torch.logsumexp(alpha.unsqueeze(2) + transitions, dim=1) + emissions[:, t]
            alpha = torch.where(mask[:, t, None], step, alpha)
        return torch.logsumexp(alpha + end, dim=1)

    def score(self, emissions: Tensor, tags: Tensor, mask: Tensor | None = None) -> Tensor:
        """score(y) of the tag sequences `tags` (B, T): (B, T, K), (B, T), (B, T) -> (B,)."""
        emissions, mask = self._check(emissions, mask)
        start, transitions, end = self.scores()
        emitted = emissions.gather(2, tags.unsqueeze(2)).squeeze(2)  # (B, T)
        moved = transitions[tags[:, :-1], tags[:, 1:]]  # (B, T-1)
        last = tags.gather(1, (mask.sum(1, keepdim=True) - 1)).squeeze(1)
        return (start[tags[:, 0]] + torch.where(mask, emitted, 0.0).sum(1)
                + torch.where(mask[:, 1:], moved, 0.0).sum(1) + end[last])

    def forward(self, emissions: Tensor, tags: Tensor, mask: Tensor | None = None, reduction: str = "sum") -> Tensor:
        """Negative log-likelihood log Z - score(y) per row (reduction "none"), or its "sum" or "mean"."""
        nll = self.log_partition(emissions, mask) - self.score(emissions, tags, mask)
        if reduction == "none":
            return nll
        if reduction in ("sum", "mean"):
            return getattr(nll, reduction)()
        raise ConfigError(f"reduction must be none, sum or mean, got {reduction!r}")

    @torch.no_grad()
    def decode(self, emissions: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Viterbi: the best tags (B, T) (padded steps repeat the row's last tag) and their scores (B,)."""
        emissions, mask = self._check(emissions, mask)
        start, transitions, end = self.scores()
        batch, steps, k = emissions.shape
        keep = torch.arange(k, device=emissions.device).expand(batch, k)
        delta, pointers = start + emissions[:, 0], []
        for t in range(1, steps):
            best, arg = (delta.unsqueeze(2) + transitions).max(dim=1)
            delta = torch.where(mask[:, t, None], best + emissions[:, t], delta)
            pointers.append(torch.where(mask[:, t, None], arg, keep))
        score, tag = (delta + end).max(dim=1)
        path = [tag]
        for arg in reversed(pointers):
            tag = arg.gather(1, tag.unsqueeze(1)).squeeze(1)
            path.append(tag)
        return torch.stack(path[::-1], dim=1), score
