"""Masked-language-model corruption (Devlin et al., 2019): choose tokens to predict, hide most of them.

    chosen      each token that may be masked (not a special token, not padding) with probability p = 0.15;
                with whole-word masking, each word with probability p, and then all of its tokens
                (Chinese whole-word masking: the words are jieba's, the tokens often characters)
    of chosen   80% become [MASK], 10% a random token of the ordinary vocabulary, 10% stay as they are
    labels      the original id at chosen positions, -100 (ignored by the loss) elsewhere

Both inputs and labels keep the shape of `ids` (B, T).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch
from torch import Tensor

from nlplab.errors import ConfigError

IGNORE = -100


def mask_tokens(ids: Tensor, maskable: Tensor, mask_id: int, random_ids: tuple[int, int], generator: torch.Generator,
                prob: float = 0.15, word_ids: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """(inputs, labels) of the module docstring. ids (B, T); maskable (B, T) bool, False at special tokens and
    padding; random replacements are drawn uniformly from [random_ids[0], random_ids[1]); word_ids (B, T) gives
    each token's word index within its row (whole-word masking) or None (each token on its own)."""
    if not 0.0 < prob < 1.0:
        raise ConfigError(f"mask probability must be in (0, 1), got {prob}")
    if word_ids is None:
        chosen = torch.rand(ids.shape, generator=generator) < prob
    else:
        words = int(word_ids.max()) + 1 if word_ids.numel() else 1
        chosen = (torch.rand(ids.shape[0], words, generator=generator) < prob).gather(1, word_ids.clamp(min=0))
    chosen &= maskable
    labels = torch.where(chosen, ids, IGNORE)
    action = torch.rand(ids.shape, generator=generator)
    replace = torch.randint(*random_ids, ids.shape, generator=generator)
    inputs = torch.where(chosen & (action < 0.8), mask_id, ids)
    inputs = torch.where(chosen & (action >= 0.8) & (action < 0.9), replace, inputs)
    return inputs, labels


def encode_words(encode: Callable[[str], list[int]], text: str) -> tuple[list[int], list[int]]:
    """Token ids of `text` encoded (by a tokenizer's `encode`) jieba word by jieba word, and the index of the word
    of each token."""
    import jieba

    jieba.setLogLevel(logging.WARNING)
    ids: list[int] = []
    word_ids: list[int] = []
    for word in jieba.lcut(text):
        pieces = encode(word)
        word_ids.extend([word_ids[-1] + 1 if word_ids else 0] * len(pieces))
        ids.extend(pieces)
    return ids, word_ids
