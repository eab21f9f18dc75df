"""A real OpenAI-compatible HTTP server for the tests, run with uvicorn on 127.0.0.1, that can
be told to misbehave: answer 429 or 500 a number of times, stall, stream slowly, or drop the
connection in the middle of a stream.

It answers chat completions by echoing what it received (so tests can see the rendering that
went upstream), streams the echo in chunks when asked to, and answers completions with made-up
but well-formed echoed logprobs. It records the bodies it received and how each request ended
(a client that went away during a stall or a stream is counted).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.service.server import free_port

CANNED = {
    "id": "chatcmpl-canned",
    "object": "chat.completion",
    "model": "fake-model",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
    ],
}


@dataclass
class Behaviour:
    fail_with: int | None = None  # status to answer with
    fail_times: int = 0  # how many requests get it
    retry_after: str | None = None
    stall_seconds: float = 0.0
    stream_chunks: int = 3  # chunks of a streamed answer
    chunk_delay: float = 0.0  # seconds between streamed chunks
    drop_after: int | None = None  # abort the connection after this many streamed chunks
    end_mid_event: bool = False  # end a stream cleanly after one chunk and half an event
    canned: bool = False  # answer every chat request with one fixed completion, whatever it is
    received: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    client_left: int = 0  # requests whose client went away before the answer was complete
    streams_done: int = 0  # streams sent to the end


class Dropped(Exception):
    """Raised inside a streamed body: uvicorn then aborts the connection mid-response."""


def make_app(behaviour: Behaviour) -> Starlette:
    async def chat(request: Request) -> Response:
        if behaviour.canned:  # a fuzzed body is any JSON the proxy passed on: read none of it
            await request.body()
            return JSONResponse(CANNED)
        body = await request.json()
        behaviour.received.append(body)
        behaviour.headers.append(dict(request.headers))
        if behaviour.stall_seconds:
            deadline = time.monotonic() + behaviour.stall_seconds
            while time.monotonic() < deadline:
                if await request.is_disconnected():
                    behaviour.client_left += 1
                    return Response(status_code=499)
                await asyncio.sleep(0.02)
        if behaviour.fail_with is not None and behaviour.fail_times > 0:
            behaviour.fail_times -= 1
            headers = {"retry-after": behaviour.retry_after} if behaviour.retry_after else None
            return JSONResponse(
                {"error": {"message": f"induced {behaviour.fail_with}", "type": "test"}},
                status_code=behaviour.fail_with,
                headers=headers,
            )
        last = body["messages"][-1]["content"]
        if body.get("stream"):
            return StreamingResponse(_chunks(f"echo: {last}", body), media_type="text/event-stream")
        return JSONResponse(
            {
                "id": "chatcmpl-test",
                "object": "chat.completion",
                "model": body.get("model"),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": f"echo: {last}"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
            }
        )

    async def _chunks(text: str, body: dict[str, Any]) -> AsyncIterator[bytes]:
        n = max(1, behaviour.stream_chunks)
        size = -(-len(text) // n)
        pieces = [text[i : i + size] for i in range(0, len(text), size)]
        finished = False
        try:
            for i, piece in enumerate(pieces):
                if i and behaviour.chunk_delay:
                    await asyncio.sleep(behaviour.chunk_delay)
                if behaviour.drop_after is not None and i == behaviour.drop_after:
                    raise Dropped
                if behaviour.end_mid_event and i == 1:
                    yield b'data: {"id": "chatcmpl-test", "object": "chat.compl'
                    finished = True
                    return
                chunk = {
                    "id": "chatcmpl-test",
                    "object": "chat.completion.chunk",
                    "model": body.get("model"),
                    "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}],
                }
                yield b"data: " + json.dumps(chunk).encode() + b"\n\n"
            last = {
                "id": "chatcmpl-test",
                "object": "chat.completion.chunk",
                "model": body.get("model"),
                "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
            }
            yield b"data: " + json.dumps(last).encode() + b"\n\n" + b"data: [DONE]\n\n"
            finished = True
            behaviour.streams_done += 1
        finally:
            if not finished:
                behaviour.client_left += 1

    async def models(request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": "fake-model", "object": "model"}]})

    async def completions(request: Request) -> Response:
        body = await request.json()
        behaviour.received.append(body)
        text = body["prompt"]
        # one "token" per character, log-probability -0.5 each, the first one None
        return JSONResponse(
            {
                "choices": [
                    {
                        "text": text,
                        "logprobs": {
                            "tokens": list(text),
                            "text_offset": list(range(len(text))),
                            "token_logprobs": [None] + [-0.5] * (len(text) - 1),
                        },
                    }
                ]
            }
        )

    return Starlette(
        routes=[
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/v1/completions", completions, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
        ]
    )


@contextmanager
def fake_openai(behaviour: Behaviour) -> Iterator[str]:
    port = free_port()
    config = uvicorn.Config(make_app(behaviour), host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("fake server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
