"""Metrics of sequence labelling over spans: entities (BIO tags), words (B/M/E/S tags), and token accuracy.

A span is (type, start, end) with `end` exclusive. Predicted and gold spans match only exactly (same type,
same start and end). Over a corpus, with TP the matched spans:

    precision = TP / predicted spans,  recall = TP / gold spans,  F1 = 2·P·R / (P + R)    (0 when undefined)

micro-averaged over all spans, and per type. Tags are read leniently as conlleval and seqeval do: I-X opens a
new entity unless it follows B-X or I-X; for words, M or E without an open word opens one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from nlplab.errors import DataError

Span = tuple[str, int, int]


def bio_spans(tags: Sequence[str]) -> list[Span]:
    """Entities of one sentence: ["B-PER", "I-PER", "O", "I-LOC"] -> [("PER", 0, 2), ("LOC", 3, 4)]."""
    spans, start, kind = [], None, ""
    for i, tag in enumerate([*tags, "O"]):
        prefix, _, this = tag.partition("-")
        if prefix == "I" and start is not None and this == kind:
            continue
        if start is not None:
            spans.append((kind, start, i))
            start = None
        if prefix in ("B", "I"):
            start, kind = i, this
    return spans


def bmes_spans(tags: Sequence[str]) -> list[Span]:
    """Words of one sentence from B(egin)/M(iddle)/E(nd)/S(ingle) tags: [B, E, S] -> [("word", 0, 2), ("word", 2, 3)]."""
    spans, start = [], None
    for i, tag in enumerate(tags):
        if tag in ("B", "S") and start is not None:
            spans.append(("word", start, i))
            start = None
        if start is None:
            start = i
        if tag in ("E", "S"):
            spans.append(("word", start, i + 1))
            start = None
    if start is not None:
        spans.append(("word", start, len(tags)))
    return spans


def word_spans(words: Sequence[str]) -> list[Span]:
    """Spans of a segmentation given as words: ["今天", "好"] -> [("word", 0, 2), ("word", 2, 3)]."""
    spans, start = [], 0
    for word in words:
        spans.append(("word", start, start + len(word)))
        start += len(word)
    return spans


def _prf(tp: int, predicted: int, gold: int) -> dict[str, float | int]:
    precision = tp / predicted if predicted else 0.0
    recall = tp / gold if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "support": gold}


def span_report(gold: Sequence[Sequence[Span]], predicted: Sequence[Sequence[Span]]) -> dict[str, Any]:
    """Micro precision/recall/F1 of exact span matches over sentences, and the same per type under "per_type"."""
    if len(gold) != len(predicted):
        raise DataError(f"gold and predicted must cover the same sentences; got {len(gold)} and {len(predicted)}")
    counts: dict[str, Counter[str]] = {"tp": Counter(), "gold": Counter(), "pred": Counter()}
    for g, p in zip(gold, predicted):
        g, p = set(g), set(p)
        counts["tp"].update(kind for kind, _, _ in g & p)
        counts["gold"].update(kind for kind, _, _ in g)
        counts["pred"].update(kind for kind, _, _ in p)
    kinds = sorted(counts["gold"].keys() | counts["pred"].keys())
    total = {name: sum(c.values()) for name, c in counts.items()}
    return {**_prf(total["tp"], total["pred"], total["gold"]),
            "per_type": {k: _prf(counts["tp"][k], counts["pred"][k], counts["gold"][k]) for k in kinds}}


def token_accuracy(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> float:
    """Fraction of tokens whose predicted tag equals the gold tag, over all sentences."""
    pairs = [(g, p) for gs, ps in zip(gold, predicted, strict=True) for g, p in zip(gs, ps, strict=True)]
    return sum(g == p for g, p in pairs) / len(pairs) if pairs else 0.0


SPANS: dict[str, Callable[[Sequence[str]], list[Span]]] = {"ner": bio_spans, "seg": bmes_spans}


def tagging_report(scheme: str, gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> dict[str, Any]:
    """The metrics of a tagging scheme: "ner" entity spans, "seg" word spans, "pos" per-token tags. Every report
    has `accuracy` (per token) and micro `precision`/`recall`/`f1`; for "pos" the three equal the accuracy
    (each token is one prediction and one gold item) and `per_type` holds per-tag figures."""
    accuracy = token_accuracy(gold, predicted)
    if scheme in SPANS:
        spans = SPANS[scheme]
        report = span_report([spans(g) for g in gold], [spans(p) for p in predicted])
    else:
        as_spans = lambda tags: [(tag, i, i + 1) for i, tag in enumerate(tags)]
        report = span_report([as_spans(g) for g in gold], [as_spans(p) for p in predicted])
    return {**report, "accuracy": accuracy}
