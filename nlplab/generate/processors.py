"""Logits processors: pure functions that reshape next-token logits (B, V) before a token is picked. Filtered
tokens get -inf, so that softmax gives them probability 0. Sampling applies them in Hugging Face's order:
repetition penalty, temperature, top-k, top-p."""

from __future__ import annotations

import torch
from torch import Tensor

from nlplab.errors import ConfigError


def apply_temperature(logits: Tensor, temperature: float) -> Tensor:
    """logits / τ, (B, V) -> (B, V): τ < 1 sharpens softmax towards the argmax, τ > 1 flattens it towards uniform."""
    if not temperature > 0:
        raise ConfigError(f"temperature must be > 0, got {temperature}; use greedy decoding for temperature 0")
    return logits / temperature


def top_k_filter(logits: Tensor, k: int) -> Tensor:
    """Keep the k largest logits of each row (and any tied with the k-th), set the rest to -inf; (B, V) -> (B, V)."""
    if k < 1:
        raise ConfigError(f"top_k must be >= 1, got {k}")
    kth = logits.topk(min(k, logits.shape[-1]), dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_filter(logits: Tensor, p: float) -> Tensor:
    """Nucleus filter (Holtzman et al., 2020): keep the smallest set of most probable tokens whose probabilities sum
    to ≥ p, i.e. drop a token when the tokens more probable than it already hold ≥ p; the top token always stays.
    (B, V) -> (B, V). Only the k most probable tokens are sorted, k = 64, 256, … until they hold the nucleus of
    every row (the whole vocabulary at worst): a nucleus is usually small, and a full sort costs 40× a top-64."""
    if not 0 < p <= 1:
        raise ConfigError(f"top_p must be in (0, 1], got {p}")
    probs, k = logits.softmax(dim=-1), min(64, logits.shape[-1])
    while True:
        top, order = probs.topk(k, dim=-1)
        mass_before = top.cumsum(dim=-1) - top
        if k == probs.shape[-1] or bool((mass_before[..., -1] >= p).all()):
            break
        k = min(4 * k, probs.shape[-1])
    keep = torch.zeros_like(logits, dtype=torch.bool).scatter(-1, order, mass_before < p)
    return logits.masked_fill(~keep, float("-inf"))


def repetition_penalty(logits: Tensor, history: Tensor, penalty: float) -> Tensor:
    """CTRL's penalty (Keskar et al., 2019) as Hugging Face applies it: for every token already in `history` (B, t),
    a logit x becomes x / penalty if x > 0 and x · penalty otherwise, so penalty > 1 makes repeats less likely;
    (B, V) -> (B, V)."""
    if not penalty > 0:
        raise ConfigError(f"repetition_penalty must be > 0, got {penalty}; 1.0 means no penalty")
    seen = logits.gather(-1, history)
    return logits.scatter(-1, history, torch.where(seen > 0, seen / penalty, seen * penalty))
