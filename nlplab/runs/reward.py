"""A trained reward model in use: the score r(x, y) of (prompt, response) pairs, and its ranking of preference pairs."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

from nlplab.data.preferences import PREFERENCE_SETS, load_preferences, padded_rows, read_preferences
from nlplab.errors import DataError
from nlplab.models.lm import LMConfig
from nlplab.models.reward import RewardModel
from nlplab.runs.base import Record, RunPredictor
from nlplab.runtime import evaluating
from nlplab.train.reward import reward_figures
from nlplab.train.stage import preference_report, preference_rows, stage_row


def as_response(item: str | Sequence[str], number: int) -> tuple[str, str]:
    """`prompt<TAB>response` (the format of `nlplab predict` for reward runs) or [prompt, response]; the prompt may
    be empty, the response may not."""
    cells = item.split("\t") if isinstance(item, str) else list(item)
    if len(cells) != 2 or not all(isinstance(c, str) for c in cells) or not cells[1].strip():
        raise DataError(f"input {number}: a reward run scores `prompt<TAB>response` (or a pair of texts) with a non-empty "
                        f"response, found {item!r}; in a shell write $'写一条好评：\\t很满意'")
    return cells[0], cells[1]


class RewardPredictor(RunPredictor):
    """A `--task reward` run: `predict` gives r(x, y) of each (prompt, response); `evaluate` the loss, accuracy and
    margin on preference pairs (a JSONL file, all of it, or a named set's test split)."""

    task = "reward"
    abilities = ("predict", "evaluate")

    def build(self, shape: dict[str, Any]) -> RewardModel:
        return RewardModel.build(LMConfig(**shape))

    def predict(self, inputs: Sequence[str | Sequence[str]], batch_size: int = 64) -> list[Record]:
        if not inputs:
            raise DataError("nothing to predict: give at least one prompt<TAB>response")
        pairs = [as_response(item, number) for number, item in enumerate(inputs, start=1)]
        rows = [stage_row(self.tokenizer, prompt, response, self.cfg.window_size) for prompt, response in pairs]
        scores = []
        with evaluating(self.model):
            for start in range(0, len(rows), batch_size):
                batch = padded_rows(rows[start : start + batch_size], self.tokenizer.pad_id)
                scores += self.model.score(batch["ids"].to(self.device), batch["lengths"]).float().tolist()
        full = [len(self.tokenizer.encode(p)) + len(self.tokenizer.encode(r)) + 2 for p, r in pairs]
        return [{"prompt": p, "response": r, "reward": s, "truncated": n > self.cfg.window_size}
                for (p, r), s, n in zip(pairs, scores, full)]

    def evaluate(self, data: str | None = None) -> Record:
        if data and data not in PREFERENCE_SETS:
            pairs, skipped = read_preferences(data)
        else:
            dataset = load_preferences(data or self.cfg.data, None if data else self.cfg.dev, self.cfg.max_chars)
            pairs, skipped = dataset.test, dataset.skipped
        rows = preference_rows(self.tokenizer, pairs, self.cfg.window_size)
        report = preference_report(self.model, partial(reward_figures, self.model), rows, self.tokenizer.pad_id,
                                   self.device)
        return {"data": self.test_source(data), "examples": report.pop("pairs"), "skipped_pairs": skipped, **report}
