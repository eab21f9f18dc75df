"""The OpenAI-compatible proxy: ``POST /v1/chat/completions`` and ``GET /v1/models``.

A request for the local model (``SALIENCE_LOCAL_MODEL``, default ``salience-local``, or
``salience-local/<method>``) is generated in process with a steering method. Any other model goes
to ``SALIENCE_UPSTREAM_URL`` with the messages annotated and rendered by a text method.

Per request: ``"salience": {"method": "xml", "strict": false}`` in the body (removed before the
body goes upstream) or the ``X-Salience-Method`` / ``X-Salience-Strict`` headers.

Every answer says what was done in ``X-Salience`` (``applied; method=xml; spans=2; rules=1``,
``unchanged; …``, ``off``, ``fail-open; error=markup-error; offset=17; message=0``, or
``local; method=learned; …``) and carries ``Server-Timing`` (``annotate``, ``upstream`` = time to
the upstream's response headers). Errors are OpenAI-style JSON: ``{"error": {"message", "type",
"code", …}}``; upstream connection refused or dropped → 502, timeout → 504, pool exhausted → 503;
the upstream's own 4xx/5xx come back as they were. Streams pass through event by event; a client
that goes away cancels the upstream call.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from functools import partial
from typing import Any, TypeVar

import anyio
import orjson
from fastapi import APIRouter, Request, Response
from starlette.concurrency import iterate_in_threadpool
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from markup import parse_messages
from markup.errors import MarkupError, SalienceError

from ...core.config import Settings
from ...core.guard import read_guarded_body
from ...core.problems import ProblemError
from ...proxy.local import Busy, LocalEngine
from ...proxy.rewrite import (
    Options,
    RewriteError,
    fail_open_header,
    options_of,
    requested_strict,
    rewrite,
)
from ...proxy.upstream import Upstream, UpstreamError, UpstreamResponse

router = APIRouter(prefix="/v1", tags=["proxy"])
T = TypeVar("T")

FORWARD_REQUEST_HEADERS = ("authorization", "openai-organization", "openai-project", "openai-beta",
                           "x-request-id", "idempotency-key")  # fmt: skip
RETURN_HEADER_PREFIXES = ("content-type", "openai-", "x-request-id", "retry-after", "x-ratelimit-")
SSE = "text/event-stream"


_ERROR = {
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["error"],
                "properties": {"error": {"type": "object", "required": ["message"]}},
            }
        }
    }
}
PROXY_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "the completion; a text/event-stream of chunks when `stream` is true",
        "content": {"application/json": {"schema": {"type": "object"}}, SSE: {}},
    },
    **{
        status: {"description": description, **_ERROR}
        for status, description in {
            400: "invalid JSON, or a request the local model cannot take",
            404: "neither the local model nor an upstream serves this model",
            408: "the body did not arrive in time",
            413: "body over the limit",
            415: "not application/json",
            422: "strict: the markup does not parse (offset, line, column, message_index)",
            429: "too many local generations waiting (or the upstream's own 429)",
            502: "the upstream refused or broke the connection",
            503: "the upstream pool is exhausted, or the local model is unavailable",
            504: "the upstream did not answer in time",
        }.items()
    },
    "default": {"description": "the upstream's own error, passed through", **_ERROR},
}
CHAT_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["model", "messages"],
                "additionalProperties": True,
                "properties": {
                    "model": {"type": "string", "examples": ["salience-local/uniform"]},
                    "messages": {"type": "array", "minItems": 1, "items": {"type": "object"}},
                    "stream": {"type": "boolean"},
                    "salience": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "method": {"type": "string", "examples": ["xml", "caps", "off"]},
                            "strict": {"type": "boolean"},
                        },
                    },
                },
            }
        }
    },
}


class ClientGone(Exception):
    """The client disconnected before the answer was ready."""


def openai_error(
    status: int, message: str, code: str, type: str = "invalid_request_error", **extra: Any
) -> Response:
    error: dict[str, Any] = {"message": message, "type": type, "param": None, "code": code}
    error.update({k: v for k, v in extra.items() if v is not None})
    return Response(orjson.dumps({"error": error}), status, media_type="application/json")


def _sse_error(status: int, message: str, code: str) -> bytes:
    error = {"message": message, "type": "upstream_error", "code": code, "status": status}
    return b"data: " + orjson.dumps({"error": error}) + b"\n\n"


class LiveStreamingResponse(StreamingResponse):
    """A streaming response that notices a client going away even while the source is silent
    (Starlette only notices at the next write on ASGI 2.4 servers): the stream is cancelled, so
    a stalled upstream or a local generation stops at once."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async with anyio.create_task_group() as group:

            async def run(func: Callable[[], Awaitable[None]]) -> None:
                with contextlib.suppress(OSError):  # the client closed the socket mid-write
                    await func()
                group.cancel_scope.cancel()

            group.start_soon(run, partial(self.stream_response, send))
            await run(partial(self.listen_for_disconnect, receive))


