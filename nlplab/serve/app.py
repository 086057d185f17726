"""The HTTP face of a model in use: OpenAI-compatible endpoints over a Predictor, thin — every forward pass belongs
to the engine (`nlplab.serve.engine`), every limit is checked here or in the request schemas.

    GET  /                      the playground page
    GET  /health                status, the model's id, task and abilities
    GET  /v1/models             the loaded model (OpenAI's list shape)
    POST /v1/predict            {"inputs": [...]} -> the records of `nlplab predict`
    POST /v1/embeddings         OpenAI's embeddings (float or base64)
    POST /v1/completions        OpenAI's completions, "stream": true for server-sent events
    POST /v1/chat/completions   OpenAI's chat completions, messages rendered with the model's chat template

Errors come back as {"error": {"message", "type", "param", "code"}}: 400 for a bad field (named in `param`), 401
without the bearer key, 404 for an unknown model or path, 413 for a body over the limit, 504 after the request
timeout. A streamed answer ends with `data: [DONE]`; a client that goes away mid-stream frees its batch slot.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException

from nlplab.errors import NlplabError
from nlplab.runs import Predictor
from nlplab.serve.engine import Engine, Stream, Update
from nlplab.serve.schemas import (
    MAX_BODY_BYTES,
    ChatRequest,
    CompletionRequest,
    EmbeddingRequest,
    PredictRequest,
    Sampling,
)


class ApiError(Exception):
    """An answer other than 200: status, message, and the request field it is about."""

    def __init__(self, status: int, message: str, param: str | None = None, kind: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.kind = status, message, param, kind


def error_body(status: int, message: str, param: str | None = None, kind: str = "invalid_request_error") -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": status}}, status_code=status)


UNION_TAGS = ("str", "int", "float", "bool", "list", "dict")


def validation_error(exc: RequestValidationError) -> JSONResponse:
    """The first problem of a body that does not fit its schema, naming the field (dotted path) it is in."""
    first = exc.errors()[0]
    if first.get("type") == "json_invalid":
        return error_body(400, f"the body is not valid JSON: {first.get('ctx', {}).get('error', first.get('msg'))}")
    loc = [str(x) for x in first.get("loc", ()) if x != "body"]
    fields = [x for x in loc if not ("[" in x or "-" in x or x in UNION_TAGS)]  # pydantic names the union's branch too
    param = ".".join(fields or loc) or None
    message = first.get("msg", "invalid value")
    if first.get("type") == "extra_forbidden":
        message = "unknown field; remove it"
    elif first.get("type") == "missing":
        message = "required field missing"
    return error_body(400, f"{param}: {message}" if param else message, param)


class Guard:
    """ASGI middleware: the bearer key on /v1/, the body-size limit (413), and one log line per request."""

    def __init__(self, app: Any, api_key: str | None, max_body: int, log: Callable[[str], None]) -> None:
        self.app, self.api_key, self.max_body, self.log = app, api_key, max_body, log

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status = time.perf_counter(), [0]

        async def send_logged(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.guarded(scope, receive, send_logged)
        finally:
            client = (scope.get("client") or ("-",))[0]
            self.log(f"{client} {scope['method']} {scope['path']} {status[0] or '-'} "
                     f"{(time.perf_counter() - start) * 1000:.1f} ms")

    async def guarded(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        async def refuse(response: JSONResponse) -> None:
            await response(scope, receive, send)

        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if self.api_key is not None and scope["path"].startswith("/v1/"):
            given = headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {self.api_key}".encode()):
                await refuse(error_body(401, "missing or wrong API key: send the header Authorization: Bearer KEY",
                                        kind="authentication_error"))
                return
        declared = headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body):
            await refuse(error_body(413, f"the request body is larger than {self.max_body} bytes", kind="request_too_large")
                         if declared.isdigit() else error_body(400, "bad Content-Length header"))
            return
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_body:
                await refuse(error_body(413, f"the request body is larger than {self.max_body} bytes",
                                        kind="request_too_large"))
                return
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def releasable(text: str, holdback: int) -> str:
    """The part of a growing text that may be streamed: not the last `holdback` characters (where a stop string
    could still begin) nor a trailing partial character (U+FFFD of an unfinished UTF-8 sequence)."""
    text = text[: len(text) - holdback] if holdback else text
    return text.rstrip("\ufffd")


def create_app(predictor: Predictor, model_id: str, max_batch: int = 16, max_new_tokens: int = 512,
               api_key: str | None = None, timeout: float = 60.0, max_body: int = MAX_BODY_BYTES,
               log: Callable[[str], None] | None = None) -> Guard:
    """The ASGI app over `predictor` (see the module docstring) behind the bearer key, the body-size limit and the
    request log (`log`, stderr by default); its engine starts and stops with the app (`.app.state.engine`)."""
    engine = Engine(predictor, max_batch)
    created = int(time.time())

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        engine.start()
        yield
        engine.stop()

    app = FastAPI(title=f"nlplab serve: {model_id}", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.engine = engine

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_body(exc.status, exc.message, exc.param, exc.kind)

    @app.exception_handler(RequestValidationError)
    async def bad_body(_: Request, exc: RequestValidationError) -> JSONResponse:
        return validation_error(exc)

    @app.exception_handler(NlplabError)
    async def user_error(_: Request, exc: NlplabError) -> JSONResponse:
        return error_body(400, str(exc))

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        return error_body(exc.status_code, str(exc.detail), kind="not_found_error" if exc.status_code == 404 else
                          "invalid_request_error")

    def check(req: Any, ability: str, what: str) -> None:
        if req.model not in (None, model_id):
            raise ApiError(404, f"model {req.model!r} is not served here; this server has {model_id!r}", "model",
                           "not_found_error")
        if ability not in predictor.abilities:
            predictor.cannot(what)

    async def within_timeout(awaitable: Any) -> Any:
        try:
            return await asyncio.wait_for(awaitable, timeout)
        except TimeoutError:
            raise ApiError(504, f"the request took longer than the server's timeout of {timeout:g} s",
                           kind="timeout_error") from None

    @app.get("/", response_class=HTMLResponse)
    async def playground() -> HTMLResponse:
        return HTMLResponse(resources.files("nlplab.serve").joinpath("static/playground.html").read_text("utf-8"))

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": model_id, "task": predictor.task, "abilities": list(predictor.abilities),
                "max_batch": max_batch, "max_new_tokens": max_new_tokens, "engine": engine.status()}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": model_id, "object": "model", "created": created, "owned_by": "nlplab",
                                            "task": predictor.task, "abilities": list(predictor.abilities)}]}

    @app.post("/v1/predict")
    async def predict(req: PredictRequest) -> dict[str, Any]:
        check(req, "predict", "predict labels")
        records = await within_timeout(engine.run("predict", req.inputs))
        return {"object": "list", "model": model_id, "data": records}

    @app.post("/v1/embeddings")
    async def embeddings(req: EmbeddingRequest) -> dict[str, Any]:
        check(req, "embed", "embed sentences")
        texts = [req.input] if isinstance(req.input, str) else req.input
        rows = await within_timeout(engine.run("embed", texts))
        if req.dimensions is not None and req.dimensions != len(rows[0][0]):
            raise ApiError(400, f"dimensions: this model's embeddings have {len(rows[0][0])} dimensions", "dimensions")
        data = [{"object": "embedding", "index": i,
                 "embedding": vector if req.encoding_format == "float"
                 else base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode()}
                for i, (vector, _) in enumerate(rows)]
        tokens = sum(count for _, count in rows)
        return {"object": "list", "data": data, "model": model_id, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}

    def budget(asked: int | None, field: str, default: int) -> int:
        if asked is not None and asked > max_new_tokens:
            raise ApiError(400, f"{field}: {asked} is above this server's cap of {max_new_tokens} tokens "
                                f"(nlplab serve --max-new-tokens)", field)
        return asked if asked is not None else default

    def start(req: Sampling, prompts: list[list[int]], tokens: int, field: str) -> Stream:
        try:
            return engine.generate(prompts, req.n, tokens, req.stops(), req.temperature, req.top_p, req.top_k,
                                   req.repetition_penalty, req.seed)
        except NlplabError as e:
            raise ApiError(400, f"{field}: {e}", field) from None

    @app.post("/v1/completions")
    async def completions(req: CompletionRequest) -> Any:
        check(req, "generate", "generate text")
        lm = engine.lm
        assert lm is not None
        try:
            prompts = [lm.encode(p) if isinstance(p, str) else p for p in req.prompts()]
        except NlplabError as e:
            raise ApiError(400, f"prompt: {e}", "prompt") from None
        stream = start(req, prompts, budget(req.max_tokens, "max_tokens", min(16, max_new_tokens)), "prompt")
        return await answer(req, stream, prompts, "text_completion", "cmpl")

    @app.post("/v1/chat/completions")
    async def chat(req: ChatRequest) -> Any:
        check(req, "generate", "chat")
        lm = engine.lm
        assert lm is not None
        messages = [m.model_dump(exclude_none=True) for m in req.messages]
        try:
            prompt = lm.encode(lm.render_chat(messages))
        except NlplabError as e:
            raise ApiError(400, f"messages: {e}", "messages") from None
        asked, field = (req.max_completion_tokens, "max_completion_tokens") if req.max_completion_tokens else \
            (req.max_tokens, "max_tokens")
        stream = start(req, [prompt], budget(asked, field, max_new_tokens), "messages")
        return await answer(req, stream, [prompt], "chat.completion", "chatcmpl")

    async def answer(req: Sampling, stream: Stream, prompts: list[list[int]], kind: str, prefix: str) -> Any:
        ident = f"{prefix}-{uuid.uuid4().hex[:24]}"
        head = {"id": ident, "created": int(time.time()), "model": model_id}
        usage = {"prompt_tokens": sum(len(p) for p in prompts)}
        chat = kind == "chat.completion"
        if req.stream:
            events = stream_events(req, stream, head, usage, chat)
            return StreamingResponse(events, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
        try:
            finals = await within_timeout(collect(stream))
        finally:
            stream.cancel()
        completion = sum(len(u.ids) for u in finals)
        choices = []
        for u in finals:
            text = u.text or ""
            body = {"message": {"role": "assistant", "content": text}} if chat else {"text": text, "logprobs": None}
            choices.append({"index": u.index, **body, "finish_reason": u.finish, "token_ids": u.ids})
        return {**head, "object": kind, "choices": choices,
                "usage": {**usage, "completion_tokens": completion, "total_tokens": usage["prompt_tokens"] + completion}}

    async def collect(stream: Stream) -> list[Update]:
        finals: dict[int, Update] = {}
        while len(finals) < len(stream.decodings):
            update = await stream.updates.get()
            if update.finish is not None:
                if update.finish in ("error", "cancelled"):
                    raise ApiError(500 if update.finish == "error" else 503, f"generation {update.finish}: the server "
                                   "could not finish this request", kind="server_error")
                finals[update.index] = update
        return [finals[i] for i in sorted(finals)]

    async def stream_events(req: Sampling, stream: Stream, head: dict[str, Any], usage: dict[str, int],
                            chat: bool) -> AsyncIterator[str]:
        kind = "chat.completion.chunk" if chat else "text_completion"
        holdback = max((len(s) for s in req.stops()), default=1) - 1
        sent = [""] * len(stream.decodings)
        completion, done = 0, 0
        deadline = time.monotonic() + timeout

        def event(index: int, delta: str, finish: str | None, first: bool = False) -> str:
            if chat:
                piece = {"role": "assistant", "content": delta} if first else ({"content": delta} if delta else {})
                choice = {"index": index, "delta": piece, "finish_reason": finish}
            else:
                choice = {"index": index, "text": delta, "logprobs": None, "finish_reason": finish}
            return f"data: {json.dumps({**head, 'object': kind, 'choices': [choice]}, ensure_ascii=False)}\n\n"

        try:
            if chat:
                for i in range(len(stream.decodings)):
                    yield event(i, "", None, first=True)
            while done < len(stream.decodings):
                try:
                    update = await asyncio.wait_for(stream.updates.get(), max(0.0, deadline - time.monotonic()))
                except TimeoutError:
                    error = {"message": f"the request took longer than the server's timeout of {timeout:g} s",
                             "type": "timeout_error", "param": None, "code": 504}
                    yield f"data: {json.dumps({'error': error})}\n\n"
                    break
                if update.finish in ("error", "cancelled"):
                    error = {"message": f"generation {update.finish}", "type": "server_error", "param": None, "code": 500}
                    yield f"data: {json.dumps({'error': error})}\n\n"
                    break
                text = update.text or ""
                ready = text if update.finish else releasable(text, holdback)
                delta = ready[len(sent[update.index]):] if ready.startswith(sent[update.index]) else ""
                sent[update.index] += delta
                if delta or update.finish:
                    yield event(update.index, delta, update.finish)
                if update.finish:
                    done += 1
                    completion += len(update.ids)
            else:
                if req.stream_options is not None and req.stream_options.include_usage:
                    total = {**usage, "completion_tokens": completion, "total_tokens": usage["prompt_tokens"] + completion}
                    yield f"data: {json.dumps({**head, 'object': kind, 'choices': [], 'usage': total})}\n\n"
            yield "data: [DONE]\n\n"
        finally:
            stream.cancel()

    return Guard(app, api_key, max_body, log or (lambda line: print(line, file=sys.stderr, flush=True)))

