"""OpenAI-style errors, the one shape the proxy route, its streams and the in-process transports
answer with: ``{"error": {"message", "type", "param", "code", …}}``, plus where a markup fault
is (offset, line, column, message_index) when salience refuses a strict request."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Response

from salience.markup.errors import SalienceError

from ..core.problems import ProblemError


def openai_error(
    status: int, message: str, code: str, type: str = "invalid_request_error", **extra: Any
) -> Response:
    error: dict[str, Any] = {"message": message, "type": type, "param": None, "code": code}
    error.update({k: v for k, v in extra.items() if v is not None})
    return Response(orjson.dumps({"error": error}), status, media_type="application/json")


def invalid(error: SalienceError | ProblemError) -> Response:
    """An error of salience's tree, or one the service shaped (a body over the limit), as an
    OpenAI-style error: a salience error the caller made (salience's 422) is a 400, OpenAI's
    status for a request it cannot serve; any other keeps its status (503: the model is
    unavailable), with its code, where it applies and its headers. The service's handlers call
    this for every error raised under ``/v1`` (``service.core.problems.install``)."""
    if isinstance(error, ProblemError):
        kind = "server_error" if error.status >= 500 else "invalid_request_error"
        response = openai_error(error.status, error.detail, error.code, kind, **error.fields)
        response.headers.update(error.headers)
        return response
    status = 400 if error.status == 422 else error.status
    return openai_error(status, str(error), error.code, **error.fields())


def sse_error(status: int, message: str, code: str) -> bytes:
    error = {"message": message, "type": "upstream_error", "code": code, "status": status}
    return b"data: " + orjson.dumps({"error": error}) + b"\n\n"


def refusal_body(error: BaseException) -> dict[str, Any]:
    """The 422 body for a strict request salience cannot annotate: the error's code and where
    (``SalienceError.fields``)."""
    body: dict[str, Any] = {"type": "invalid_request_error", "param": None}
    if isinstance(error, SalienceError):
        body.update(message=str(error), code=error.code)
        body.update({k: v for k, v in error.fields().items() if v is not None})
    else:
        body.update(message=f"annotation failed: {error}", code="annotation-failed")
    return {"error": body}


def refusal(error: BaseException) -> Response:
    return Response(orjson.dumps(refusal_body(error)), 422, media_type="application/json")