async def until_disconnect(request: Request, work: Awaitable[T]) -> T:
    """``work``'s result, or ClientGone (with ``work`` cancelled) if the client leaves first."""
    task = asyncio.ensure_future(work)

    async def watch() -> None:
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                return

    watcher = asyncio.ensure_future(watch())
    try:
        done, _ = await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        raise
    finally:
        watcher.cancel()
    if task in done:
        return task.result()
    task.cancel()
    raise ClientGone


def _timing(**parts: float) -> str:
    return ", ".join(f"{name};dur={seconds * 1000:.2f}" for name, seconds in parts.items())


def _local_method(model: str, settings: Settings) -> str | None:
    """The steering method if ``model`` names the local model, else None."""
    name = settings.local_model
    if not name:
        return None
    if model == name:
        return settings.local_method
    if model.startswith(name + "/"):
        return model[len(name) + 1 :]
    return None


@router.post(
    "/chat/completions",
    summary="OpenAI-compatible chat completions, with importance markup heeded",
    response_model=None,
    responses=PROXY_RESPONSES,
    openapi_extra={"requestBody": CHAT_BODY},
)
async def chat_completions(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    try:
        raw = await read_guarded_body(request, settings)
    except ProblemError as error:
        return openai_error(error.status, error.detail, error.code)
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        detail = f"the body is not valid JSON: {error}"
        return openai_error(400, detail, "invalid_json", offset=error.pos)
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        return openai_error(400, "the body must be an object with a string 'model'", "bad-body")
    model = body["model"]
    method = _local_method(model, settings)
    if method is not None:
        return await _local(request, body, method, settings)
    upstream: Upstream | None = request.app.state.upstream
    if upstream is None:
        return openai_error(
            404,
            f"model {model!r} is not the local model ({settings.local_model!r}) and no upstream "
            "is configured (SALIENCE_UPSTREAM_URL)",
            "model_not_found",
        )
    base = Options(
        settings.proxy_method,
        settings.proxy_strict,
        settings.trusted_roles,
        settings.max_markup_elements,
        settings.proxy_detect_rules,
    )
    strict = requested_strict(options_of(body), request.headers, settings.proxy_strict)
    try:
        options = base.merged(options_of(body), request.headers)
        strict = options.strict
        result = rewrite(body, options)
        content, salience, annotate_s = orjson.dumps(result.body), result.header(), result.seconds
    except Exception as error:  # fail open: whatever went wrong, the request still goes
        if strict:
            return _refusal(error)
        if isinstance(body, dict) and "salience" in body:
            body = {k: v for k, v in body.items() if k != "salience"}
            content = orjson.dumps(body)
        else:
            content = raw
        salience, annotate_s = fail_open_header(error), 0.0
    stream = isinstance(body, dict) and body.get("stream") is True
    return await _forward(request, upstream, content, salience, annotate_s, stream, settings)


def _refusal(error: BaseException) -> Response:
    if isinstance(error, MarkupError | RewriteError | SalienceError):
        where = getattr(error, "where", {}) or {}
        return openai_error(
            422,
            str(error),
            getattr(error, "code", "markup-error"),
            offset=getattr(error, "offset", None),
            line=getattr(error, "line", None),
            column=getattr(error, "column", None),
            message_index=getattr(error, "message_index", where.get("message_index")),
        )
    return openai_error(422, f"annotation failed: {error}", "annotation-failed")


def _upstream_headers(request: Request, settings: Settings) -> dict[str, str]:
    headers = {"content-type": "application/json", "accept-encoding": "identity"}
    for name in FORWARD_REQUEST_HEADERS:
        value = request.headers.get(name)
        if value is not None:
            headers[name] = value
    if settings.upstream_api_key:
        headers["authorization"] = f"Bearer {settings.upstream_api_key}"
    return headers


def _returned_headers(upstream: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in upstream.items() if k.lower().startswith(RETURN_HEADER_PREFIXES)}


def _upstream_error(error: UpstreamError, settings: Settings) -> Response:
    if error.kind == "busy":
        return openai_error(503, str(error), "proxy_busy", "server_error")
    where = f"the upstream at {settings.upstream_url}"
    if error.kind == "timeout":
        return openai_error(504, f"{where}: {error}", "upstream_timeout", "upstream_error")
    return openai_error(502, f"{where}: {error}", "upstream_unreachable", "upstream_error")


async def _forward(
    request: Request,
    upstream: Upstream,
    content: bytes,
    salience: str,
    annotate_s: float,
    stream: bool,
    settings: Settings,
) -> Response:
    headers_out = _upstream_headers(request, settings)
    start = time.perf_counter()
    elapsed = 0.0

    async def exchange() -> tuple[UpstreamResponse, bytes | None]:
        """Headers, and the whole body unless it is a stream to relay (one disconnect watch
        for both: every task saved is latency saved)."""
        nonlocal elapsed
        response = await upstream.send("POST", "chat/completions", content, headers_out)
        elapsed = time.perf_counter() - start
        relay = (
            stream and response.status == 200 and SSE in response.headers.get("content-type", "")
        )
        if relay:
            return response, None
        try:
            return response, await response.read()
        finally:
            response.close()

    try:
        response, body = await until_disconnect(request, exchange())
    except ClientGone:
        return Response(status_code=499)
    except UpstreamError as error:
        return _upstream_error(error, settings)
    headers = _returned_headers(response.headers)
    headers["x-salience"] = salience
    headers["server-timing"] = _timing(annotate=annotate_s, upstream=elapsed)
    if body is None:
        return LiveStreamingResponse(_relay(response), 200, headers=headers, media_type=SSE)
    return Response(body, response.status, headers=headers)


async def _relay(response: UpstreamResponse) -> AsyncIterator[bytes]:
    """Upstream events as they come, whole events only: if the upstream breaks off mid-event,
    the partial event is dropped and an error event ends the stream."""
    pending = b""
    try:
        async for chunk in response.chunks():
            pending += chunk
            cut = pending.rfind(b"\n\n")
            if cut >= 0:
                yield pending[: cut + 2]
                pending = pending[cut + 2 :]
        if pending.strip():
            yield pending
    except UpstreamError as error:
        if error.kind == "timeout":
            yield _sse_error(504, "the upstream stalled mid-stream", "upstream_timeout")
        else:
            yield _sse_error(
                502, f"the upstream broke off the stream ({error})", "upstream_unreachable"
            )
    finally:
        response.close()


async def _local(request: Request, body: Any, method: str, settings: Settings) -> Response:
    engine: LocalEngine = request.app.state.local
    try:
        options = Options(
            method,
            settings.proxy_strict,
            settings.trusted_roles,
            settings.max_markup_elements,
            settings.proxy_detect_rules,
        ).merged(options_of(body), request.headers)
    except RewriteError as error:
        return openai_error(400, str(error), error.code)
    method = options.method
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return openai_error(400, "'messages' must be a non-empty array", "bad-messages")
    start = time.perf_counter()
    salience = f"local; method={method}"
    try:
        conversation = options.parse(messages)
        spans = sum(len(m.document.spans) for m in conversation.messages)
        salience += f"; spans={spans}"
    except MarkupError as error:
        if options.strict:
            return _refusal(error)
        # fail open: the text as written, no importance, no steering
        try:
            conversation = parse_messages(messages, (), format="plain")
        except SalienceError as shape:
            return openai_error(400, str(shape), shape.code)
        salience, method = f"local; method=none; {fail_open_header(error)}", "none"
    except SalienceError as error:
        return openai_error(400, str(error), error.code)
    annotate_s = time.perf_counter() - start
    try:
        engine.admit()
    except Busy as error:
        return openai_error(429, str(error), "local_busy", "rate_limit_error")
    released = False

    def release() -> None:
        nonlocal released
        if not released:
            released = True
            engine.release()

    try:
        lm = await engine.model()
        lm.method(method)  # an unknown method or a missing bias file is the caller's to fix
    except SalienceError as error:
        release()
        return openai_error(400, str(error), error.code)
    except Exception as error:
        release()
        return openai_error(503, f"the local model is not available: {error}", "model_unavailable")
    stop = threading.Event()
    headers = {"x-salience": salience, "server-timing": _timing(annotate=annotate_s)}
    if body.get("stream") is True:
        chunks = engine.chunks(lm, conversation, method, body, stop)
        return LiveStreamingResponse(
            _until_stopped(chunks, stop, release), 200, headers=headers, media_type=SSE
        )
    try:
        answer = await until_disconnect(
            request, asyncio.to_thread(engine.complete, lm, conversation, method, body, stop)
        )
    except ClientGone:
        stop.set()
        return Response(status_code=499)
    finally:
        release()
    return Response(orjson.dumps(answer), 200, headers=headers, media_type="application/json")


async def _until_stopped(
    chunks: Iterator[bytes], stop: threading.Event, release: Callable[[], None]
) -> AsyncIterator[bytes]:
    try:
        async for chunk in iterate_in_threadpool(chunks):
            yield chunk
    finally:
        stop.set()  # the client left (or the stream ended): the generation stops
        release()


@router.get(
    "/models",
    summary="The local model and the upstream's models",
    response_model=None,
    responses={
        200: {"description": "the model list", "content": {"application/json": {}}},
        502: {"description": "the upstream refused or broke the connection", **_ERROR},
        503: {"description": "the upstream pool is exhausted", **_ERROR},
        504: {"description": "the upstream did not answer in time", **_ERROR},
        "default": {"description": "the upstream's own error, passed through", **_ERROR},
    },
)
async def models(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    data: list[dict[str, Any]] = []
    if settings.local_model:
        data.append(
            {"id": settings.local_model, "object": "model", "created": 0, "owned_by": "salience"}
        )
    upstream: Upstream | None = request.app.state.upstream
    if upstream is not None:
        try:
            response = await upstream.send(
                "GET", "models", None, _upstream_headers(request, settings)
            )
            try:
                content = await response.read()
            finally:
                response.close()
        except UpstreamError as error:
            return _upstream_error(error, settings)
        if response.status != 200:
            return Response(content, response.status, headers=_returned_headers(response.headers))
        try:
            listed = orjson.loads(content).get("data", [])
        except (orjson.JSONDecodeError, AttributeError):
            return openai_error(502, "the upstream's model list is not JSON", "bad_upstream")
        data.extend(m for m in listed if isinstance(m, dict))
    return Response(orjson.dumps({"object": "list", "data": data}), media_type="application/json")
