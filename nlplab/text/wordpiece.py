"""WordPiece (Schuster & Nakajima, 2012; BERT, Devlin et al., 2019): subwords chosen by likelihood, encoded
greedily, longest match first.

Text first goes through BERT's basic tokenizer (`BertNormalizer` + the BERT pre-tokenizer: clean-up,
CJK ideographs one by one, optional lower-casing and accent stripping, split on whitespace and punctuation).
A word starts as its characters, all but the first marked as continuations: `play` -> `p ##l ##a ##y`.
Training merges the adjacent pair with the highest score

    score(a, b) = count(ab) / (count(a) · count(b))

(how much more often a and b occur together than apart), so that rare parts are fused before common ones.
Encoding takes, at each position of a word, the longest vocabulary entry that matches (`##` after the
first piece); a word with no match becomes [UNK]. `encode` adds [CLS] ... [SEP] as BERT does. Saved as a
Hugging Face `WordPiece` model; loads `tokenizer.json` files of BERT-style models.
"""

from __future__ import annotations

import heapq
import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

from nlplab.errors import TokenizerError
from nlplab.io import progress as progress_of
from nlplab.text.base import PAD, UNK, Tokenizer, hf_added_tokens, hf_special_tokens
from nlplab.text.bpe import WORD_CACHE
from nlplab.text.pairmerge import Pair, PairCounts
from nlplab.text.pretokenize import PRE_TOKENIZERS, BertNormalizer

CLS, SEP, MASK = "[CLS]", "[SEP]", "[MASK]"
PREFIX = "##"


