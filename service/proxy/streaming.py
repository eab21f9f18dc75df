"""Streaming and disconnects for the proxy: a response that notices a client going away even
while its source is silent, a wait that is cancelled when the client leaves, Server-Timing."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, TypeVar

import anyio
from fastapi import Request
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

T = TypeVar("T")
SSE = "text/event-stream"


class ClientGone(Exception):
    """The client disconnected before the answer was ready."""


class LiveStreamingResponse(StreamingResponse):
    """A streaming response that notices a client going away even while the source is silent
    (Starlette only notices at the next write on ASGI 2.4 servers): the stream is cancelled, so
    a stalled upstream or a local generation stops at once. ``on_close`` runs when the response
    is done with, however it ends, even if its source was never started."""

    def __init__(
        self, *args: Any, on_close: Callable[[], None] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            async with anyio.create_task_group() as group:

                async def run(func: Callable[[], Awaitable[None]]) -> None:
                    with contextlib.suppress(OSError):  # the client closed the socket mid-write
                        await func()
                    group.cancel_scope.cancel()

                group.start_soon(run, partial(self.stream_response, send))
                await run(partial(self.listen_for_disconnect, receive))
        finally:
            # Starlette leaves a cancelled body iterator suspended, and with it whatever its
            # ``finally`` would give back (an upstream connection, an engine slot, a generation
            # holding the engine's lock): close it, shielded from the cancellation that ended it
            close = getattr(self.body_iterator, "aclose", None)
            if close is not None:
                with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
                    await close()
            if self.on_close is not None:
                self.on_close()


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


def timing(**parts: float) -> str:
    return ", ".join(f"{name};dur={seconds * 1000:.2f}" for name, seconds in parts.items())
