"""The interface every tokenizer shares, and the vocabulary it maps tokens through.

A tokenizer turns text into tokens (`tokenize`), tokens into ids (`encode`) and back (`decode`). It is
trained on texts, saved as a directory holding a Hugging Face `tokenizer.json` (so the ecosystem can read
it) plus `tokenizer_config.json` naming the nlplab algorithm and its options, and loaded from one.
"""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterable, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

from nlplab.errors import TokenizerError
from nlplab.io import atomic_write_text, read_json_object
from nlplab.io import progress as progress_of

PAD, UNK = "[PAD]", "[UNK]"
CONFIG_FILE, HF_FILE = "tokenizer_config.json", "tokenizer.json"


def vocab_from_counts(counts: Counter[str], specials: Sequence[str], vocab_size: int | None, min_freq: int) -> dict[str, int]:
    """Specials first (ids 0..k-1), then tokens by falling count (ties by first appearance), keeping those
    seen at least `min_freq` times, until `vocab_size` entries (None = no limit)."""
    if vocab_size is not None and vocab_size <= len(specials):
        raise TokenizerError(f"vocab size {vocab_size} leaves no room beyond the {len(specials)} special tokens; use a larger --vocab-size")
    vocab = {tok: i for i, tok in enumerate(specials)}
    for tok, n in counts.most_common():
        if n < min_freq or (vocab_size is not None and len(vocab) >= vocab_size):
            break
        vocab.setdefault(tok, len(vocab))
    return vocab


