"""Continuous batching (Yu et al., 2022, "Orca": scheduling by iteration): sequences decode together, a new one
joins the running batch at the next step and a finished one leaves at once, each with its own rows of the KV cache.

Rows hold different lengths, so nlplab's GPT keeps them right-aligned (left padding):

    cache k, v (B, H, W, d)   row i's L_i real positions are the last L_i of the W columns, W = max_i L_i
    mask (B, W)               True at real positions
    a step feeds each row its last token at its own position L_i, appends one column, and attends under the mask.

A joining sequence is prefilled alone (its prompt through the model without a cache: the computation of unbatched
decoding), then padded on the left to W, or the batch to its length; a leaving one's rows are dropped with the
columns no row uses any more. Each row picks its token with its own picker (its own seeded generator), so what a
sequence generates does not depend on its batch-mates: batched equals unbatched (greedy ids identical,
probabilities equal up to float rounding; tested). Other models (recurrent LMs, mixtures of experts, whose expert
capacity depends on the batch, and `transformers` architectures) decode one sequence at a time through the same
interface.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from nlplab.errors import ConfigError
from nlplab.generate.causal import CausalLM, sampling_on_cpu
from nlplab.generate.decoding import Picker, Step
from nlplab.generate.detokenize import Detokenizer
from nlplab.models.gpt import GPT


@dataclass(eq=False)
class Decoding:
    """One sequence being generated: its prompt, picker (a greedy argmax or a sampler with its own generator) and
    budget; `ids`, `text` (None without a tokenizer; whole characters while it runs, see `Detokenizer`), `logprobs`
    (log p of each chosen token) grow as it decodes; `finish` is None while it runs, then "stop" (EOS or a stop
    string), "length" (budget spent), "cancelled" or "error" (a failed step)."""

    prompt: list[int]
    pick: Picker
    max_new_tokens: int
    stop: tuple[str, ...] = ()
    ids: list[int] = field(default_factory=list)
    text: str | None = None
    logprobs: list[float] = field(default_factory=list)
    finish: str | None = None
    cancelled: bool = False
    tag: Any = None
    """Whatever the caller attaches (the server keeps its delivery channel here)."""
    detokenizer: Detokenizer | None = None


class RaggedCache:
    """nlplab GPT's rows of different lengths with their KV cache, right-aligned (see the module docstring)."""

    def __init__(self, model: GPT) -> None:
        self.model = model
        self.layers: list[tuple[Tensor, Tensor]] = []
        self.mask: Tensor | None = None

    def __len__(self) -> int:
        return 0 if self.mask is None else self.mask.shape[0]

    def add(self, prompt: Tensor) -> Tensor:
        """Prefill a prompt (T,) alone and append its row; its next-token logits (1, V)."""
        logits, cache = self.model(prompt[None])
        layers = [kv for kv, _ in cache]
        length = layers[0][0].shape[2]
        mask = torch.ones(1, length, dtype=torch.bool, device=prompt.device)
        if self.mask is None:
            self.layers, self.mask = layers, mask
        else:
            width = max(length, self.mask.shape[1])
            pad = lambda t: F.pad(t, (0, 0, width - t.shape[2], 0))  # noqa: E731  left padding of (B, H, W, d)
            self.layers = [(torch.cat([pad(k), pad(k1)]), torch.cat([pad(v), pad(v1)]))
                           for (k, v), (k1, v1) in zip(self.layers, layers)]
            self.mask = torch.cat([F.pad(self.mask, (width - self.mask.shape[1], 0)), F.pad(mask, (width - length, 0))])
        return logits[:, -1]

    def keep(self, rows: Sequence[int]) -> None:
        """Keep only `rows`, in that order, and cut the leading columns that no remaining row uses."""
        if not rows:
            self.layers, self.mask = [], None
            return
        assert self.mask is not None
        index = torch.tensor(list(rows), device=self.mask.device)
        mask = self.mask.index_select(0, index)
        first = int(mask.any(0).int().argmax())
        self.mask = mask[:, first:]
        self.layers = [(k.index_select(0, index)[:, :, first:], v.index_select(0, index)[:, :, first:])
                       for k, v in self.layers]

    def step(self, tokens: Tensor) -> Tensor:
        """Feed each row its next token (B,) at its own position (its count of real positions); logits (B, V)."""
        assert self.mask is not None
        positions = self.mask.sum(1, keepdim=True)
        mask = torch.cat([self.mask, torch.ones_like(self.mask[:, :1])], 1)
        logits, cache = self.model(tokens[:, None], [(kv, None) for kv in self.layers], positions, mask)
        self.layers, self.mask = [kv for kv, _ in cache], mask
        return logits[:, -1]


class SoloRows:
    """Any `step(ids, cache)` model, one sequence at a time: its own cache, or its whole sequence again when the
    model keeps none."""

    def __init__(self, step: Step) -> None:
        self.model: Step = step
        self.seq: Tensor | None = None
        self.cache: Any = None

    def __len__(self) -> int:
        return 0 if self.seq is None else 1

    def add(self, prompt: Tensor) -> Tensor:
        logits, self.cache = self.model(prompt[None], None)
        self.seq = prompt[None]
        return logits[:, -1]

    def keep(self, rows: Sequence[int]) -> None:
        if not rows:
            self.seq, self.cache = None, None

    def step(self, tokens: Tensor) -> Tensor:
        assert self.seq is not None
        self.seq = torch.cat([self.seq, tokens[:, None]], 1)
        logits, self.cache = self.model(self.seq if self.cache is None else tokens[:, None], self.cache)
        return logits[:, -1]


