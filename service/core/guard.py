"""The request body guard: every route that takes a body reads it through this route class.

Before a handler or its validation sees a request, ``GuardedRoute`` answers:

- 415 when the content type is not JSON (or, on a route that takes documents, a
  ``multipart/form-data`` upload: see ``read_document_upload``);
- 413 when the body grows past the limit, counting the bytes actually received (a declared
  ``Content-Length`` over the limit is refused at once, a lying one is caught by the count);
- 408 when the body does not arrive within the time allowed;
- 400 when the body is not UTF-8, with the byte offset of the first bad byte;
- 400 when a JSON body is not JSON (nested too deep included), with the character offset,
  line and column of the fault: the body is read once, here, and the route gets the value.

Documents (a multipart upload) are read on a worker thread: a big .docx never holds up the
event loop.

The errors are ``ProblemError``s, so they go through the one error mapping like all others.
"""

from __future__ import annotations

import asyncio
import email.parser
import email.policy
import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from .config import Settings
from .offload import off_loop
from .problems import ProblemError

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_CLOSE = {"Connection": "close"}  # the rest of the body was not read: do not reuse the connection


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


async def read_guarded_body(request: Request, settings: Settings, documents: bool = False) -> bytes:
    content_type = request.headers.get("content-type", "")
    if documents and _is_multipart(content_type):
        return await read_document_upload(request, settings, content_type)
    if not _is_json(content_type):
        also = " or a multipart/form-data upload with a file" if documents else ""
        raise ProblemError(
            415,
            "unsupported-media-type",
            "Unsupported media type",
            f"send the body as application/json{also} (got {content_type or 'no content type'})",
            headers=_CLOSE,
        )
    body = await _read_limited(request, settings)
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


def _is_multipart(content_type: str) -> bool:
    return content_type.split(";", 1)[0].strip().lower() == "multipart/form-data"


async def _read_limited(request: Request, settings: Settings) -> bytes:
    """The body, counted as it arrives against the limit and the time allowed."""
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
    return b"".join(chunks)


async def read_document_upload(request: Request, settings: Settings, content_type: str) -> bytes:
    """A ``multipart/form-data`` upload as the JSON body the route takes: the part named
    ``file`` (.docx, RTF, or UTF-8 text) becomes ``text`` (documents as their HTML rich text,
    with ``format`` html), and every other part a field of the request (values that read as
    JSON — true, 3, {"…"} — are taken as JSON, others as strings). The same size and time
    limits hold; a bad upload is a problem with the reason. Everything after the body's
    arrival (the multipart parse, the document, the JSON) runs on the parse pool."""
    body = await _read_limited(request, settings)
    return await off_loop(request, _upload_as_json, body, content_type, settings)


def _upload_as_json(body: bytes, content_type: str, settings: Settings) -> bytes:
    from salience.markup.documents import DocumentError, document_html

    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    if not message.is_multipart():
        raise ProblemError(400, "bad-upload", "Bad upload", "the multipart body could not be read")
    fields: dict[str, Any] = {}
    upload: tuple[str, bytes] | None = None
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        if name == "file":
            upload = (part.get_filename() or "", data)
            continue
        raw = data.decode("utf-8", errors="replace")
        try:
            fields[name] = json.loads(raw)
        except ValueError:
            fields[name] = raw
    if upload is None:
        raise ProblemError(
            422, "missing-file", "Missing file", "the upload needs a part named 'file'"
        )
    clash = sorted({"text", "messages"} & set(fields))
    if clash:
        raise ProblemError(
            422,
            "conflicting-fields",
            "Conflicting fields",
            f"the upload's file is the text; drop the form field(s) {', '.join(clash)}",
        )
    filename, data = upload
    try:
        source = document_html(data, filename, settings.max_markup_elements)
    except DocumentError as error:
        raise ProblemError(422, error.code, "Unreadable document", str(error)) from None
    if source is not None:
        fields.update(text=source, format="html")
    else:
        try:
            fields["text"] = data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise ProblemError(
                422,
                "bad-document",
                "Unreadable document",
                f"{filename or 'the file'} is neither .docx, RTF nor UTF-8 text "
                f"(byte {error.start})",
                byte_offset=error.start,
            ) from None
    return _dumps(fields)


def _dumps(value: Any) -> bytes:
    from ..proxy.exact_json import dumps

    return dumps(value)


def _json(body: bytes) -> Any:
    """The body's JSON value, or a 400 problem with where the fault is."""
    from ..proxy.exact_json import loads

    try:
        return loads(body)
    except ValueError as error:
        offset = getattr(error, "pos", None)  # in characters, from both readers
        where: dict[str, Any] = {}
        if isinstance(offset, int):
            before = body.decode("utf-8", "replace")[:offset]
            where = {"line": before.count("\n") + 1, "column": offset - before.rfind("\n")}
        reason = str(error).split(": line")[0]
        raise ProblemError(
            400,
            "invalid-json",
            "Invalid JSON",
            f"the body is not valid JSON: {reason}",
            offset=offset,
            **where,
        ) from None


class GuardedRoute(APIRoute):
    """Reads a body through the guard. A route whose ``openapi_extra`` has
    ``x-salience-documents`` also takes documents as a multipart upload."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        documents = bool((self.openapi_extra or {}).get("x-salience-documents"))

        async def guarded(request: Request) -> Response:
            if request.method in _BODY_METHODS:
                # FastAPI reads the body (and its JSON) from these caches instead of the stream.
                multipart = documents and _is_multipart(request.headers.get("content-type", ""))
                request._body = await read_guarded_body(
                    request, request.app.state.settings, documents
                )
                if request._body:  # an empty one is the schema's to refuse (a missing body)
                    request._json = _json(request._body)
                if multipart:  # the upload is now the route's JSON body
                    headers = [(k, v) for k, v in request.scope["headers"] if k != b"content-type"]
                    request.scope["headers"] = [*headers, (b"content-type", b"application/json")]
                    request.__dict__.pop("_headers", None)
            return await handler(request)

        return guarded
