"""From text to words, before any subword model: BERT's normalizer and the pre-tokenizers of the subword
tokenizers, each defined as Hugging Face `tokenizers` defines it, so that a saved `tokenizer.json` names
them and reproduces them exactly.

Character classes follow Rust's: whitespace is Unicode's White_Space property (`char::is_whitespace`),
punctuation is ASCII punctuation plus the Unicode categories P*. Python's Unicode tables are newer than
those of `tokenizers`, so a few hundred rarely used code points added to Unicode since may be classed
differently.
"""

from __future__ import annotations

import unicodedata
from dataclasses import asdict, dataclass
from typing import Any

import regex

from nlplab.errors import TokenizerError

WHITE_SPACE = r"\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
PUNCTUATION = r"\x21-\x2f\x3a-\x40\x5b-\x60\x7b-\x7e\p{P}"
CJK = (r"\u4e00-\u9fff\u3400-\u4dbf\U00020000-\U0002a6df\U0002a700-\U0002b73f\U0002b740-\U0002b81f"
       r"\U0002b920-\U0002ceaf\uf900-\ufaff\U0002f800-\U0002fa1f")

# Hugging Face pre-tokenizer type -> the words it keeps (matches of the pattern; everything else is dropped).
PRE_TOKENIZERS: dict[str, regex.Pattern[str]] = {
    "BertPreTokenizer": regex.compile(rf"[^{WHITE_SPACE}{PUNCTUATION}]+|[{PUNCTUATION}]"),
    "Whitespace": regex.compile(r"\w+|[^\w\s]+"),
    "WhitespaceSplit": regex.compile(rf"[^{WHITE_SPACE}]+"),
}

_CONTROL = regex.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffd\p{Cf}\p{Co}\p{Cs}]+")
_SPACE = regex.compile(rf"[{WHITE_SPACE}]")
_CJK_CHAR = regex.compile(rf"[{CJK}]")
_NONSPACING_MARK = regex.compile(r"\p{Mn}+")


def word_pattern(name: str) -> regex.Pattern[str]:
    """The word pattern of the Hugging Face pre-tokenizer `name` (a key of PRE_TOKENIZERS)."""
    if name not in PRE_TOKENIZERS:
        raise TokenizerError(f"pre-tokenizer {name!r} is not supported; choose one of {', '.join(PRE_TOKENIZERS)}")
    return PRE_TOKENIZERS[name]


@dataclass(frozen=True)
class BertNormalizer:
    """BERT's text cleanup, in Hugging Face's order: drop control characters and map whitespace to ' '
    (`clean_text`); put spaces around CJK ideographs so each becomes a word (`handle_chinese_chars`);
    decompose (NFD) and drop non-spacing marks (`strip_accents`, None = same as `lowercase`); lower-case
    character by character (`lowercase`)."""

    clean_text: bool = True
    handle_chinese_chars: bool = True
    strip_accents: bool | None = None
    lowercase: bool = True

    def __call__(self, text: str) -> str:
        if self.clean_text:
            text = _SPACE.sub(" ", _CONTROL.sub("", text))
        if self.handle_chinese_chars:
            text = _CJK_CHAR.sub(r" \g<0> ", text)
        if self.lowercase if self.strip_accents is None else self.strip_accents:
            text = _NONSPACING_MARK.sub("", unicodedata.normalize("NFD", text))
        if self.lowercase:
            text = "".join(map(str.lower, text))
        return text

    def to_hf(self) -> dict[str, Any]:
        return {"type": "BertNormalizer", **asdict(self)}

    @classmethod
    def from_hf(cls, data: dict[str, Any]) -> BertNormalizer:
        if data.get("type") != "BertNormalizer":
            raise TokenizerError(f"normalizer {data.get('type')!r} is not supported; only BertNormalizer is")
        return cls(**{k: data[k] for k in ("clean_text", "handle_chinese_chars", "strip_accents", "lowercase") if k in data})


def split_isolated(pattern: regex.Pattern[str], text: str) -> list[str]:
    """The matches of `pattern` in `text` and the non-empty gaps between them, in order (Hugging Face's
    `Split` with behavior "Isolated"; GPT-2's pattern matches every character, so it leaves no gaps)."""
    pieces, end = [], 0
    for m in pattern.finditer(text):
        if m.start() > end:
            pieces.append(text[end : m.start()])
        pieces.append(m.group())
        end = m.end()
    if end < len(text):
        pieces.append(text[end:])
    return pieces
