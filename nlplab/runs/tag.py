"""A trained tagger in use: entities with their offsets (ner), words (seg) or words with tags (pos)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nlplab.data.tagging import TAGGING_DATASETS, Tagged, check_tags, load_tagging, read_tagged
from nlplab.models.tagger import Tagger, TaggerConfig
from nlplab.runs.base import Record, RunPredictor, check_inputs
from nlplab.train.checkpoint import run_json
from nlplab.train.config import TrainConfig
from nlplab.train.spans import bio_spans, bmes_spans
from nlplab.train.tag import encode, predict, scheme_report


class TaggerPredictor(RunPredictor):
    """A `--task tag` run. A sentence longer than the window is tagged in windows and joined, never cut."""

    task = "tag"
    abilities = ("predict", "evaluate")

    def __init__(self, run_dir: Path, cfg: TrainConfig, device: str = "auto") -> None:
        self.scheme: str = run_json(run_dir, "labels.json")["scheme"]
        super().__init__(run_dir, cfg, device)
        self.labels: list[str] = self.model.cfg.labels

    def build(self, shape: dict[str, Any]) -> Tagger:
        return Tagger(TaggerConfig(**shape))

    def tag(self, sentences: Sequence[Sequence[str]]) -> list[list[str]]:
        """Tag names of each sentence, given as characters."""
        items = [Tagged(list(chars), []) for chars in sentences]
        _, predicted = predict(self.model, encode(self.tokenizer, items, None, self.cfg.window_size), len(items),
                               self.tokenizer.pad_id, self.device)
        return [[self.labels[t] for t in p] for p in predicted]

    def predict(self, inputs: Sequence[str]) -> list[Record]:
        """Per text: its tags (one per non-space character) and, by scheme, `entities` ({text, type, start, end},
        offsets into the text as given), `words` (seg) or `words` with their tags (pos)."""
        check_inputs(inputs)
        where = [[i for i, c in enumerate(text) if not c.isspace()] for text in inputs]
        tagged = self.tag([[text[i] for i in w] for text, w in zip(inputs, where)])
        records = []
        for text, w, tags in zip(inputs, where, tagged):
            record: Record = {"text": text, "tags": tags, "truncated": False}
            if self.scheme == "ner":
                record["entities"] = [{"text": text[w[s]:w[e - 1] + 1], "type": kind, "start": w[s], "end": w[e - 1] + 1}
                                      for kind, s, e in bio_spans(tags)]
            else:
                spans = bmes_spans(tags) if self.scheme == "seg" else bio_spans(tags)
                record["words"] = [{"word": "".join(text[i] for i in w[s:e]), **({} if self.scheme == "seg" else {"tag": kind})}
                                   for kind, s, e in spans]
            records.append(record)
        return records

    def evaluate(self, data: str | None = None) -> Record:
        if data and data not in TAGGING_DATASETS:
            items = read_tagged(data)
        else:
            items = load_tagging(data or self.cfg.data, None if data else self.cfg.dev).test
        source = self.test_source(data)
        check_tags(items, self.labels, source)
        encoded = encode(self.tokenizer, items, self.labels, self.cfg.window_size)
        loss, predicted = predict(self.model, encoded, len(items), self.tokenizer.pad_id, self.device)
        return {"data": source, "examples": len(items), "scheme": self.scheme,
                **scheme_report(self.scheme, self.labels, items, predicted, loss)}
