"""Byte-level BPE (GPT-2, Radford et al., 2019): BPE over the UTF-8 bytes of the text instead of its characters.

The 256 byte values are the base alphabet, so any string encodes without [UNK] and `decode(encode(x)) == x`.
Each byte is shown as a printable character (`bytes_to_unicode`: a space is `Ġ`, a newline `Ċ`) so that tokens
stay strings in the vocabulary. Words come from a regex (GPT-2's by default: contractions, letter runs,
digit runs, other symbols, each with at most one leading space); special tokens such as `<|endoftext|>` are
cut out of the text first and never split. Training and encoding are `BPETokenizer`'s, without end-of-word
marker. The same ranks make a `tiktoken.Encoding` (`mergeable_ranks`), and the saved tokenizer.json is a
Hugging Face `BPE` model behind a `ByteLevel` pre-tokenizer.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import regex

from nlplab.errors import TokenizerError
from nlplab.text.bpe import WORD_CACHE, BPETokenizer
from nlplab.text.pairmerge import Merger, merger
from nlplab.text.pretokenize import split_isolated

GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
ENDOFTEXT = "<|endoftext|>"


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map byte -> printable character: the 188 bytes that are printable Latin-1 map to
    themselves, the other 68 (controls, space, NBSP, soft hyphen) to chr(256), chr(257), ... in byte order."""
    printable = {*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)}
    shifted = iter(range(256, 512))
    return {b: chr(b) if b in printable else chr(next(shifted)) for b in range(256)}


BYTE_TO_CHAR = bytes_to_unicode()
BYTE_CHARS = sorted(BYTE_TO_CHAR.values())  # base symbols in id order: by code point, as Hugging Face's trainer
_TO_LATIN1 = str.maketrans({c: chr(b) for b, c in BYTE_TO_CHAR.items()})


def token_bytes(token: str) -> bytes:
    """The bytes a byte-level token stands for."""
    return token.translate(_TO_LATIN1).encode("latin-1")


class ByteBPETokenizer(BPETokenizer):
    """BPE over UTF-8 bytes with a regex pre-tokenizer. Untrained, it already encodes any text byte by byte."""

    algo = "bytebpe"

    def __init__(
        self,
        vocab: dict[str, int] | None = None,
        merges: Sequence[tuple[str, str]] = (),
        special_tokens: Sequence[str] = (ENDOFTEXT,),
        pattern: str = GPT2_PATTERN,
        add_prefix_space: bool = False,
    ) -> None:
        if add_prefix_space and pattern != GPT2_PATTERN:
            raise TokenizerError("add_prefix_space works only with GPT-2's pattern; put the optional space in your pattern instead")
        self.pattern, self.add_prefix_space = pattern, add_prefix_space
        if vocab is None:
            vocab = {t: i for i, t in enumerate(dict.fromkeys([*special_tokens, *BYTE_CHARS]))}
        super().__init__(vocab, merges, special_tokens, end_of_word_suffix=None, pre_tokenizer="ByteLevel", unk_token=None)

    def word_regex(self) -> regex.Pattern[str]:
        try:
            return regex.compile(self.pattern)
        except regex.error as e:
            raise TokenizerError(f"pre-tokenizer pattern {self.pattern!r} is not a valid regex: {e}") from None

    def words(self, text: str) -> list[str]:
        if self.add_prefix_space and not text.startswith(" "):
            text = " " + text
        words = self._words_re.findall(text)
        if sum(map(len, words)) == len(text):  # no gaps (always so with GPT-2's pattern): no need to look for them
            return words
        return split_isolated(self._words_re, text)

    def symbols(self, word: str) -> list[str]:
        return [BYTE_TO_CHAR[b] for b in word.encode("utf-8")]

    def alphabet(self, word_counts: Counter[str]) -> list[str]:
        return BYTE_CHARS

    def _index_merges(self) -> None:
        missing = [c for c in BYTE_CHARS if c not in self.vocab]
        if missing:
            raise TokenizerError(f"byte-level vocabulary lacks {len(missing)} of the 256 byte symbols (e.g. {missing[0]!r}); the tokenizer file is corrupted")
        self._byte_ids = [self.vocab[BYTE_TO_CHAR[b]] for b in range(256)]
        super()._index_merges()

    def _new_merger(self, ranks: dict[tuple[int, int], int], merged: list[int]) -> Merger:
        return merger(ranks, merged, self._byte_ids, WORD_CACHE)

    def words_ids(self, words: Sequence[str]) -> list[int]:
        """The ids of the words in one call to the merger (compiled when built), through its word cache."""
        return self._merger.encode_words(words)

    def _initial_ids(self, word: str) -> list[int]:
        return list(map(self._byte_ids.__getitem__, word.encode("utf-8")))

    def decode(self, ids: Sequence[int]) -> str:
        """The bytes of the tokens, decoded as UTF-8 (an incomplete character becomes U+FFFD)."""
        specials = set(self.special_tokens)
        tokens = (t for t in map(self.id_to_token.get, ids) if t is not None and t not in specials)
        return token_bytes("".join(tokens)).decode("utf-8", errors="replace")

    def mergeable_ranks(self) -> dict[bytes, int]:
        """Every non-special token as bytes -> its id: the `mergeable_ranks` of an equal `tiktoken.Encoding`."""
        specials = set(self.special_tokens)
        return {token_bytes(t): i for t, i in self.vocab.items() if t not in specials}

    def options(self) -> dict[str, Any]:
        return {}

    def hf_pipeline(self) -> dict[str, Any]:
        byte_level = {"type": "ByteLevel", "add_prefix_space": self.add_prefix_space, "trim_offsets": True, "use_regex": True}
        if self.pattern == GPT2_PATTERN:
            pre: dict[str, Any] = byte_level
        else:
            split = {"type": "Split", "pattern": {"Regex": self.pattern}, "behavior": "Isolated", "invert": False}
            pre = {"type": "Sequence", "pretokenizers": [split, {**byte_level, "use_regex": False}]}
        return {"normalizer": None, "pre_tokenizer": pre, "post_processor": None, "decoder": {**byte_level, "use_regex": True}}

    @classmethod
    def from_hf_json(cls, data: dict[str, Any], options: dict[str, Any]) -> ByteBPETokenizer:
        args = cls.read_hf_model(data)
        if data["model"].get("end_of_word_suffix"):
            raise TokenizerError("tokenizer.json: a byte-level BPE model with an end_of_word_suffix is not supported")
        pre = data.get("pre_tokenizer") or {}
        steps = pre.get("pretokenizers", []) if pre.get("type") == "Sequence" else [pre]
        types = [s.get("type") for s in steps]
        if types == ["ByteLevel"] and steps[0].get("use_regex", True):
            pattern, add_prefix_space = GPT2_PATTERN, steps[0].get("add_prefix_space", True)
        elif (types == ["Split", "ByteLevel"] and "Regex" in steps[0].get("pattern", {}) and steps[0].get("behavior") == "Isolated"
              and not steps[0].get("invert") and not steps[1].get("use_regex", True) and not steps[1].get("add_prefix_space", True)):
            pattern, add_prefix_space = steps[0]["pattern"]["Regex"], False
        else:
            raise TokenizerError(f"tokenizer.json: byte-level pre-tokenizer {types} is not supported; expected ByteLevel, or Split(Regex, Isolated) + ByteLevel(use_regex=false)")
        del args["unk_token"]
        return cls(**args, pattern=pattern, add_prefix_space=add_prefix_space)
