"""From an annotate request to its response body: parse, tokenize, limit, render, count.

The routes stay thin; this is where the markup core meets the service's limits and metrics. It
takes plain ``AnnotateOptions`` (the API's request schema, the CLI and any caller build them),
so it knows nothing of HTTP. The body it returns holds numpy arrays, serialised by orjson
without a per-token Python loop.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import orjson

from salience.markup import (
    Conversation,
    Document,
    Format,
    ImportanceEncoding,
    Level,
    StyleLevels,
    load_encoding,
    parse,
    parse_messages,
    render,
    render_notes,
    tokenize,
)
from salience.markup.tokens import TokenizedDocument

from .core.config import Settings
from .core.metrics import Metrics
from .core.problems import ProblemError

_LEVEL_NAMES = np.array(
    [level.value for level in (Level.HARD, Level.HIGH, Level.NORMAL, Level.LOW)], dtype=object
)
JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY
SCHEMA_VERSION: Literal["1"] = "1"  # of the bodies ``Annotator.annotate`` returns


@dataclass(frozen=True)
class AnnotateOptions:
    """One annotate request: ``text`` or ``messages`` (plain OpenAI-style dicts), how to parse
    them, and what to return. ``None`` means the server's own setting."""

    text: str | None = None
    messages: Sequence[Mapping[str, Any]] | None = None
    format: Format | str = Format.AUTO
    strict: bool = False
    detect_rules: bool = False
    style_levels: Mapping[str, Any] | None = None
    encoding: str | None = None
    trusted_roles: Sequence[str] | None = None
    tokens: bool = True  # token ids, levels and markers
    offsets: bool = True  # each token's character offsets (with tokens)
    method: str | None = None  # also render with this text method


class Annotator:
    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.style_levels = StyleLevels.parse(settings.style_levels)  # checked at start-up

    def annotate(self, request: AnnotateOptions) -> dict[str, Any]:
        encoding = load_encoding(request.encoding or self.settings.default_encoding)
        if request.text is not None:
            body = self._text(request, request.text, encoding)
        else:
            assert request.messages is not None
            body = self._messages(request, request.messages, encoding)
        body["special_tokens"] = encoding.special_tokens()
        self.metrics.prompts.inc()
        self.metrics.tokens.inc(body["token_count"])
        return body

    def _parse_options(self, request: AnnotateOptions) -> dict[str, Any]:
        """What ``parse`` and ``parse_messages`` take from the request and the server's limits."""
        levels = self.style_levels
        if request.style_levels is not None:
            try:
                levels = StyleLevels.parse(request.style_levels)
            except ValueError as error:
                raise ProblemError(
                    422, "bad-style-levels", "Bad style levels", str(error)
                ) from None
        return {
            "max_elements": self.settings.max_markup_elements,
            "detect_rules": request.detect_rules,
            "style_levels": levels,
        }

    def _text(
        self, request: AnnotateOptions, text: str, encoding: ImportanceEncoding
    ) -> dict[str, Any]:
        document = parse(text, request.format, request.strict, **self._parse_options(request))
        self._check_limit(_fewest_tokens(document))
        tokens = tokenize(document, encoding)
        self._check_limit(len(tokens))
        self._count_spans(document)
        body: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "encoding": encoding.name,
            "token_count": len(tokens),
            "document": _document_body(document, tokens, request),
        }
        return _rendered(body, document, request.method)

    def _messages(
        self,
        request: AnnotateOptions,
        messages: Sequence[Mapping[str, Any]],
        encoding: ImportanceEncoding,
    ) -> dict[str, Any]:
        if len(messages) > self.settings.max_messages:
            raise ProblemError(
                422,
                "too-many-messages",
                "Too many messages",
                f"{len(messages)} messages; the limit is {self.settings.max_messages}",
                limit=self.settings.max_messages,
            )
        roles = (
            request.trusted_roles
            if request.trusted_roles is not None
            else self.settings.trusted_roles
        )
        conversation: Conversation = parse_messages(
            messages, roles, request.format, request.strict, **self._parse_options(request)
        )
        out = []
        total = 0
        fewest = 0
        for message in conversation.messages:
            fewest += _fewest_tokens(message.document)
            self._check_limit(fewest)
        for message in conversation.messages:
            tokens = tokenize(message.document, encoding)
            total += len(tokens)
            self._check_limit(total)
            self._count_spans(message.document)
            row = {"index": message.index, "role": message.role, "trusted": message.trusted}
            row.update(_document_body(message.document, tokens, request))
            out.append(row)
        body: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "encoding": encoding.name,
            "token_count": total,
            "messages": out,
        }
        return _rendered(body, conversation, request.method)

    def _check_limit(self, count: int) -> None:
        limit = self.settings.max_prompt_tokens
        if count > limit:
            raise ProblemError(
                422,
                "token-limit",
                "Prompt too long",
                f"the prompt has more than {limit} tokens (markers included)",
                limit=limit,
            )

    def _count_spans(self, document: Document) -> None:
        counts: dict[str, int] = {}
        for span in document.spans:
            counts[span.level.value] = counts.get(span.level.value, 0) + 1
        for level, n in counts.items():
            self.metrics.spans.labels(level).inc(n)


def _rendered(
    body: dict[str, Any], target: Document | Conversation, method: str | None
) -> dict[str, Any]:
    """``body`` with ``target`` rendered by the text method ``method`` (and what it leaves out)."""
    if method is not None:
        body["render"] = render(target, method)
        notes = render_notes(target, method)
        if notes:
            body["render_notes"] = notes
    return body


def _fewest_tokens(document: Document) -> int:
    """A lower bound on the token count, known before tokenizing: every span adds two markers
    around at least one token. A prompt of many tiny spans is refused without tokenizing it."""
    return 3 * len(document.spans)


def _document_body(
    document: Document, tokens: TokenizedDocument, request: AnnotateOptions
) -> dict[str, Any]:
    body = document.to_dict()
    if request.tokens:
        out: dict[str, Any] = {
            "count": len(tokens),
            "ids": tokens.ids,
            "levels": _LEVEL_NAMES[tokens.level_codes].tolist(),
            "markers": tokens.markers,
        }
        if request.offsets:
            out["offsets"] = np.stack([tokens.starts, tokens.ends], axis=1)
        body["tokens"] = out
    return body


def to_json(body: Any) -> bytes:
    try:
        return orjson.dumps(body, option=JSON_OPTIONS)
    except orjson.JSONEncodeError:
        # A lone surrogate in an echoed field (a role, say) is no UTF-8: escape it instead.
        return json.dumps(body, default=_plain, separators=(",", ":")).encode("ascii")


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot serialise {type(value).__name__}")
