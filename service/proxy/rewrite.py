"""Rewriting an OpenAI chat-completions request body so that a model which cannot take an
attention bias still sees what matters: the messages are annotated (markup honoured in trusted
roles only) and rendered with a text method (``xml``, ``caps``, ``echo``, ``system``).

Only what the rendering changes is changed: untrusted messages keep their content byte for byte
except that a rule marker typed in them is defused (``markup.rendering``: ``&lt;rule>``,
“IMPORTANT:”), so no rendering passes it upstream as a rule,
other fields of a message (``name``, ``tool_calls``, …) and of the body are kept, list contents
keep their non-text parts, and the ``salience`` options field is removed before the body goes
upstream. Markup is parsed strictly: when the author's markup is malformed, salience cannot be
sure what was meant, so the caller fails open (sends it unrendered, its untrusted channels
defused: ``service.proxy.pipeline``) or, if strict, refuses.

Used by the proxy route and by the in-process httpx transports alike.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from salience.markup import Conversation, parse_messages, render
from salience.markup.errors import MarkupError, SalienceError
from salience.markup.rendering import TEXT_METHODS, has_marker, rules

OPTIONS_FIELD = "salience"
OFF = ("off", "none", "plain")


class RewriteError(SalienceError):
    """The request cannot be annotated (bad options, bad message shapes, strict markup). Where
    it applies rides as attributes, as on ``MarkupError``: ``message_index`` (and ``offset``
    into that message's text where one is known)."""

    code = "rewrite-error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        message_index: int | None = None,
        offset: int | None = None,
    ) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.message_index = message_index
        self.offset = offset

    def fields(self) -> dict[str, Any]:
        return {"message_index": self.message_index, "offset": self.offset}


class ParameterError(RewriteError):
    """A request parameter of the wrong type or out of its range (``param`` names it)."""

    code = "bad-parameter"

    def __init__(self, param: str, problem: str) -> None:
        super().__init__(f"{param} {problem}")
        self.param = param

    def fields(self) -> dict[str, Any]:
        return {**super().fields(), "param": self.param}


@dataclass(frozen=True)
class Options:
    method: str = "xml"
    strict: bool = False  # refuse (422) instead of failing open
    trusted_roles: tuple[str, ...] = ("system", "developer")
    max_elements: int | None = None  # markup elements per request (None: no limit)
    detect_rules: bool = False  # mark rule sentences of trusted messages as hard

    def parse(self, messages: Sequence[Mapping[str, Any]]) -> Conversation:
        """``messages`` parsed as the proxy parses them: strict, with these roles trusted, this
        element limit and rule detection."""
        return parse_messages(
            messages,
            self.trusted_roles,
            strict=True,
            max_elements=self.max_elements,
            detect_rules=self.detect_rules,
        )

    def merged(self, body_options: Any, headers: Mapping[str, str] | None = None) -> Options:
        """These options, overridden by the ``X-Salience-Method``/``-Strict``/``-Detect-Rules``
        headers and then by the body's ``salience`` object."""
        method, strict, detect = self.method, self.strict, self.detect_rules
        if headers is not None:
            method = headers.get("x-salience-method", method)
            strict = _flag(headers.get("x-salience-strict"), strict)
            detect = _flag(headers.get("x-salience-detect-rules"), detect)
        if body_options is not None:
            if not isinstance(body_options, Mapping):
                raise RewriteError(f"'{OPTIONS_FIELD}' must be an object", code="bad-options")
            unknown = set(body_options) - {"method", "render", "strict", "detect_rules"}
            if unknown:
                raise RewriteError(
                    f"unknown '{OPTIONS_FIELD}' option(s): {', '.join(sorted(unknown))}; "
                    "use method (or render), strict and detect_rules",
                    code="bad-options",
                )
            chosen = body_options.get("method", body_options.get("render", method))
            if not isinstance(chosen, str):
                raise RewriteError(f"'{OPTIONS_FIELD}.method' must be a string", code="bad-options")
            method = chosen
            raw_strict = body_options.get("strict", strict)
            if not isinstance(raw_strict, bool):
                message = f"'{OPTIONS_FIELD}.strict' must be a boolean"
                raise RewriteError(message, code="bad-options")
            strict = raw_strict
            raw_detect = body_options.get("detect_rules", detect)
            if not isinstance(raw_detect, bool):
                message = f"'{OPTIONS_FIELD}.detect_rules' must be a boolean"
                raise RewriteError(message, code="bad-options")
            detect = raw_detect
        return Options(_spelled(method), strict, self.trusted_roles, self.max_elements, detect)


