"""In-process salience: httpx transports that annotate and render chat requests before they
leave, for any OpenAI-compatible client built on httpx.

    import httpx, openai
    from service.proxy import SalienceTransport
    client = openai.OpenAI(base_url=..., http_client=httpx.Client(transport=SalienceTransport()))

``AsyncSalienceTransport`` is the same for ``openai.AsyncOpenAI`` and ``httpx.AsyncClient``.
openai 3.x builds on ``httpx2`` (httpx's successor, same API): pass ``httpx2.Client(transport=
SalienceTransport(httpx2.HTTPTransport()))`` there; the transports work with either package's
requests and clients (tests/proxy cover both).
Only ``POST …/chat/completions`` with a JSON body is touched; everything else passes through.
Each response carries ``X-Salience`` (what was done). Fail-open as the proxy: if annotation
fails, the original request goes; with ``strict=True`` the call gets a 422 response instead
(OpenAI-style error JSON; the openai client raises ``UnprocessableEntityError``) and nothing is
sent.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable

import httpx
import orjson

from .errors import refusal_body
from .rewrite import Options, fail_open_header, options_of, requested_strict, rewrite

__all__ = ["AsyncSalienceTransport", "SalienceTransport"]


class _Rewriter:
    def __init__(
        self, method: str, strict: bool, trusted_roles: Iterable[str], detect_rules: bool
    ) -> None:
        self.options = Options(method, strict, tuple(trusted_roles), detect_rules=detect_rules)

    def prepare(self, request: httpx.Request) -> tuple[httpx.Request, str] | httpx.Response:
        """The request to send and the X-Salience value, or a refusal (strict)."""
        if request.method != "POST" or not request.url.path.endswith("/chat/completions"):
            return request, ""
        if "json" not in request.headers.get("content-type", ""):
            return request, ""
        strict = requested_strict(None, request.headers, self.options.strict)
        try:
            body = orjson.loads(request.content)
            strict = requested_strict(options_of(body), request.headers, self.options.strict)
            options = self.options.merged(options_of(body), request.headers)
            strict = options.strict
            result = rewrite(body, options)
            content, header = orjson.dumps(result.body), result.header()
        except Exception as error:  # fail open
            if strict:
                return _refusal(request, error)
            return request, fail_open_header(error)
        headers = [
            (k, v) for k, v in request.headers.multi_items() if k.lower() != "content-length"
        ]
        new = type(request)(  # httpx's Request, or httpx2's (openai>=3 builds on httpx2)
            request.method,
            request.url,
            headers=headers,
            content=content,
            extensions=request.extensions,
        )
        return new, header


def _refusal(request: httpx.Request, error: BaseException) -> httpx.Response:
    response_type = sys.modules[type(request).__module__.split(".")[0]].Response
    return response_type(  # type: ignore[no-any-return]
        422,
        content=orjson.dumps(refusal_body(error)),
        headers={"content-type": "application/json", "x-salience": "refused"},
        request=request,
    )


class SalienceTransport(httpx.BaseTransport):
    def __init__(
        self,
        transport: httpx.BaseTransport | None = None,
        *,
        method: str = "xml",
        strict: bool = False,
        trusted_roles: Iterable[str] = ("system", "developer"),
        detect_rules: bool = False,
    ) -> None:
        self.inner = transport if transport is not None else httpx.HTTPTransport()
        self.rewriter = _Rewriter(method, strict, trusted_roles, detect_rules)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        prepared = self.rewriter.prepare(request)
        if not isinstance(prepared, tuple):  # a refusal (httpx or httpx2 Response)
            return prepared
        outgoing, header = prepared
        response = self.inner.handle_request(outgoing)
        if header:
            response.headers["x-salience"] = header
        return response

    def close(self) -> None:
        self.inner.close()


class AsyncSalienceTransport(httpx.AsyncBaseTransport):
    def __init__(
        self,
        transport: httpx.AsyncBaseTransport | None = None,
        *,
        method: str = "xml",
        strict: bool = False,
        trusted_roles: Iterable[str] = ("system", "developer"),
        detect_rules: bool = False,
    ) -> None:
        self.inner = transport if transport is not None else httpx.AsyncHTTPTransport()
        self.rewriter = _Rewriter(method, strict, trusted_roles, detect_rules)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        prepared = self.rewriter.prepare(request)
        if not isinstance(prepared, tuple):  # a refusal (httpx or httpx2 Response)
            return prepared
        outgoing, header = prepared
        response = await self.inner.handle_async_request(outgoing)
        if header:
            response.headers["x-salience"] = header
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()
