"""Incremental detokenisation: the text of token ids that arrive one at a time, at a constant cost per token, with
stop strings.

Decoding the whole continuation after every token costs O(n) per token, O(n²) in all. Instead the text grows by the
difference of two decodes of a short window of ids (the scheme of vLLM's detokenizer):

    fresh = decode(ids[s:]) − decode(ids[s:r])       ids[s:r]: the ids of the last released piece; r: all released

The window starts one piece back, so each tokenizer's decode sees the context it looks at (WordPiece's `##` glue,
the space between two Latin words, BPE's end-of-word marker); every tokenizer of `nlplab.text` decodes locally,
so the released pieces add up to decode(ids) (tested on random ids). A byte-level BPE token may end inside a UTF-8
character, whose bytes decode to U+FFFD until the token that completes it arrives: while decode(ids[s:]) ends in
U+FFFD (or adds nothing) the fresh text is held back as `pending`, and `text` only ever holds whole characters.

Stop strings are searched in text + pending after each id, from the last len(longest stop) − 1 released characters
on (no match can start earlier that was not found before), so a stop string spanning tokens is caught at the id
that completes it: the ids end there and the text is cut before the stop, as decoding every prefix would find.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

REPLACEMENT = "\ufffd"
"""What UTF-8 decoding with errors="replace" gives for an unfinished character."""


class Detokenizer:
    """The text of ids added one at a time (see the module docstring). After each `add`: `ids` (the ids taken),
    `text` (released whole characters, cut before a stop string once one appeared), `pending` (what the ids after
    the released ones decode to so far) and `full` = text + pending = decode(ids), cut at a stop."""

    def __init__(self, decode: Callable[[Sequence[int]], str], stop: Iterable[str] = ()) -> None:
        self.decode = decode
        self.stop = tuple(s for s in stop if s)
        self.reach = max(map(len, self.stop), default=1) - 1
        self.ids: list[int] = []
        self.text = self.pending = ""
        self.start = self.read = 0
        self.stopped = False

    @property
    def full(self) -> str:
        return self.text + self.pending

    def add(self, token: int) -> bool:
        """Take the next id; True when a stop string has appeared (the continuation ends with this id)."""
        self.ids.append(token)
        before = self.decode(self.ids[self.start : self.read])
        now = self.decode(self.ids[self.start :])
        fresh = now[len(before) :]
        if self.stop:
            begin = max(0, len(self.text) - self.reach)
            seen = self.text[begin:] + fresh
            hits = [i for i in (seen.find(s) for s in self.stop) if i >= 0]
            if hits:
                self.text, self.pending, self.stopped = self.text[:begin] + seen[: min(hits)], "", True
                return True
        if now.endswith(REPLACEMENT) or len(now) <= len(before):
            self.pending = fresh
        else:
            self.text, self.pending = self.text + fresh, ""
            self.start, self.read = self.read, len(self.ids)
        return False

