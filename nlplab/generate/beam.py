"""Beam search with Hugging Face's scoring and stopping rules (transformers ≥ 4.50 `_beam_search`).

Keep the num_beams best partial sequences by total log-probability Σ log p(x_i | x_<i). Each step scores every
one-token extension of every beam and takes the 2·num_beams best candidates: among the first num_beams of them,
those that end (EOS, or max_new_tokens reached) become finished hypotheses scored

    score = Σ log p / n^length_penalty,   n = generated tokens (EOS included, prompt excluded);

the best num_beams candidates that do not end carry on. At most num_beams finished hypotheses are kept. The search
stops when num_beams hypotheses are finished (early_stopping=True), or (early_stopping=False) when the best running
beam, scored at its current length, can no longer beat the worst finished one, or at max_new_tokens.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from nlplab.errors import ConfigError
from nlplab.generate.decoding import Step, check_prompt, next_logits, reorder_cache

DEAD = -1.0e9
"""The score Hugging Face gives to beams that must not be chosen (the unused initial beams, ended candidates)."""


class Hypothesis(NamedTuple):
    """One finished beam: the generated ids (n,), without the prompt, and its length-penalised score."""

    ids: Tensor
    score: float


@torch.no_grad()
def beam_search(model: Step, prompt: Tensor, max_new_tokens: int, eos_id: int | None = None, num_beams: int = 4,
                length_penalty: float = 1.0, early_stopping: bool = True, num_return: int = 1,
                use_cache: bool = True) -> list[Hypothesis] | list[list[Hypothesis]]:
    """The num_return best hypotheses, best first, for a (T,) prompt; one such list per row for a (B, T) batch."""
    if num_beams < 1:
        raise ConfigError(f"num_beams must be >= 1, got {num_beams}")
    if not 1 <= num_return <= num_beams:
        raise ConfigError(f"num_return must be between 1 and num_beams ({num_beams}), got {num_return}")
    rows = check_prompt(prompt, max_new_tokens)
    best = [search_one(model, row, max_new_tokens, eos_id, num_beams, length_penalty, early_stopping,
                       use_cache)[:num_return] for row in rows]
    return best if torch.as_tensor(prompt).dim() == 2 else best[0]


def search_one(model: Step, prompt: Tensor, max_new_tokens: int, eos_id: int | None, num_beams: int,
               length_penalty: float, early_stopping: bool, use_cache: bool) -> list[Hypothesis]:
    """Beam search from one prompt (T,); all num_beams finished hypotheses, best first."""
    prompt_len = len(prompt)
    seqs = prompt.repeat(num_beams, 1)
    running = torch.full((num_beams,), DEAD, device=prompt.device)
    running[0] = 0.0
    finished: list[Hypothesis] = []
    cache = None
    for n in range(1, max_new_tokens + 1):
        logits, cache = next_logits(model, seqs, cache, use_cache)
        totals = (F.log_softmax(logits.float(), dim=-1) + running[:, None]).flatten()
        top, index = totals.topk(2 * num_beams)
        beam, token = index // logits.shape[-1], index % logits.shape[-1]
        candidates = torch.cat([seqs[beam], token[:, None]], dim=1)
        ends = (token == eos_id) if eos_id is not None else torch.zeros_like(token, dtype=torch.bool)
        ends |= n == max_new_tokens
        for i in ends[:num_beams].nonzero()[:, 0].tolist():
            finished.append(Hypothesis(candidates[i, prompt_len:], top[i].item() / n ** length_penalty))
        finished = sorted(finished, key=lambda h: h.score, reverse=True)[:num_beams]
        alive = top.masked_fill(ends, DEAD)
        keep = alive.topk(num_beams).indices
        seqs, running = candidates[keep], alive[keep]
        cache = reorder_cache(cache, beam[keep])
        full = len(finished) == num_beams
        improvable = not full or running[0].item() / n ** length_penalty > finished[-1].score
        if ends.all() or (full and early_stopping) or not improvable:
            break
    return finished
