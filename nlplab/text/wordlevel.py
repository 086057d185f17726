"""Whole-unit tokenizers: every character (`char`, the Chinese default) or every jieba word (`word`) is
one token, looked up in a vocabulary of the most frequent units. Both save as a Hugging Face `WordLevel`
model; the char tokenizer's pre-tokenizer (split on whitespace, then isolate every character) is exactly
reproduced by `tokenizers`, while jieba's segmentation has no Hugging Face equivalent, so the word
tokenizer's `tokenizer.json` expects pre-segmented, space-separated text."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Sequence
from typing import Any

from nlplab.errors import TokenizerError
from nlplab.text.base import UNK, Tokenizer, hf_added_tokens, hf_special_tokens, vocab_from_counts

_WORD_CHAR = re.compile(r"[A-Za-z0-9]")


class WordLevelTokenizer(Tokenizer):
    """A vocabulary of whole units; subclasses say what a unit is (`tokenize`) and how units join (`decode`)."""

    hf_pre_tokenizer: dict[str, Any]

    def train(self, texts: Iterable[str], vocab_size: int | None = None, min_freq: int = 1, progress: bool = False) -> WordLevelTokenizer:
        self._set_vocab(vocab_from_counts(self.count_words(texts, progress), self.special_tokens, vocab_size, min_freq))
        return self

    def tokenize(self, text: str) -> list[str]:
        """The units of `text`; special tokens such as [PAD] written in the text stay whole."""
        return [t for piece, special in self.split_special_tokens(text) for t in ([piece] if special else self.words(piece))]

    def tokens_of(self, ids: Sequence[int]) -> list[str]:
        specials = set(self.special_tokens)
        return [t for t in (self.id_to_token.get(i) for i in ids) if t is not None and t not in specials]

    def to_hf_json(self) -> str:
        added = hf_added_tokens(self.vocab, self.special_tokens)
        data = {
            "version": "1.0", "truncation": None, "padding": None, "added_tokens": added, "normalizer": None,
            "pre_tokenizer": self.hf_pre_tokenizer, "post_processor": None, "decoder": None,
            "model": {"type": "WordLevel", "vocab": self.vocab, "unk_token": UNK if UNK in self.vocab else None},
        }
        return json.dumps(data, ensure_ascii=False, indent=1)

    @classmethod
    def from_hf_json(cls, data: dict[str, Any], options: dict[str, Any]) -> WordLevelTokenizer:
        model = data.get("model", {})
        if model.get("type") != "WordLevel" or not isinstance(model.get("vocab"), dict):
            raise TokenizerError(f"expected a WordLevel model for the {cls.algo} tokenizer, found {model.get('type')!r}")
        specials = options.get("special_tokens") or hf_special_tokens(data)
        return cls(model["vocab"], specials)


class CharTokenizer(WordLevelTokenizer):
    """Every non-space character is a token: 今天天气好 -> 今 天 天 气 好."""

    algo = "char"
    hf_pre_tokenizer = {
        "type": "Sequence",
        "pretokenizers": [
            {"type": "WhitespaceSplit"},
            {"type": "Split", "pattern": {"Regex": "."}, "behavior": "Isolated", "invert": False},
        ],
    }

    def words(self, text: str) -> list[str]:
        return [c for c in text if not c.isspace()]

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(self.tokens_of(ids))


class WordTokenizer(WordLevelTokenizer):
    """Words as jieba segments them (precise mode): 今天天气很好 -> 今天 天气 很 好."""

    algo = "word"
    hf_pre_tokenizer = {"type": "WhitespaceSplit"}

    def words(self, text: str) -> list[str]:
        import jieba

        jieba.setLogLevel(logging.WARNING)
        return [w for w in jieba.lcut(text) if not w.isspace()]

    def decode(self, ids: Sequence[int]) -> str:
        """Join words; a space goes back only between two Latin letters or digits (Chinese needs none)."""
        out = ""
        for tok in self.tokens_of(ids):
            if out and _WORD_CHAR.match(out[-1]) and _WORD_CHAR.match(tok[0]):
                out += " "
            out += tok
        return out