def batches_rows(lm: CausalLM) -> bool:
    """Whether `lm` decodes several sequences in one batch: nlplab's GPT without mixture-of-experts layers."""
    return isinstance(lm.step, GPT) and lm.step.cfg.moe_experts == 0


class ContinuousBatch:
    """Decode many sequences at once over `lm`, at most `max_batch` together (see the module docstring).

    `add(...)` queues a sequence (from any thread); each `step()` admits queued ones while there is room, picks one
    token for every running sequence, retires the finished and cancelled ones, and runs one forward pass for the
    rest; it returns the sequences that changed. A model that cannot batch rows runs with max_batch 1.
    """

    def __init__(self, lm: CausalLM, max_batch: int = 16) -> None:
        if max_batch < 1:
            raise ConfigError(f"--max-batch must be >= 1, got {max_batch}")
        self.lm = lm
        self.batched = batches_rows(lm)
        self.max_batch = max_batch if self.batched else 1
        self.rows: RaggedCache | SoloRows = RaggedCache(lm.step) if self.batched else SoloRows(lm.step)
        self.running: list[Decoding] = []
        self.logits: Tensor | None = None
        self.waiting: deque[Decoding] = deque()
        self.lock = threading.Lock()
        self.stats = {"steps": 0, "rows": 0, "peak": 0, "cancelled": 0}
        """Decoding steps run, rows decoded over them (rows / steps: the mean batch), the largest batch, cancellations."""

    def add(self, prompt: Sequence[int], pick: Picker, max_new_tokens: int, stop: Sequence[str] = (),
            tag: Any = None) -> Decoding:
        """Queue a prompt; its budget is capped to the room left in the context (a ConfigError when it does not fit
        or holds an id outside the vocabulary)."""
        self.lm.check_ids(prompt)
        decoding = Decoding(list(prompt), pick, self.lm.room(len(prompt), max_new_tokens), tuple(stop), tag=tag,
                            text="" if self.lm.has_tokenizer else None)
        if self.lm.has_tokenizer or stop:
            decoding.detokenizer = Detokenizer(self.lm.decode, stop)
        with self.lock:
            self.waiting.append(decoding)
        return decoding

    def busy(self) -> bool:
        return bool(self.running or self.waiting)

    def admit(self) -> list[Decoding]:
        """Prefill queued sequences while there is room; returns those cancelled before they started."""
        dropped, fresh = [], []
        while len(self.running) < self.max_batch:
            with self.lock:
                if not self.waiting:
                    break
                decoding = self.waiting.popleft()
            if decoding.cancelled:
                decoding.finish = "cancelled"
                self.stats["cancelled"] += 1
                dropped.append(decoding)
                continue
            self.running.append(decoding)  # before its prefill, so that a failure there aborts it with the others
            fresh.append(self.rows.add(torch.tensor(decoding.prompt, dtype=torch.long, device=self.lm.device)))
        if fresh:
            self.logits = torch.cat([self.logits, *fresh]) if self.logits is not None else torch.cat(fresh)
        return dropped

    @torch.no_grad()
    def step(self) -> list[Decoding]:
        changed = self.admit()
        if not self.running:
            return changed
        assert self.logits is not None
        self.stats["steps"] += 1
        self.stats["rows"] += len(self.running)
        self.stats["peak"] = max(self.stats["peak"], len(self.running))
        logp = F.log_softmax(self.logits.float(), dim=-1)
        tokens = []
        for i, d in enumerate(self.running):
            token = -1 if d.cancelled else self.choose(d, self.logits[i : i + 1])
            tokens.append(token)
            if d.cancelled:
                d.finish = "cancelled"
                self.stats["cancelled"] += 1
            elif token == self.lm.eos_id:
                self.end(d, "stop")
            else:
                self.extend(d, token, logp[i, token].item())
            changed.append(d)
        keep = [i for i, d in enumerate(self.running) if d.finish is None]
        if len(keep) < len(self.running):
            self.rows.keep(keep)
            self.running = [self.running[i] for i in keep]
        ids = torch.tensor([tokens[i] for i in keep], dtype=torch.long, device=self.lm.device)
        self.logits = self.rows.step(ids) if keep else None
        return changed

    def choose(self, d: Decoding, logits: Tensor) -> int:
        """The token the sequence's own picker takes from its logits (1, V), on the CPU (see `sampling_on_cpu`)."""
        history = torch.tensor([d.prompt + d.ids], dtype=torch.long)
        return int(sampling_on_cpu(d.pick)(logits, history)[0])

    def extend(self, d: Decoding, token: int, logprob: float) -> None:
        """Append a token; finish at a stop string (the text cut before it) or when the budget is spent."""
        d.ids.append(token)
        d.logprobs.append(logprob)
        if d.detokenizer is not None:
            stopped = d.detokenizer.add(token)
            d.text = d.detokenizer.text
            if stopped:
                d.finish = "stop"
                return
        if len(d.ids) >= d.max_new_tokens:
            self.end(d, "length")

    @staticmethod
    def end(d: Decoding, finish: str) -> None:
        """Finish `d`; its text becomes decode(ids) whole, with an unfinished last character as U+FFFD."""
        d.finish = finish
        if d.detokenizer is not None:
            d.text = d.detokenizer.full

    def abort(self) -> list[Decoding]:
        """End every running sequence with finish "error" (after a failed step) and empty the batch."""
        aborted, self.running, self.logits = self.running, [], None
        self.rows.keep([])
        for d in aborted:
            d.finish = "error"
        return aborted

    def cancel_all(self) -> None:
        """Cancel every running and queued sequence (the server shutting down)."""
        with self.lock:
            for d in [*self.running, *self.waiting]:
                d.cancelled = True
