"""Chat with the model salience runs itself: the messages parsed with the proxy's trust rules,
generated with a steering method on a worker thread (admitted by the engine's queue), whole or
streamed, and stopped when the client leaves."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import orjson
from fastapi import Request, Response
from starlette.concurrency import iterate_in_threadpool

from markup import parse_messages
from markup.errors import MarkupError, SalienceError

from ..core.config import Settings
from .errors import openai_error, refusal
from .local import Busy, LocalEngine
from .rewrite import Options, RewriteError, fail_open_header, options_of
from .streaming import SSE, ClientGone, LiveStreamingResponse, timing, until_disconnect


async def local_chat(request: Request, body: Any, method: str, settings: Settings) -> Response:
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
            return refusal(error)
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
    headers = {"x-salience": salience, "server-timing": timing(annotate=annotate_s)}
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
