"""Byte-pair encoding (Sennrich et al., 2016): start from characters, merge the most frequent adjacent pair
into a new symbol, repeat until the vocabulary is full or no pair is frequent enough.

Words come from a pre-tokenizer (BERT's by default: split on whitespace, isolate punctuation); the last
character of a word carries the end-of-word marker `</w>`, so `est</w>` (as in "newest") and `est` (as in
"estimate") are different symbols and decoding knows where the spaces go. Encoding a word replays the merges
in the order they were learned. Training counts pairs once and then updates only the words a merge touches
(`pairmerge`). Saved as a Hugging Face `BPE` model with `end_of_word_suffix`.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

import regex

from nlplab.errors import TokenizerError
from nlplab.io import progress as progress_of
from nlplab.text.base import PAD, UNK, Tokenizer, hf_added_tokens, hf_special_tokens
from nlplab.text.pairmerge import Merger, PairCounts, count_merges, merger, symbol_minter
from nlplab.text.pretokenize import word_pattern

END_OF_WORD = "</w>"
WORD_CACHE = 1 << 16


class BPETokenizer(Tokenizer):
    """Character-level BPE with an end-of-word marker. `merges[k] = (a, b)`: the k-th merge fused a and b
    into a+b; `limit_alphabet` keeps only the most frequent characters (the others encode as [UNK])."""

    algo = "bpe"

    def __init__(
        self,
        vocab: dict[str, int] | None = None,
        merges: Sequence[tuple[str, str]] = (),
        special_tokens: Sequence[str] = (PAD, UNK),
        end_of_word_suffix: str | None = END_OF_WORD,
        pre_tokenizer: str = "BertPreTokenizer",
        limit_alphabet: int | None = None,
        unk_token: str | None = UNK,
    ) -> None:
        super().__init__(vocab, special_tokens)
        self.end_of_word_suffix, self.pre_tokenizer, self.limit_alphabet, self.unk_token = end_of_word_suffix, pre_tokenizer, limit_alphabet, unk_token
        self._words_re = self.word_regex()
        self.merges = [(a, b) for a, b in merges]
        self._index_merges()

    # --- the parts byte-level BPE redefines ---------------------------------------------------------------

    def word_regex(self) -> regex.Pattern[str]:
        """The pattern of the words the pre-tokenizer keeps."""
        return word_pattern(self.pre_tokenizer)

    def words(self, text: str) -> list[str]:
        """The pre-tokenized words of `text` (which holds no special token)."""
        return self._words_re.findall(text)

    def symbols(self, word: str) -> list[str]:
        """The base symbols of `word`: its characters, the last one with the end-of-word suffix."""
        chars = list(word)
        if self.end_of_word_suffix and chars:
            chars[-1] += self.end_of_word_suffix
        return chars

    def alphabet(self, word_counts: Counter[str]) -> list[str]:
        """Base symbols for training, in id order: characters by code point (the `limit_alphabet` most
        frequent), then the end-of-word forms of those that end a word."""
        chars: Counter[str] = Counter()
        for word, n in word_counts.items():
            for c in word:
                chars[c] += n
        if self.limit_alphabet is not None:
            chars = Counter(dict(chars.most_common(self.limit_alphabet)))
        ends = set()
        if self.end_of_word_suffix:
            for word in word_counts:
                last = next((c for c in reversed(word) if c in chars), None)
                if last is not None:
                    ends.add(last + self.end_of_word_suffix)
        return sorted(chars) + sorted(ends)

    def join(self, a: str, b: str) -> str:
        """The symbol that merging `a` and `b` creates."""
        return a + b

    # --- training -------------------------------------------------------------------------------------------

    def train(self, texts: Iterable[str], vocab_size: int | None = None, min_freq: int = 1, progress: bool = False) -> BPETokenizer:
        """Learn merges on `texts` until the vocabulary (special tokens and base symbols included) holds
        `vocab_size` tokens or no pair occurs `min_freq` times."""
        if vocab_size is None:
            raise TokenizerError(f"the {self.algo} tokenizer needs a vocabulary size: pass vocab_size (--vocab-size), e.g. 8000")
        word_counts = self.count_words(texts, progress)
        base = [t for t in self.alphabet(word_counts) if t not in self.special_tokens]
        vocab = {t: i for i, t in enumerate([*self.special_tokens, *base])}
        if vocab_size < len(vocab):
            raise TokenizerError(
                f"vocab size {vocab_size} is smaller than the base alphabet: {len(self.special_tokens)} special tokens + {len(base)} "
                f"base symbols; use --vocab-size {len(vocab)} or more (each merge adds one token)"
                + (", or keep fewer characters with --limit-alphabet N" if self.algo == "bpe" else "")
            )
        words = [[vocab[s] for s in self.symbols(w) if s in vocab] for w in word_counts]
        bar = progress_of(total=vocab_size - len(vocab), desc="merging pairs", unit=" merges", enabled=progress)
        new_symbol = symbol_minter(vocab, vocab_size, self.join, bar.update)
        merges = count_merges(PairCounts(words, list(word_counts.values())), new_symbol, min_freq)
        bar.close()
        self._set_vocab(vocab)
        tokens = list(vocab)
        self.merges = [(tokens[a], tokens[b]) for a, b in merges]
        self._index_merges()
        return self

    # --- encoding -------------------------------------------------------------------------------------------

    def _index_merges(self) -> None:
        """Ranks of the merges as id pairs and the id each one creates, in a `Merger` (compiled when built), and a fresh word cache."""
        ranks: dict[tuple[int, int], int] = {}
        merged: list[int] = []
        for rank, (a, b) in enumerate(self.merges):
            ids = [self.vocab.get(t) for t in (a, b, self.join(a, b))]
            if None in ids:
                raise TokenizerError(f"merge {rank} ({a!r}, {b!r}) uses a token missing from the vocabulary; the tokenizer file is corrupted")
            ranks.setdefault((ids[0], ids[1]), rank)
            merged.append(ids[2])
        self._merger = self._new_merger(ranks, merged)
        self.word_ids = lru_cache(maxsize=WORD_CACHE)(self._encode_word)

    def _new_merger(self, ranks: dict[tuple[int, int], int], merged: list[int]) -> Merger:
        """The merge loop over the ranks (`pairmerge.merger`: compiled when built)."""
        return merger(ranks, merged)

    def _initial_ids(self, word: str) -> list[int]:
        unk = self.unk_id
        ids = (self.vocab.get(s, unk) for s in self.symbols(word))
        return [i for i in ids if i is not None]

    def _encode_word(self, word: str) -> tuple[int, ...]:
        return tuple(self._merger.merge(self._initial_ids(word)))

    def tokenize(self, text: str) -> list[str]:
        return [self.id_to_token[i] for i in self.encode(text)]

    def decode(self, ids: Sequence[int]) -> str:
        """Concatenate the tokens; each end-of-word marker becomes a space (none after the last token)."""
        specials = set(self.special_tokens)
        tokens = [t for t in (self.id_to_token.get(i) for i in ids) if t is not None and t not in specials]
        if not self.end_of_word_suffix:
            return " ".join(tokens)
        last = len(tokens) - 1
        return "".join(t.replace(self.end_of_word_suffix, "" if k == last else " ") for k, t in enumerate(tokens))

    # --- Hugging Face format --------------------------------------------------------------------------------

    def options(self) -> dict[str, Any]:
        return {"limit_alphabet": self.limit_alphabet}

    def hf_model(self) -> dict[str, Any]:
        """The `model` entry of tokenizer.json."""
        return {
            "type": "BPE", "dropout": None, "unk_token": self.unk_token if self.unk_id is not None else None,
            "continuing_subword_prefix": None, "end_of_word_suffix": self.end_of_word_suffix, "fuse_unk": False,
            "byte_fallback": False, "ignore_merges": False, "vocab": self.vocab, "merges": [list(m) for m in self.merges],
        }

    def hf_pipeline(self) -> dict[str, Any]:
        """The normalizer, pre-tokenizer, post-processor and decoder entries of tokenizer.json."""
        decoder = {"type": "BPEDecoder", "suffix": self.end_of_word_suffix} if self.end_of_word_suffix else None
        return {"normalizer": None, "pre_tokenizer": {"type": self.pre_tokenizer}, "post_processor": None, "decoder": decoder}

    def to_hf_json(self) -> str:
        data = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": hf_added_tokens(self.vocab, self.special_tokens),
                **self.hf_pipeline(), "model": self.hf_model()}
        return json.dumps(data, ensure_ascii=False, indent=1)

    @classmethod
    def read_hf_model(cls, data: dict[str, Any]) -> dict[str, Any]:
        """Constructor arguments from the BPE `model` of a parsed tokenizer.json, checked for what nlplab supports."""
        model = data.get("model")
        if not isinstance(model, dict) or model.get("type") != "BPE":
            raise TokenizerError(f"expected a BPE model for the {cls.algo} tokenizer, found {model.get('type') if isinstance(model, dict) else model!r}")
        vocab, merges = model.get("vocab"), model.get("merges")
        if not isinstance(vocab, dict) or not isinstance(merges, list):
            raise TokenizerError("tokenizer.json: the BPE model needs a `vocab` object and a `merges` list; the file is corrupted")
        for key in ("dropout", "continuing_subword_prefix", "byte_fallback", "ignore_merges"):
            if model.get(key):
                raise TokenizerError(f"tokenizer.json: BPE option {key}={model[key]!r} is not supported by nlplab")
        if data.get("normalizer") is not None:
            raise TokenizerError(f"tokenizer.json: normalizer {data['normalizer'].get('type')!r} is not supported for BPE")
        pairs = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in merges]
        if not all(len(p) == 2 and all(isinstance(t, str) for t in p) for p in pairs):
            raise TokenizerError("tokenizer.json: every merge must be two tokens; the file is corrupted")
        return {"vocab": vocab, "merges": pairs, "special_tokens": hf_special_tokens(data), "unk_token": model.get("unk_token")}

    @classmethod
    def from_hf_json(cls, data: dict[str, Any], options: dict[str, Any]) -> BPETokenizer:
        args = cls.read_hf_model(data)
        pre = data.get("pre_tokenizer")
        suffix = data["model"].get("end_of_word_suffix")
        return cls(**args, end_of_word_suffix=suffix, pre_tokenizer=pre.get("type") if isinstance(pre, dict) else None,
                   limit_alphabet=options.get("limit_alphabet"))