class WordPieceTokenizer(Tokenizer):
    """BERT's tokenizer. `merges` lists the pairs fused by training, in order (not saved in tokenizer.json)."""

    algo = "wordpiece"

    def __init__(
        self,
        vocab: dict[str, int] | None = None,
        special_tokens: Sequence[str] = (PAD, UNK, CLS, SEP, MASK),
        lowercase: bool = True,
        strip_accents: bool | None = None,
        handle_chinese_chars: bool = True,
        clean_text: bool = True,
        unk_token: str = UNK,
        prefix: str = PREFIX,
        max_input_chars_per_word: int = 100,
        cls_token: str | None = CLS,
        sep_token: str | None = SEP,
    ) -> None:
        super().__init__(vocab, special_tokens)
        self.normalizer = BertNormalizer(clean_text, handle_chinese_chars, strip_accents, lowercase)
        self.unk_token, self.prefix, self.max_input_chars_per_word = unk_token, prefix, max_input_chars_per_word
        self.cls_token, self.sep_token = cls_token, sep_token
        self.merges: list[tuple[str, str]] = []
        self.word_ids = lru_cache(maxsize=WORD_CACHE)(self._encode_word)

    def words(self, text: str) -> list[str]:
        """BERT's basic tokenizer on `text` (which holds no special token)."""
        return PRE_TOKENIZERS["BertPreTokenizer"].findall(self.normalizer(text))

    def symbols(self, word: str) -> list[str]:
        return [word[0], *(self.prefix + c for c in word[1:])]

    def join(self, a: str, b: str) -> str:
        return a + b[len(self.prefix) :]

    # --- training -------------------------------------------------------------------------------------------

    def train(self, texts: Iterable[str], vocab_size: int | None = None, min_freq: int = 1, progress: bool = False) -> WordPieceTokenizer:
        """Merge the pair of highest score until the vocabulary (special tokens and base symbols included)
        holds `vocab_size` tokens; pairs seen fewer than `min_freq` times are never merged."""
        if vocab_size is None:
            raise TokenizerError("the wordpiece tokenizer needs a vocabulary size: pass vocab_size (--vocab-size), e.g. 8000")
        word_counts = self.count_words(texts, progress)
        base = sorted({s for w in word_counts for s in self.symbols(w)} - set(self.special_tokens))
        vocab = {t: i for i, t in enumerate([*self.special_tokens, *base])}
        if vocab_size < len(vocab):
            raise TokenizerError(
                f"vocab size {vocab_size} is smaller than the base alphabet: {len(self.special_tokens)} special tokens + {len(base)} "
                f"characters and ## continuations; use --vocab-size {len(vocab) + 1000} or more"
            )
        tokens = list(vocab)
        counts = PairCounts([[vocab[s] for s in self.symbols(w)] for w in word_counts], list(word_counts.values()))
        merges = self._score_merges(counts, tokens, vocab, vocab_size, min_freq, progress)
        self._set_vocab(vocab)
        self.merges = [(tokens[a], tokens[b]) for a, b in merges]
        self.word_ids = lru_cache(maxsize=WORD_CACHE)(self._encode_word)
        return self

    def _score_merges(self, counts: PairCounts, tokens: list[str], vocab: dict[str, int], vocab_size: int, min_freq: int, progress: bool) -> list[Pair]:
        """The merge loop. A heap holds (-score, a, b), out-of-date entries are re-scored when they surface.
        A merge lowers count(a) and count(b), which raises the score of every other pair holding a or b:
        those are pushed again with their new score, so the heap never under-rates a pair."""
        symbol_counts: Counter[int] = Counter()
        for word, n in zip(counts.words, counts.counts):
            for s in word:
                symbol_counts[s] += n
        pairs_of: defaultdict[int, set[Pair]] = defaultdict(set)
        for a, b in counts.pairs:
            pairs_of[a].add((a, b))
            pairs_of[b].add((a, b))

        def score(pair: Pair) -> float:
            return counts.pairs[pair] / (symbol_counts[pair[0]] * symbol_counts[pair[1]])

        heap = [(-score(p), *p) for p in counts.pairs]
        heapq.heapify(heap)
        merges: list[Pair] = []
        bar = progress_of(total=vocab_size - len(vocab), desc="merging pairs", unit=" merges", enabled=progress)
        while heap and len(vocab) < vocab_size:
            neg, a, b = heapq.heappop(heap)
            if counts.pairs.get((a, b), 0) < max(min_freq, 1):
                continue
            if score((a, b)) != -neg:
                heapq.heappush(heap, (-score((a, b)), a, b))
                continue
            token = self.join(tokens[a], tokens[b])
            if token not in vocab:
                vocab[token] = len(tokens)
                tokens.append(token)
                bar.update()
            new = vocab[token]
            merges.append((a, b))
            merged, rose = counts.merge(a, b, new)
            symbol_counts[a] -= merged
            symbol_counts[b] -= merged
            symbol_counts[new] += merged
            for p in rose:
                pairs_of[p[0]].add(p)
                pairs_of[p[1]].add(p)
            for s in {a, b, new}:
                pairs_of[s] = {p for p in pairs_of[s] if counts.pairs.get(p, 0) > 0}
                for p in pairs_of[s]:
                    heapq.heappush(heap, (-score(p), *p))
        bar.close()
        return merges

    # --- encoding -------------------------------------------------------------------------------------------

    def _encode_word(self, word: str) -> tuple[int, ...]:
        """Greedy longest-match-first; the whole word is [UNK] if some position matches nothing."""
        unk = () if self.unk_id is None else (self.unk_id,)
        if len(word) > self.max_input_chars_per_word:
            return unk
        ids, start = [], 0
        while start < len(word):
            for end in range(len(word), start, -1):
                piece = word[start:end] if start == 0 else self.prefix + word[start:end]
                if piece in self.vocab:
                    ids.append(self.vocab[piece])
                    start = end
                    break
            else:
                return unk
        return tuple(ids)

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        """Token ids of `text`, wrapped in [CLS] ... [SEP] (when the vocabulary has them) unless told otherwise."""
        ids = super().encode(text)
        if add_special_tokens and self.cls_token in self.vocab and self.sep_token in self.vocab:
            ids = [self.vocab[self.cls_token], *ids, self.vocab[self.sep_token]]
        return ids

    def tokenize(self, text: str) -> list[str]:
        return [self.id_to_token[i] for i in self.encode(text, add_special_tokens=False)]

    def decode(self, ids: Sequence[int]) -> str:
        """Tokens joined by spaces, continuation pieces glued to the piece before them."""
        specials = set(self.special_tokens)
        tokens = [t for t in map(self.id_to_token.get, ids) if t is not None and t not in specials]
        return "".join(t if k == 0 else t[len(self.prefix) :] if t.startswith(self.prefix) else " " + t for k, t in enumerate(tokens))

    # --- Hugging Face format --------------------------------------------------------------------------------

    def hf_post_processor(self) -> dict[str, Any] | None:
        """BERT's template: [CLS] A [SEP] (and B [SEP] for pairs)."""
        cls, sep = self.cls_token, self.sep_token
        if cls not in self.vocab or sep not in self.vocab:
            return None

        def special(token: str, type_id: int) -> dict[str, Any]:
            return {"SpecialToken": {"id": token, "type_id": type_id}}

        def sequence(name: str, type_id: int) -> dict[str, Any]:
            return {"Sequence": {"id": name, "type_id": type_id}}

        return {
            "type": "TemplateProcessing",
            "single": [special(cls, 0), sequence("A", 0), special(sep, 0)],
            "pair": [special(cls, 0), sequence("A", 0), special(sep, 0), sequence("B", 1), special(sep, 1)],
            "special_tokens": {t: {"id": t, "ids": [self.vocab[t]], "tokens": [t]} for t in (cls, sep)},
        }

    def to_hf_json(self) -> str:
        data = {
            "version": "1.0", "truncation": None, "padding": None, "added_tokens": hf_added_tokens(self.vocab, self.special_tokens),
            "normalizer": self.normalizer.to_hf(), "pre_tokenizer": {"type": "BertPreTokenizer"},
            "post_processor": self.hf_post_processor(), "decoder": {"type": "WordPiece", "prefix": self.prefix, "cleanup": False},
            "model": {"type": "WordPiece", "unk_token": self.unk_token, "continuing_subword_prefix": self.prefix,
                      "max_input_chars_per_word": self.max_input_chars_per_word, "vocab": self.vocab},
        }
        return json.dumps(data, ensure_ascii=False, indent=1)

    @classmethod
    def from_hf_json(cls, data: dict[str, Any], options: dict[str, Any]) -> WordPieceTokenizer:
        model = data.get("model")
        if not isinstance(model, dict) or model.get("type") != "WordPiece" or not isinstance(model.get("vocab"), dict):
            raise TokenizerError(f"expected a WordPiece model with a vocab for the wordpiece tokenizer, found {model.get('type') if isinstance(model, dict) else model!r}")
        if (data.get("pre_tokenizer") or {}).get("type") != "BertPreTokenizer":
            raise TokenizerError(f"tokenizer.json: pre-tokenizer {data.get('pre_tokenizer')!r} is not supported for WordPiece; expected BertPreTokenizer")
        normalizer = data.get("normalizer")
        norm = BertNormalizer.from_hf(normalizer) if normalizer is not None else BertNormalizer(False, False, False, False)
        cls_token, sep_token = cls.read_post_processor(data.get("post_processor"))
        return cls(
            model["vocab"], hf_special_tokens(data), lowercase=norm.lowercase, strip_accents=norm.strip_accents,
            handle_chinese_chars=norm.handle_chinese_chars, clean_text=norm.clean_text, unk_token=model.get("unk_token", UNK),
            prefix=model.get("continuing_subword_prefix", PREFIX), max_input_chars_per_word=model.get("max_input_chars_per_word", 100),
            cls_token=cls_token, sep_token=sep_token,
        )

    @staticmethod
    def read_post_processor(post: dict[str, Any] | None) -> tuple[str | None, str | None]:
        """The (first, last) special tokens wrapped around a single text: BertProcessing or a
        TemplateProcessing of the form `X $A Y`; none without a post-processor."""
        if post is None:
            return None, None
        if post.get("type") == "BertProcessing":
            return post["cls"][0], post["sep"][0]
        single = post.get("single", [])
        if post.get("type") == "TemplateProcessing" and [next(iter(p)) for p in single] == ["SpecialToken", "Sequence", "SpecialToken"]:
            return single[0]["SpecialToken"]["id"], single[2]["SpecialToken"]["id"]
        raise TokenizerError(f"tokenizer.json: post-processor {post.get('type')!r} is not supported; expected [CLS] $A [SEP] (BertProcessing or TemplateProcessing)")
