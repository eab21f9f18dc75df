"""Errors as JSON problem details (RFC 9457), mapped in one place.

Every error response of the service has ``Content-Type: application/problem+json`` and a body
with ``type``, ``title``, ``status`` and ``detail``, plus what locates the fault where it applies:
``offset``/``line``/``column`` (characters of the text as sent), ``message_index``, ``errors``
(schema violations), ``available`` (encodings), ``limit``. Under a path prefix that speaks
another error dialect (the OpenAI-compatible ``/v1``), the same errors go to that dialect's one
renderer instead, so that no route catches an error to re-shape it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from salience.markup import SalienceError

log = logging.getLogger("salience.service")
PROBLEM_TYPE = "urn:salience:problem:"
PROBLEM_MEDIA_TYPE = "application/problem+json"


class ProblemError(Exception):
    """An error the service raises itself, already shaped as a problem."""

    def __init__(
        self,
        status: int,
        code: str,
        title: str,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        **fields: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.title = title
        self.detail = detail
        self.headers = headers or {}
        self.fields = fields


def problem_body(status: int, code: str, title: str, detail: str, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE + code,
        "title": title,
        "status": status,
        "detail": detail,
    }
    body.update({k: v for k, v in fields.items() if v is not None})
    return body


def problem_response(status: int, code: str, title: str, detail: str, **fields: Any) -> Response:
    body = problem_body(status, code, title, detail, **fields)
    return Response(orjson.dumps(body), status_code=status, media_type=PROBLEM_MEDIA_TYPE)


def problem_for(error: Exception) -> dict[str, Any]:
    """The problem body for an error of salience's tree (its status, code, title and fields) or
    one the service shaped itself."""
    if isinstance(error, ProblemError):
        return problem_body(error.status, error.code, error.title, error.detail, **error.fields)
    if isinstance(error, SalienceError):
        return problem_body(error.status, error.code, error.title, error.detail(), **error.fields())
    raise TypeError(f"no problem mapping for {type(error).__name__}")


Dialect = Callable[[SalienceError | ProblemError], Response]


def install(app: FastAPI, dialects: Mapping[str, Dialect] = {}) -> None:
    """Register the handlers: the only place errors become responses. ``dialects`` maps a path
    prefix to the renderer of errors for the routes under it: every error there, salience's
    own, the framework's (404, 405) and an unexpected one (500), goes through it."""

    def respond(request: Request, error: SalienceError | ProblemError) -> Response:
        for prefix, render in dialects.items():
            if request.url.path.startswith(prefix):
                return render(error)
        body = problem_for(error)
        headers = error.headers if isinstance(error, ProblemError) else None
        return Response(
            orjson.dumps(body),
            status_code=body["status"],
            media_type=PROBLEM_MEDIA_TYPE,
            headers=headers,
        )

    async def salience_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, SalienceError | ProblemError)
        return respond(request, error)

    async def validation_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, RequestValidationError)
        errors = [
            {
                "loc": [str(p) for p in e.get("loc", ())],
                "msg": e.get("msg", ""),
                "type": e.get("type", ""),
            }
            for e in error.errors()
        ]
        if any(e["type"] == "json_invalid" for e in errors):
            first = next(e for e in error.errors() if e.get("type") == "json_invalid")
            loc = first.get("loc", ())
            offset = loc[-1] if loc and isinstance(loc[-1], int) else None
            detail = first.get("ctx", {}).get("error", "the body is not valid JSON")
            where: dict[str, Any] = {}
            if offset is not None:
                # the offset is a character index into the decoded body; line and column (both
                # from 1, as the proxy and the CLI give them) from the same text
                text = (await request.body()).decode("utf-8", "replace")[:offset]
                where = {"line": text.count("\n") + 1, "column": offset - text.rfind("\n")}
            problem = ProblemError(
                400,
                "invalid-json",
                "Invalid JSON",
                f"the body is not valid JSON: {detail}",
                offset=offset,
                **where,
            )
            return respond(request, problem)
        problem = ProblemError(
            422,
            "invalid-request",
            "Invalid request",
            "the request does not match the schema; see errors",
            errors=errors,
        )
        return respond(request, problem)

    async def http_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, StarletteHTTPException)
        titles = {404: "Not found", 405: "Method not allowed"}
        code = {404: "not-found", 405: "method-not-allowed"}.get(error.status_code, "http-error")
        headers = dict(error.headers or {})
        if error.status_code == 405:  # every method of the path, not only the first route's
            headers["Allow"] = ", ".join(_allowed(request))
        problem = ProblemError(
            error.status_code,
            code,
            titles.get(error.status_code, "HTTP error"),
            str(error.detail),
            headers=headers,
        )
        return respond(request, problem)

    app.add_exception_handler(SalienceError, salience_error)
    app.add_exception_handler(ProblemError, salience_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_middleware(UnexpectedErrors, respond=respond)


def _allowed(request: Request) -> list[str]:
    """The methods the app answers on the request's path (each route declares its own)."""
    methods: set[str] = set()
    for route in request.app.routes:
        match, _ = route.matches(request.scope)  # PARTIAL: the path matches, the method not
        if match is not Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return sorted(methods)


class UnexpectedErrors:
    """A bug becomes a 500 in the route's dialect, logged, and the connection stays usable.

    Starlette's own last-resort handler answers and then re-raises, and the server then drops
    the keep-alive connection; this middleware sits inside it and answers instead. A response
    that has already started cannot be replaced: the error goes on to the server, which cuts it.
    """

    def __init__(
        self, app: ASGIApp, respond: Callable[[Request, SalienceError | ProblemError], Response]
    ) -> None:
        self.app = app
        self.respond = respond

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception:
            if started:
                raise
            request = Request(scope)
            log.exception("unexpected error on %s %s", request.method, request.url.path)
            problem = ProblemError(
                500, "internal", "Internal error", "an unexpected error occurred"
            )
            await self.respond(request, problem)(scope, receive, send)