class Tokenizer(ABC):
    """text -> tokens -> ids, and back. Subclasses set `algo` and implement `train`, `tokenize`, `decode`."""

    algo: ClassVar[str]
    unk_token: str | None = UNK

    def __init__(self, vocab: dict[str, int] | None = None, special_tokens: Sequence[str] = (PAD, UNK)) -> None:
        self.special_tokens = list(special_tokens)
        self.vocab: dict[str, int] = dict(vocab) if vocab is not None else {t: i for i, t in enumerate(self.special_tokens)}
        self.id_to_token = {i: t for t, i in self.vocab.items()}

    def _set_vocab(self, vocab: dict[str, int]) -> None:
        self.vocab = vocab
        self.id_to_token = {i: t for t, i in vocab.items()}

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    @property
    def pad_id(self) -> int:
        return self.vocab.get(PAD, 0)

    @property
    def unk_id(self) -> int | None:
        return self.vocab.get(self.unk_token) if self.unk_token is not None else None

    def token_to_id(self, token: str) -> int | None:
        return self.vocab.get(token, self.unk_id)

    @cached_property
    def _special_pattern(self) -> re.Pattern[str] | None:
        tokens = sorted(self.special_tokens, key=len, reverse=True)
        return re.compile("|".join(map(re.escape, tokens))) if tokens else None

    def split_special_tokens(self, text: str) -> list[tuple[str, bool]]:
        """`text` cut into (piece, is_special): special tokens are found first, anywhere in the raw text and
        longest first (as Hugging Face matches its added tokens), so they are never split or normalized."""
        if self._special_pattern is None:
            return [(text, False)] if text else []
        pieces, end = [], 0
        for m in self._special_pattern.finditer(text):
            if m.start() > end:
                pieces.append((text[end : m.start()], False))
            pieces.append((m.group(), True))
            end = m.end()
        if end < len(text):
            pieces.append((text[end:], False))
        return pieces

    @abstractmethod
    def words(self, text: str) -> list[str]:
        """Pre-tokenization of text without special tokens: the units that training counts."""

    def count_words(self, texts: Iterable[str], progress: bool = False) -> Counter[str]:
        """How often each pre-tokenized word occurs in `texts` (special tokens left out); an empty corpus is an error."""
        counts: Counter[str] = Counter()
        for text in progress_of(texts, desc="counting words", unit=" texts", enabled=progress):
            for piece, special in self.split_special_tokens(text):
                if not special:
                    counts.update(self.words(piece))
        if not counts:
            raise TokenizerError("the training corpus is empty: give at least one non-blank text")
        return counts

    @abstractmethod
    def train(self, texts: Iterable[str], vocab_size: int | None = None, min_freq: int = 1, progress: bool = False) -> Tokenizer:
        """Learn the vocabulary (and merges, for subword algorithms) from `texts`; returns self."""

    @abstractmethod
    def tokenize(self, text: str) -> list[str]:
        """The tokens of `text`, as strings."""

    @abstractmethod
    def decode(self, ids: Sequence[int]) -> str:
        """The text of `ids`, special tokens left out."""

    def encode(self, text: str) -> list[int]:
        """Token ids of `text`: special tokens as they are, the pre-tokenized words of every other piece through `words_ids`."""
        ids: list[int] = []
        for piece, special in self.split_special_tokens(text):
            if special:
                ids.append(self.vocab[piece])
            else:
                ids.extend(self.words_ids(self.words(piece)))
        return ids

    def words_ids(self, words: Sequence[str]) -> list[int]:
        """The ids of pre-tokenized words, one after the other: `word_ids` of each (a batch encoder replaces this)."""
        return [i for word in words for i in self.word_ids(word)]

    def word_ids(self, word: str) -> Sequence[int]:
        """Ids of one pre-tokenized word: its own id, else [UNK]'s (nothing when there is no [UNK]).
        Subword tokenizers replace this by their cached merge or longest-match encoding."""
        i = self.token_to_id(word)
        return () if i is None else (i,)

    def options(self) -> dict[str, Any]:
        """Constructor options beyond the vocabulary, stored in tokenizer_config.json."""
        return {}

    @abstractmethod
    def to_hf_json(self) -> str:
        """This tokenizer as a Hugging Face tokenizer.json string."""

    @classmethod
    @abstractmethod
    def from_hf_json(cls, data: dict[str, Any], options: dict[str, Any]) -> Tokenizer:
        """Rebuild from a parsed tokenizer.json (and the options of tokenizer_config.json, if any)."""

    def save(self, directory: str | Path) -> Path:
        """Write `tokenizer.json` (Hugging Face format) and `tokenizer_config.json` into `directory`."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        atomic_write_text(directory / HF_FILE, self.to_hf_json())
        config = {"nlplab_algo": self.algo, "special_tokens": self.special_tokens, **self.options()}
        atomic_write_text(directory / CONFIG_FILE, json.dumps(config, ensure_ascii=False, indent=2))
        return directory


def hf_added_tokens(vocab: dict[str, int], special_tokens: Sequence[str]) -> list[dict[str, Any]]:
    """The `added_tokens` entries of a tokenizer.json for `special_tokens` (matched in raw text, never split)."""
    return [
        {"id": vocab[t], "content": t, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True}
        for t in special_tokens
    ]


def hf_special_tokens(data: dict[str, Any]) -> list[str]:
    """The special tokens of a parsed tokenizer.json; added tokens that are not special are not supported."""
    added = data.get("added_tokens") or []
    if not isinstance(added, list) or not all(isinstance(t, dict) and isinstance(t.get("content"), str) for t in added):
        raise TokenizerError("tokenizer.json: `added_tokens` must be a list of {content, id, special} objects; the file is corrupted")
    plain = [t["content"] for t in added if not t.get("special")]
    if plain:
        raise TokenizerError(f"tokenizer.json: non-special added tokens {plain[:3]} are not supported; mark them special or retrain")
    return [t["content"] for t in added]


def read_json(path: Path) -> dict[str, Any]:
    """Parse a tokenizer JSON object from `path`, or raise TokenizerError saying why it cannot be used."""
    return read_json_object(path, TokenizerError, "pass a directory written by `nlplab tokenizer train` or a Hugging Face tokenizer")
