"""The requests the server accepts, in OpenAI's shapes (plus `/v1/predict`), with their limits.

Every field is checked when the body is read: a wrong type, a value out of range or an unknown field is a 400 that
names the field. Lengths are bounded here so that no request can ask for unbounded work; the token budget
(`max_tokens` against `--max-new-tokens`) and the context length are checked by the engine.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt

MAX_BODY_BYTES = 1 << 20
"""Largest request body (1 MiB); a larger one is answered 413."""
MAX_TEXT_CHARS = 20_000
MAX_INPUTS = 256
MAX_CHOICES = 8
MAX_STOPS = 4

Text = Annotated[str, Field(max_length=MAX_TEXT_CHARS)]
NonEmpty = Annotated[str, Field(min_length=1, max_length=MAX_TEXT_CHARS)]
TokenId = Annotated[StrictInt, Field(ge=0)]
TokenIds = Annotated[list[TokenId], Field(min_length=1, max_length=MAX_TEXT_CHARS)]
Stop = NonEmpty | Annotated[list[NonEmpty], Field(max_length=MAX_STOPS)] | None


class Request(BaseModel):
    """Unknown fields are refused (a misspelt option must not be ignored silently)."""

    model_config = ConfigDict(extra="forbid")

    model: Text | None = None
    user: Text | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    include_usage: bool = False


class Sampling(Request):
    """What completions and chat completions share: OpenAI's sampling fields, and nlplab's top_k and
    repetition_penalty. temperature 0 decodes greedily; `seed` makes sampling repeat (choice k draws with seed + k)."""

    max_tokens: Annotated[StrictInt, Field(ge=1)] | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] = 1.0
    top_p: Annotated[float, Field(gt=0, le=1)] = 1.0
    top_k: Annotated[StrictInt, Field(ge=1)] | None = None
    repetition_penalty: Annotated[float, Field(gt=0, le=10)] = 1.0
    n: Annotated[StrictInt, Field(ge=1, le=MAX_CHOICES)] = 1
    stop: Stop = None
    seed: StrictInt | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None

    def stops(self) -> list[str]:
        return [] if self.stop is None else [self.stop] if isinstance(self.stop, str) else list(self.stop)


class CompletionRequest(Sampling):
    """`prompt`: a text, token ids, or a list of either (one set of `n` choices per prompt)."""

    prompt: NonEmpty | TokenIds | Annotated[list[NonEmpty], Field(min_length=1, max_length=MAX_INPUTS)] | \
        Annotated[list[TokenIds], Field(min_length=1, max_length=MAX_INPUTS)]

    def prompts(self) -> list[str | list[int]]:
        if isinstance(self.prompt, str):
            return [self.prompt]
        if all(isinstance(p, int) for p in self.prompt):
            return [list(self.prompt)]  # type: ignore[arg-type]
        return list(self.prompt)  # type: ignore[arg-type]


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "user", "assistant"]
    content: Text
    name: Text | None = None


class ChatRequest(Sampling):
    messages: Annotated[list[Message], Field(min_length=1, max_length=MAX_INPUTS)]
    max_completion_tokens: Annotated[StrictInt, Field(ge=1)] | None = None


class EmbeddingRequest(Request):
    input: NonEmpty | Annotated[list[NonEmpty], Field(min_length=1, max_length=MAX_INPUTS)]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: StrictInt | None = None


class PredictRequest(Request):
    """Texts to label or tag, or [sentence1, sentence2] pairs for a matching run."""

    inputs: Annotated[list[NonEmpty | Annotated[list[NonEmpty], Field(min_length=2, max_length=2)]],
                      Field(min_length=1, max_length=MAX_INPUTS)]