def _spelled(method: str) -> str:
    """A method as the options hold it: its name part in lower case, what follows ``@`` (a
    number, a catalogue name) as written."""
    name, at, rest = method.strip().partition("@")
    return f"{name.lower()}{at}{rest}"


def _flag(value: str | None, default: bool) -> bool:
    if value is None:
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


@dataclass
class Rewrite:
    body: dict[str, Any]
    method: str
    changed: bool
    spans: int = 0
    rules: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def header(self) -> str:
        """The ``X-Salience`` value: what was done."""
        if self.method in OFF:
            return "off"
        state = "applied" if self.changed else "unchanged"
        return f"{state}; method={self.method}; spans={self.spans}; rules={self.rules}"


def fail_open_header(error: BaseException) -> str:
    code = getattr(error, "code", None) or "internal-error"
    parts = [f"fail-open; error={code}"]
    for key in ("offset", "message_index"):
        value = getattr(error, key, None)
        if value is not None:
            parts.append(f"{key.replace('_index', '')}={value}")
    return "; ".join(parts)


def options_of(body: Any) -> Any:
    return body.get(OPTIONS_FIELD) if isinstance(body, dict) else None


def requested_strict(body_options: Any, headers: Mapping[str, str] | None, default: bool) -> bool:
    """Whether the request asked to be refused rather than passed on when it cannot be
    rewritten, read leniently: a request whose other options are bad still gets the strictness
    it asked for (``Options.merged`` raises before it would tell)."""
    strict = default
    if headers is not None:
        strict = _flag(headers.get("x-salience-strict"), strict)
    if isinstance(body_options, Mapping) and isinstance(body_options.get("strict"), bool):
        strict = body_options["strict"]
    return strict


