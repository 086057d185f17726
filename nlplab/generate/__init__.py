"""Decoding: greedy, beam search and sampling over any `step(ids, cache) -> (logits, cache)` model, with the KV
cache and token streaming; the logits processors that sampling composes."""

from nlplab.generate.beam import Hypothesis, beam_search
from nlplab.generate.decoding import greedy, sample, sampler, stream
from nlplab.generate.processors import (
           apply_temperature,
           repetition_penalty,
           top_k_filter,
           top_p_filter,
)

__all__ = ["Hypothesis", "apply_temperature", "beam_search", "greedy", "repetition_penalty", "sample", "sampler",
           "stream", "top_k_filter", "top_p_filter"]
