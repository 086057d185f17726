"""Autoregressive decoding: feed the prompt once, then one token per step, reusing the KV cache.

A model is any callable `step(ids (B, t), cache) -> (logits (B, t, V), cache)` like `GPT.forward`: with the cache
of earlier calls, ids are only the new tokens. A step that returns cache None is fed the whole sequence each time.
Put a torch module in eval mode first (dropout off).

    greedy:  x_{t+1} = argmax_v p(v | x_{≤t})
    sample:  x_{t+1} ~ softmax(top_p(top_k(penalised logits / τ)))

A 1-D prompt (T,) gives 1-D results; a batch (B, T) of equal-length prompts gives (B, ·). Once a row emits
`eos_id` it is padded with `eos_id` (Hugging Face pads with pad_token_id), and decoding ends when every row has.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor

from nlplab.errors import ConfigError
from nlplab.generate.processors import (
    apply_temperature,
    repetition_penalty,
    top_k_filter,
    top_p_filter,
)

Step = Callable[[Tensor, Any], tuple[Tensor, Any]]
Picker = Callable[[Tensor, Tensor], Tensor]
"""pick(logits (B, V), history (B, t)) -> next token ids (B,)."""


def check_prompt(prompt: Tensor, max_new_tokens: int) -> Tensor:
    """The prompt as (B, T) int64 ids; raises ConfigError on an empty prompt or max_new_tokens < 1."""
    if max_new_tokens < 1:
        raise ConfigError(f"max_new_tokens (--max-new-tokens) must be >= 1, got {max_new_tokens}")
    ids = torch.as_tensor(prompt, dtype=torch.long)
    ids = ids[None] if ids.dim() == 1 else ids
    if ids.dim() != 2 or ids.shape[1] == 0:
        raise ConfigError(f"the prompt must be a non-empty 1-D (T,) or 2-D (B, T) tensor of ids, got shape "
                          f"{tuple(ids.shape)}")
    return ids


def next_logits(model: Step, seq: Tensor, cache: Any, use_cache: bool) -> tuple[Tensor, Any]:
    """Logits (B, V) of the token after seq (B, t). With use_cache and a cache, only seq's last token is fed.

    The tensors fed and cached keep one memory layout from step to step (the last token copied out of seq, the
    prompt's keys and values made contiguous like the concatenations that follow), so that a compiled model,
    whose graphs hold the strides they were traced with, compiles once."""
    if not use_cache:
        return model(seq, None)[0][:, -1], None
    if cache is None:
        logits, cache = model(seq, None)
        return logits[:, -1], map_cache(cache, Tensor.contiguous)
    logits, cache = model(seq[:, -1:].clone(memory_format=torch.contiguous_format), cache)
    return logits[:, -1], cache


def map_cache(cache: Any, fn: Callable[[Tensor], Tensor]) -> Any:
    """`fn` applied to every tensor of a nested list/tuple cache; other objects (Hugging Face's caches) as they are."""
    if isinstance(cache, Tensor):
        return fn(cache)
    if isinstance(cache, (list, tuple)):
        return type(cache)(map_cache(c, fn) for c in cache)
    return cache


def reorder_cache(cache: Any, index: Tensor) -> Any:
    """Rows `index` (K,) of every tensor in a nested list/tuple cache whose tensors are batch-first; a cache
    object with its own `reorder_cache` (Hugging Face's) reorders itself."""
    if hasattr(cache, "reorder_cache"):
        cache.reorder_cache(index)
        return cache
    return map_cache(cache, lambda t: t.index_select(0, index))


def argmax_picker(logits: Tensor, history: Tensor) -> Tensor:
    """Greedy choice: the most probable token of each row, (B, V) -> (B,)."""
    return logits.argmax(dim=-1)


def sampler(temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
            repetition: float = 1.0, generator: torch.Generator | None = None) -> Picker:
    """A picker that draws x ~ softmax(top_p(top_k(repetition_penalty(logits) / temperature))) per row."""

    def pick(logits: Tensor, history: Tensor) -> Tensor:
        if repetition != 1.0:
            logits = repetition_penalty(logits, history, repetition)
        logits = apply_temperature(logits, temperature)
        if top_k is not None:
            logits = top_k_filter(logits, top_k)
        if top_p is not None:
            logits = top_p_filter(logits, top_p)
        return torch.multinomial(logits.softmax(dim=-1), 1, generator=generator)[:, 0]

    return pick


@torch.no_grad()
def decode_steps(model: Step, prompt: Tensor, max_new_tokens: int, eos_id: int | None = None,
                 pick: Picker = argmax_picker, use_cache: bool = True) -> Iterator[tuple[Tensor, Tensor]]:
    """Yield each step's new tokens with the next-token logits they were picked from: ((B,), (B, V)) for a (B, T)
    prompt, ((), (V,)) for a (T,) prompt, as soon as they are chosen; at most max_new_tokens steps, fewer when every
    row has emitted eos_id. The logits are the model's own (before any processor), so log softmax of them scores
    the tokens without another forward pass."""
    seq, single = check_prompt(prompt, max_new_tokens), torch.as_tensor(prompt).dim() == 1
    finished = torch.zeros(seq.shape[0], dtype=torch.bool, device=seq.device)
    cache = None
    for _ in range(max_new_tokens):
        logits, cache = next_logits(model, seq, cache, use_cache)
        token = pick(logits, seq)
        if eos_id is not None:
            token = token.masked_fill(finished, eos_id)
            finished |= token == eos_id
        seq = torch.cat([seq, token[:, None]], dim=1)
        yield (token[0], logits[0]) if single else (token, logits)
        if finished.all():
            return


def stream(model: Step, prompt: Tensor, max_new_tokens: int, eos_id: int | None = None,
           pick: Picker = argmax_picker, use_cache: bool = True) -> Iterator[Tensor]:
    """Yield each step's new tokens, (B,) for a (B, T) prompt or () for a (T,) prompt, as soon as they are chosen;
    at most max_new_tokens steps, fewer when every row has emitted eos_id (`decode_steps` without the logits)."""
    return (token for token, _ in decode_steps(model, prompt, max_new_tokens, eos_id, pick, use_cache))


def collect(tokens: Iterator[Tensor]) -> Tensor:
    """The streamed tokens side by side: (n,) or (B, n)."""
    return torch.stack(list(tokens), dim=-1)


def greedy(model: Step, prompt: Tensor, max_new_tokens: int, eos_id: int | None = None,
           use_cache: bool = True) -> Tensor:
    """Greedy decoding; the generated ids (n,) or (B, n), n ≤ max_new_tokens, without the prompt."""
    return collect(stream(model, prompt, max_new_tokens, eos_id, argmax_picker, use_cache))


def sample(model: Step, prompt: Tensor, max_new_tokens: int, eos_id: int | None = None, temperature: float = 1.0,
           top_k: int | None = None, top_p: float | None = None, repetition_penalty: float = 1.0,
           generator: torch.Generator | None = None, use_cache: bool = True) -> Tensor:
    """Ancestral sampling with temperature, top-k, top-p and repetition penalty (see `sampler`); the generated ids
    (n,) or (B, n) without the prompt. A seeded `generator` makes the draws repeat."""
    pick = sampler(temperature, top_k, top_p, repetition_penalty, generator)
    return collect(stream(model, prompt, max_new_tokens, eos_id, pick, use_cache))
