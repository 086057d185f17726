"""Multi-turn chat over a causal LM, the notes' chatglm3 loop with its bugs fixed: the history starts empty (not
None), the query comes from the caller (no undefined `input`), only the new tokens are decoded with special
tokens skipped, and each turn appends one (query, response) pair instead of nesting the history.

    prompt = chat_template(history + [query])        oldest turns dropped while len(prompt) ≥ max_length
    response = decode(generate(prompt)[len(prompt):])
    history.append((query, response))
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from nlplab.errors import ConfigError
from nlplab.generate.causal import CausalLM, Message, picker, stream_text


class Chat:
    """`Chat(lm, max_length=..., temperature=..., top_p=...)` over a CausalLM (`nlplab.runs.load_run(path).lm`);
    `send(query) -> response`; `history` holds the (query, response) pairs. temperature 0 decodes greedily."""

    def __init__(self, lm: CausalLM, max_length: int = 2048, max_new_tokens: int = 256,
                 temperature: float = 0.8, top_p: float | None = 0.8, top_k: int | None = None,
                 repetition_penalty: float = 1.0, seed: int | None = None, system: str | None = None,
                 stop: Sequence[str] = ()) -> None:
        if max_length < 1 or max_new_tokens < 1:
            raise ConfigError(f"--max-length and --max-new-tokens must be >= 1, got {max_length} and {max_new_tokens}")
        self.lm = lm
        self.max_length, self.max_new_tokens, self.system, self.stop = max_length, max_new_tokens, system, tuple(stop)
        self.pick = picker("sample", temperature, top_k, top_p, repetition_penalty, seed)
        self.history: list[tuple[str, str]] = []

    def messages(self, query: str, history: Sequence[tuple[str, str]]) -> list[Message]:
        system = [{"role": "system", "content": self.system}] if self.system else []
        turns = [m for q, r in history for m in ({"role": "user", "content": q}, {"role": "assistant", "content": r})]
        return system + turns + [{"role": "user", "content": query}]

    def prompt_ids(self, query: str) -> list[int]:
        """The templated prompt of history + query, dropping the oldest turns until it leaves room for a new token
        within max_length."""
        history = list(self.history)
        while True:
            ids = self.lm.encode(self.lm.render_chat(self.messages(query, history)))
            if len(ids) < self.max_length or not history:
                break
            history.pop(0)
        if len(ids) >= self.max_length:
            raise ConfigError(f"the query alone takes {len(ids)} tokens, more than --max-length {self.max_length} leaves "
                              "room for; shorten it or raise max_length")
        return ids

    def stream(self, query: str) -> Iterator[str]:
        """Yield the response's new text piece by piece; the turn joins the history when the response ends."""
        ids = self.prompt_ids(query)
        text = ""
        for _, text_now in stream_text(self.lm, ids, self.pick, min(self.max_new_tokens, self.max_length - len(ids)), self.stop):
            if text_now.startswith(text):
                yield text_now[len(text):]
            text = text_now
        self.history.append((query, text))

    def send(self, query: str) -> str:
        """The model's response to `query` given the history; the pair is appended to `history`."""
        for _ in self.stream(query):
            pass
        return self.history[-1][1]

    def clear(self) -> None:
        self.history = []
