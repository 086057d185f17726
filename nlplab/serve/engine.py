"""The engine: one worker thread runs every forward pass of the served model, in batches, while the web app only
awaits results.

- predict / embeddings: requests that arrive within `window` seconds of the first one form one micro-batch (at
  most `max_batch` requests), run as one call of the Predictor and split back; a batch that fails on one request's
  input is run again request by request, so the error reaches that request alone.
- generation: `nlplab.generate.continuous.ContinuousBatch` — a request joins the running batch at the next step and
  leaves it when it ends; its tokens are handed to the request's asyncio queue as they come.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from nlplab.generate.causal import CausalLM, picker
from nlplab.generate.continuous import ContinuousBatch, Decoding
from nlplab.runs import Predictor


@dataclass
class Job:
    """A predict or embed request waiting for the worker: its inputs and the future that receives its result."""

    kind: str
    inputs: list[Any]
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop


@dataclass
class Update:
    """What a generating request hears after each step: choice `index`, its ids and text so far, `finish`."""

    index: int
    ids: list[int]
    text: str | None
    finish: str | None


@dataclass
class Stream:
    """The channel of one generating request: its choices and the queue their updates arrive on."""

    loop: asyncio.AbstractEventLoop
    updates: asyncio.Queue = field(default_factory=asyncio.Queue)
    decodings: list[Decoding] = field(default_factory=list)

    def cancel(self) -> None:
        for d in self.decodings:
            d.cancelled = True


class Engine:
    def __init__(self, predictor: Predictor, max_batch: int = 16, window: float = 0.002) -> None:
        self.predictor, self.max_batch, self.window = predictor, max_batch, window
        self.lm: CausalLM | None = getattr(predictor, "lm", None)
        self.batch = ContinuousBatch(self.lm, max_batch) if self.lm is not None else None
        self.jobs: queue.Queue[Job | None] = queue.Queue()
        self.held: deque[Job] = deque()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.work, name="nlplab-engine", daemon=True)
        self.micro = {"batches": 0, "requests": 0}

    def status(self) -> dict[str, Any]:
        """Batches of predict/embed so far and their requests; for generation, whether rows share forward passes,
        the sequences running and waiting now, and the decoding statistics (`ContinuousBatch.stats`)."""
        status: dict[str, Any] = {"micro_batches": dict(self.micro)}
        if self.batch is not None:
            status |= {"batched_generation": self.batch.max_batch > 1, "running": len(self.batch.running),
                       "waiting": len(self.batch.waiting), **self.batch.stats}
        return status

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        if self.batch is not None:
            self.batch.cancel_all()
        self.jobs.put(None)
        self.thread.join(timeout=10)

    async def run(self, kind: str, inputs: Sequence[Any]) -> Any:
        """The Predictor's `predict(inputs)` records or `embed(inputs)` vectors, computed in a micro-batch."""
        loop = asyncio.get_running_loop()
        job = Job(kind, list(inputs), loop.create_future(), loop)
        self.jobs.put(job)
        return await job.future

    def generate(self, prompts: Sequence[list[int]], n: int, max_new_tokens: int, stop: Sequence[str], temperature: float,
                 top_p: float, top_k: int | None, repetition_penalty: float, seed: int | None) -> Stream:
        """Queue `n` choices of each prompt (choice k of a prompt samples with seed + k); raises ConfigError when a
        prompt does not fit the context. Updates arrive on the returned Stream."""
        assert self.batch is not None
        stream = Stream(asyncio.get_running_loop())
        strategy = "greedy" if temperature == 0 else "sample"
        for prompt in prompts:
            for k in range(n):
                pick = picker(strategy, temperature, top_k, top_p if top_p < 1 else None, repetition_penalty,
                              None if seed is None else seed + k)
                index = len(stream.decodings)
                stream.decodings.append(self.batch.add(prompt, pick, max_new_tokens, stop, tag=(stream, index)))
        self.jobs.put(None)
        return stream

    def work(self) -> None:
        """The worker thread: decode while sequences run, else wait for a job and run it with its batch-mates."""
        with torch.inference_mode():
            while not self.stopping.is_set():
                if self.batch is not None and self.batch.busy():
                    try:
                        changed = self.batch.step()
                    except Exception:  # noqa: BLE001  a failed forward pass ends the sequences in flight, not the server
                        changed = self.batch.abort()
                    for d in changed:
                        self.deliver(d)
                    continue
                job = self.held.popleft() if self.held else self.jobs.get()
                if job is not None:
                    jobs = self.gather(job)
                    self.micro["batches"] += 1
                    self.micro["requests"] += len(jobs)
                    self.run_batch(jobs)

    def gather(self, first: Job) -> list[Job]:
        """`first` and the jobs of its kind that arrive within the window, up to max_batch; others wait their turn."""
        jobs, deadline = [first], time.monotonic() + self.window
        while len(jobs) < self.max_batch:
            try:
                job = self.jobs.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if job is None:
                continue
            (jobs if job.kind == first.kind else self.held).append(job)
        return jobs

    def run_batch(self, jobs: list[Job]) -> None:
        try:
            results = self.compute(jobs[0].kind, [x for job in jobs for x in job.inputs])
        except Exception as e:  # noqa: BLE001  the batch is retried alone per request, so each gets its own answer
            if len(jobs) == 1:
                self.settle(jobs[0], error=e)
                return
            for job in jobs:
                self.run_batch([job])
            return
        start = 0
        for job in jobs:
            self.settle(job, results[start : start + len(job.inputs)])
            start += len(job.inputs)

    def compute(self, kind: str, inputs: list[Any]) -> Any:
        if kind == "predict":
            return self.predictor.predict(inputs)
        vectors = self.predictor.embed(inputs)
        tokenizer = getattr(self.predictor, "tokenizer", None)
        counts = [len(tokenizer.encode(t)) for t in inputs] if tokenizer is not None else [0] * len(inputs)
        return list(zip(vectors.tolist(), counts))

    @staticmethod
    def settle(job: Job, result: Any = None, error: BaseException | None = None) -> None:
        def resolve() -> None:
            if job.future.done():
                return
            if error is None:
                job.future.set_result(result)
            else:
                job.future.set_exception(error)

        try:
            job.loop.call_soon_threadsafe(resolve)
        except RuntimeError:  # the event loop has closed: nobody is waiting any more
            pass

    @staticmethod
    def deliver(d: Decoding) -> None:
        stream, index = d.tag
        update = Update(index, list(d.ids), d.text, d.finish)
        try:
            stream.loop.call_soon_threadsafe(stream.updates.put_nowait, update)
        except RuntimeError:
            pass
