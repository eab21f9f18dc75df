"""In-process salience: httpx transports that annotate and render chat requests before they
leave, for any OpenAI-compatible client built on httpx.

    import httpx, openai
    from salience.service.proxy import SalienceTransport
    client = openai.OpenAI(base_url=..., http_client=httpx.Client(transport=SalienceTransport()))

``AsyncSalienceTransport`` is the same for ``openai.AsyncOpenAI`` and ``httpx.AsyncClient``.
openai 3.x builds on ``httpx2`` (httpx's successor, same API): pass ``httpx2.Client(transport=
SalienceTransport(httpx2.HTTPTransport()))`` there; the transports work with either package's
requests and clients (tests/proxy cover both).
Only ``POST …/chat/completions`` with a JSON body is touched; everything else passes through.
Each response carries ``X-Salience`` (what was done). Fail-open as the proxy: if annotation
fails, the request goes unrendered, its untrusted channels still defused
(``service.proxy.pipeline``); with ``strict=True`` the call gets a 422 response instead
(OpenAI-style error JSON; the openai client raises ``UnprocessableEntityError``) and nothing is
sent.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

import httpx
import orjson

from .errors import refusal_body
from .exact_json import dumps, loads
from .pipeline import Outcome, PassedOn, Refused, decide, decide_unreadable
from .rewrite import Options

__all__ = ["AsyncSalienceTransport", "SalienceTransport"]


class _Rewriting:
    """What both transports share: their options, the wrapped transport (``inner``: httpx's or
    httpx2's, sync or async; the package's default one when none is given) and the request they
    send instead of the caller's."""

    inner: Any

    def __init__(
        self,
        transport: Any = None,
        *,
        method: str = "xml",
        strict: bool = False,
        trusted_roles: Iterable[str] = ("system", "developer"),
        detect_rules: bool = False,
    ) -> None:
        self.inner = transport if transport is not None else self._default_inner()
        self.options = Options(method, strict, tuple(trusted_roles), detect_rules=detect_rules)

    def _default_inner(self) -> Any:
        raise NotImplementedError

    def prepare(self, request: httpx.Request) -> tuple[httpx.Request, str] | httpx.Response:
        """The request to send and the X-Salience value, or a refusal (strict)."""
        if request.method != "POST" or not request.url.path.endswith("/chat/completions"):
            return request, ""
        if "json" not in request.headers.get("content-type", ""):
            return request, ""
        body: Any = None
        try:
            body = loads(request.content)
        except ValueError as error:  # not JSON: nothing to annotate or defuse; the server says
            outcome: Outcome = decide_unreadable(error, self.options, request.headers)
        else:
            outcome = decide(body, self.options, request.headers)
        if isinstance(outcome, Refused):
            return _refusal(request, outcome.error)
        if isinstance(outcome, PassedOn) and outcome.body is body:
            return request, outcome.header
        headers = [
            (k, v) for k, v in request.headers.multi_items() if k.lower() != "content-length"
        ]
        new = type(request)(  # httpx's Request, or httpx2's (openai>=3 builds on httpx2)
            request.method,
            request.url,
            headers=headers,
            content=dumps(outcome.body),
            extensions=request.extensions,
        )
        return new, outcome.header


def _refusal(request: httpx.Request, error: BaseException) -> httpx.Response:
    response_type = sys.modules[type(request).__module__.split(".")[0]].Response
    return response_type(  # type: ignore[no-any-return]
        422,
        content=orjson.dumps(refusal_body(error)),
        headers={"content-type": "application/json", "x-salience": "refused"},
        request=request,
    )


def _marked(response: httpx.Response, header: str) -> httpx.Response:
    if header:
        response.headers["x-salience"] = header
    return response


class SalienceTransport(_Rewriting, httpx.BaseTransport):
    """Annotates chat requests for a synchronous client (``httpx.Client``, ``openai.OpenAI``)."""

    def _default_inner(self) -> httpx.BaseTransport:
        return httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        prepared = self.prepare(request)
        if not isinstance(prepared, tuple):  # a refusal (httpx or httpx2 Response)
            return prepared
        outgoing, header = prepared
        return _marked(self.inner.handle_request(outgoing), header)

    def close(self) -> None:
        self.inner.close()


class AsyncSalienceTransport(_Rewriting, httpx.AsyncBaseTransport):
    """The same for an asynchronous client (``httpx.AsyncClient``, ``openai.AsyncOpenAI``)."""

    def _default_inner(self) -> httpx.AsyncBaseTransport:
        return httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        prepared = self.prepare(request)
        if not isinstance(prepared, tuple):  # a refusal (httpx or httpx2 Response)
            return prepared
        outgoing, header = prepared
        return _marked(await self.inner.handle_async_request(outgoing), header)

    async def aclose(self) -> None:
        await self.inner.aclose()
