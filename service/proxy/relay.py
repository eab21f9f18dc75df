"""The remote relay: a chat request, already rewritten, sent to the upstream and its answer
returned — whole, or relayed event by event when it streams — with the headers the proxy
forwards each way; the upstream's model list; upstream failures as OpenAI-style errors (refused
or dropped → 502, timeout → 504, pool exhausted → 503; the upstream's own 4xx/5xx as they were)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping

from fastapi import Request, Response

from ..core.config import Settings
from .errors import openai_error, sse_error
from .streaming import SSE, ClientGone, LiveStreamingResponse, timing, until_disconnect
from .upstream import Upstream, UpstreamError, UpstreamResponse

FORWARD_REQUEST_HEADERS = ("authorization", "openai-organization", "openai-project", "openai-beta",
                           "x-request-id", "idempotency-key")  # fmt: skip
RETURN_HEADER_PREFIXES = ("content-type", "openai-", "x-request-id", "retry-after", "x-ratelimit-")


def upstream_headers(request: Request, settings: Settings) -> dict[str, str]:
    headers = {"content-type": "application/json", "accept-encoding": "identity"}
    for name in FORWARD_REQUEST_HEADERS:
        value = request.headers.get(name)
        if value is not None:
            headers[name] = value
    if settings.upstream_api_key:
        headers["authorization"] = f"Bearer {settings.upstream_api_key}"
    return headers


def returned_headers(upstream: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in upstream.items() if k.lower().startswith(RETURN_HEADER_PREFIXES)}


def upstream_error(error: UpstreamError, upstream: Upstream) -> Response:
    """An upstream failure as an OpenAI-style error; the upstream is named without the
    credentials its URL may hold."""
    if error.kind == "busy":
        return openai_error(503, str(error), "proxy_busy", "server_error")
    where = f"the upstream at {upstream.shown}"
    error = upstream.redacted(error)
    if error.kind == "timeout":
        return openai_error(504, f"{where}: {error}", "upstream_timeout", "upstream_error")
    return openai_error(502, f"{where}: {error}", "upstream_unreachable", "upstream_error")


async def forward(
    request: Request,
    upstream: Upstream,
    content: bytes,
    salience: str,
    annotate_s: float,
    stream: bool,
    settings: Settings,
) -> Response:
    headers_out = upstream_headers(request, settings)
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
        return upstream_error(error, upstream)
    headers = returned_headers(response.headers)
    headers["x-salience"] = salience
    headers["server-timing"] = timing(annotate=annotate_s, upstream=elapsed)
    if body is None:
        return LiveStreamingResponse(_relay(response), 200, headers=headers, media_type=SSE)
    return Response(body, response.status, headers=headers)


async def _relay(response: UpstreamResponse) -> AsyncIterator[bytes]:
    """Upstream events as they come, whole events only: if the upstream breaks off or ends
    mid-event, the partial event is dropped and an error event ends the stream."""
    pending = b""
    try:
        async for chunk in response.chunks():
            pending += chunk
            cut = pending.rfind(b"\n\n")
            if cut >= 0:
                yield pending[: cut + 2]
                pending = pending[cut + 2 :]
        if pending.strip():  # a clean end in the middle of an event: the fragment is no event
            yield sse_error(502, "the upstream ended the stream mid-event", "upstream_truncated")
    except UpstreamError as error:
        if error.kind == "timeout":
            yield sse_error(504, "the upstream stalled mid-stream", "upstream_timeout")
        else:
            yield sse_error(
                502, f"the upstream broke off the stream ({error})", "upstream_unreachable"
            )
    finally:
        response.close()
