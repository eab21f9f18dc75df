"""A real OpenAI-compatible HTTP server for the tests, run with uvicorn on 127.0.0.1, that can
be told to misbehave: answer 429 or 500 a number of times, stall, or drop the connection.

It answers chat completions by echoing what it received (so tests can see the rendering that
went upstream) and completions with made-up but well-formed echoed logprobs.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.service.server import free_port


@dataclass
class Behaviour:
    fail_with: int | None = None  # status to answer with
    fail_times: int = 0  # how many requests get it
    retry_after: str | None = None
    stall_seconds: float = 0.0
    received: list[dict[str, Any]] = field(default_factory=list)


def make_app(behaviour: Behaviour) -> Starlette:
    async def chat(request: Request) -> Response:
        body = await request.json()
        behaviour.received.append(body)
        if behaviour.stall_seconds:
            await asyncio.sleep(behaviour.stall_seconds)
        if behaviour.fail_with is not None and behaviour.fail_times > 0:
            behaviour.fail_times -= 1
            headers = {"retry-after": behaviour.retry_after} if behaviour.retry_after else None
            return JSONResponse(
                {"error": {"message": f"induced {behaviour.fail_with}", "type": "test"}},
                status_code=behaviour.fail_with,
                headers=headers,
            )
        last = body["messages"][-1]["content"]
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