def rewrite(body: Any, options: Options) -> Rewrite:
    """The body to send upstream under ``options`` (already merged with the request's own)."""
    start = time.perf_counter()
    if not isinstance(body, dict):
        raise RewriteError("the body must be a JSON object", code="bad-body")
    out = {k: v for k, v in body.items() if k != OPTIONS_FIELD}
    method = options.method
    if method in OFF:
        return Rewrite(out, method, False, seconds=time.perf_counter() - start)
    if method not in TEXT_METHODS:
        raise RewriteError(
            f"method {method!r} cannot be applied to a remote model; use one of: "
            f"{', '.join((*TEXT_METHODS, 'off'))}",
            code="bad-method",
        )
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RewriteError("'messages' must be a non-empty array", code="bad-messages")

    # one pseudo-message per text piece: a string content, or each text part of a list content
    # (and each .docx/RTF file part of a trusted message, read as the rich text it holds)
    pieces: list[tuple[int, int | None]] = []  # (message index, part index or None)
    flat: list[dict[str, str]] = []
    documents: set[int] = set()  # pieces that were file parts
    trusted = {r.lower() for r in options.trusted_roles}
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise RewriteError("a message must be an object", code="bad-messages", message_index=i)
        role = message.get("role")
        if not isinstance(role, str) or not role:
            raise RewriteError("a message needs a role", code="bad-messages", message_index=i)
        content = message.get("content")
        if isinstance(content, str):
            pieces.append((i, None))
            flat.append({"role": role, "content": content})
        elif isinstance(content, list):
            for j, part in enumerate(content):
                if isinstance(part, dict) and part.get("type") == "text":
                    text = part.get("text")
                    if not isinstance(text, str):
                        raise RewriteError(
                            "a text part needs a string 'text'",
                            code="bad-messages",
                            message_index=i,
                        )
                    pieces.append((i, j))
                    flat.append({"role": role, "content": text})
                elif (
                    isinstance(part, dict)
                    and part.get("type") == "file"
                    and role.lower() in trusted
                ):
                    source = _document_part(part, i, options.max_elements)
                    if source is not None:
                        documents.add(len(pieces))
                        pieces.append((i, j))
                        flat.append({"role": role, "content": source})
        elif content is not None:
            raise RewriteError(
                "'content' must be a string, an array of parts or null",
                code="bad-messages",
                message_index=i,
            )
    if not flat:
        return Rewrite(out, method, False, seconds=time.perf_counter() - start)
    try:
        conversation = options.parse(flat)
    except MarkupError as error:
        if error.message_index is not None:
            error.message_index = pieces[error.message_index][0]
        raise
    spans = sum(len(m.document.spans) for m in conversation.messages)
    n_rules = sum(len(rules(m.document)) for m in conversation.messages)
    if spans == 0 and not documents and not any(has_marker(m["content"]) for m in flat):
        # nothing marked and nothing that looks like a marker: the prompt goes as it came
        # (markup-free text is not even normalised)
        return Rewrite(out, method, False, seconds=time.perf_counter() - start)
    rendered = render(conversation, method)
    assert isinstance(rendered, list)
    inserted = rendered[: len(rendered) - len(flat)]  # ``system`` may add a system message
    rendered = rendered[len(inserted) :]

    new_messages = [dict(m) if isinstance(m, dict) else m for m in messages]
    for k, ((i, part), new) in enumerate(zip(pieces, rendered, strict=True)):
        document = conversation.messages[k].document
        if k in documents:  # a file part goes on as the text it holds, rendered
            parts = list(new_messages[i]["content"])
            parts[part] = {"type": "text", "text": new["content"]}  # type: ignore[index]
            new_messages[i]["content"] = parts
            continue
        text = _keep_original(flat[k]["content"], document.text, new["content"], document.spans)
        if part is None:
            new_messages[i]["content"] = text
        else:
            parts = list(new_messages[i]["content"])
            parts[part] = {**parts[part], "text": text}
            new_messages[i]["content"] = parts
    out["messages"] = [*inserted, *new_messages]
    changed = out["messages"] != messages
    return Rewrite(out, method, changed, spans, n_rules, time.perf_counter() - start)


def _document_part(part: dict[str, Any], index: int, max_runs: int | None) -> str | None:
    """The HTML rich text of an OpenAI-style file part holding a .docx or RTF document
    (``{"type": "file", "file": {"filename": …, "file_data": "data:…;base64,…"}}``); None
    for any other file, which goes on untouched."""
    from salience.markup.documents import DocumentError, document_html

    file = part.get("file")
    if not isinstance(file, dict) or not isinstance(file.get("file_data"), str):
        return None
    header, _, encoded = file["file_data"].partition(",")
    if not header.startswith("data:") or not header.endswith(";base64"):
        return None
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise RewriteError(
            "a file part's file_data is not valid base64", code="bad-document", message_index=index
        ) from None
    try:
        return document_html(data, str(file.get("filename") or ""), max_runs)
    except DocumentError as error:
        raise RewriteError(str(error), code=error.code, message_index=index) from None


def _keep_original(original: str, clean: str, rendered: str, spans: Any) -> str:
    """The rendered text, or the original where rendering only normalised it: a message
    without spans keeps its bytes, and one that only gained a suffix (``echo``) keeps its
    bytes before it."""
    if not spans:
        if rendered == clean:
            return original
        if rendered.startswith(clean.rstrip()):
            return original.rstrip() + rendered[len(clean.rstrip()) :]
    return rendered
