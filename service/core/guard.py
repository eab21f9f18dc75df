"""The request body guard: every route that takes a body reads it through this route class.

Before a handler or its validation sees a request, ``GuardedRoute`` answers:

- 415 when the content type is not JSON;
- 413 when the body grows past the limit, counting the bytes actually received (a declared
  ``Content-Length`` over the limit is refused at once, a lying one is caught by the count);
- 408 when the body does not arrive within the time allowed;
- 400 when the body is not UTF-8, with the byte offset of the first bad byte.

The errors are ``ProblemError``s, so they go through the one error mapping like all others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from .config import Settings
from .problems import ProblemError

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_CLOSE = {"Connection": "close"}  # the rest of the body was not read: do not reuse the connection


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


async def read_guarded_body(request: Request, settings: Settings) -> bytes:
    content_type = request.headers.get("content-type", "")
    if not _is_json(content_type):
        raise ProblemError(
            415,
            "unsupported-media-type",
            "Unsupported media type",
            f"send the body as application/json (got {content_type or 'no content type'})",
            headers=_CLOSE,
        )
    limit = settings.max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ProblemError(
            413,
            "body-too-large",
            "Body too large",
            f"the body is {declared} bytes; the limit is {limit}",
            limit=limit,
            headers=_CLOSE,
        )
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(settings.body_timeout_s):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise ProblemError(
                        413,
                        "body-too-large",
                        "Body too large",
                        f"the body exceeds the limit of {limit} bytes",
                        limit=limit,
                        headers=_CLOSE,
                    )
                chunks.append(chunk)
    except TimeoutError:
        raise ProblemError(
            408,
            "body-timeout",
            "Request timeout",
            f"the body did not arrive within {settings.body_timeout_s:g} s",
            headers=_CLOSE,
        ) from None
    body = b"".join(chunks)
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ProblemError(
            400,
            "invalid-utf8",
            "Invalid UTF-8",
            f"the body is not UTF-8: byte {error.start} ({error.reason})",
            byte_offset=error.start,
        ) from None
    return body


class GuardedRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            if request.method in _BODY_METHODS:
                # FastAPI reads the body from this cache instead of the stream.
                request._body = await read_guarded_body(request, request.app.state.settings)
            return await handler(request)

        return guarded
