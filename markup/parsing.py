"""``parse`` and ``parse_messages``: from marked-up text to a ``Document``.

Format detection (``format="auto"``) is a fixed sequence of checks on the NFC text, first match
wins:

1. ``html`` — the text, after leading white space, starts with ``<!doctype``, ``<html``,
   ``<body``, ``<head`` or an HTML block element (``<p>``, ``<div>``, ``<ul>``, ``<ol>``,
   ``<table>``, ``<h1>``…``<h6>``, ``<section>``, ``<article>``), or such an element appears and
   no Markdown signal (below) does.
2. ``markdown`` — any Markdown signal: an opening ``**``/``__`` followed by a non-space, a callout
   line ``> [!…]``, a fence line, an ATX heading, a list item, or an inline code span. Markdown
   also honours the importance tags and inline HTML rich text.
3. ``html`` — an inline HTML rich-text element that carries importance: ``<strong>``, ``<b>``,
   ``<mark>``, ``<small>``, ``<u>``, ``<ins>``, ``<font>``, ``<span data-importance…>`` or
   ``<span style…>`` (rich text pasted from an editor; ``markup._styles``).
4. ``tags`` — an importance tag (``<rule>``, ``<important>``, ``<background>``, …).
5. ``plain`` — otherwise.
"""

from __future__ import annotations

import gc
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ._context import ParseContext
from ._html import parse_html
from ._markdown import parse_markdown
from ._normalize import nfc_with_map
from ._rules import with_detected_rules
from ._search import found
from ._styles import DEFAULT_STYLE_LEVELS, StyleLevels
from ._tags import IMPORTANCE_TAGS, scan_tags
from .document import Conversation, Document, Format, MessageDocument
from .errors import MarkupError, MessageError

DEFAULT_TRUSTED_ROLES: frozenset[str] = frozenset({"system", "developer"})
# The element limit a server puts on untrusted requests (``SALIENCE_MAX_MARKUP_ELEMENTS``):
# ~0.1 s of parsing at most. ``parse`` itself has no limit unless given one.
DEFAULT_MAX_ELEMENTS = 20_000

_BLOCK_NAMES = r"(?:p|div|ul|ol|li|table|tr|td|h[1-6]|section|article|br|blockquote|pre)"
_HTML_LEADING = re.compile(rf"\s*<(?:!doctype\b|html\b|body\b|head\b|{_BLOCK_NAMES}[\s/>])", re.I)
_HTML_BLOCK = re.compile(rf"<{_BLOCK_NAMES}[\s/>]", re.I)
# Markdown signals. Each check has a literal first character so that the search stays fast
# on long prompts; line-start checks run on the first line and after every newline.
_MD_LINE = (
    r"[ \t]*(?:[-*+]|\d{1,9}[.)])[ \t]+\S"  # list item
    r"|#{1,6}[ \t]+\S"  # heading
    r"| {0,3}(?:>[ \t]?\[![A-Za-z]+\]|```|~~~)"  # callout, fence
)
_MD_FIRST_LINE = re.compile(_MD_LINE)
_MD_LATER_LINE = re.compile(rf"\n(?:{_MD_LINE})")
_MD_INLINE = (re.compile(r"\*\*[^\s*]"), re.compile(r"__[^\s_]"), re.compile(r"`[^`\n]+`"))


def _has_markdown(text: str) -> bool:
    if _MD_FIRST_LINE.match(text) or _MD_LATER_LINE.search(text):
        return True
    return any(p.search(text) for p in _MD_INLINE)


# The attribute search is bounded (as a tag is, in _tags.MAX_TAG_CHARS): "<span " repeated
# without a '>' would otherwise make this one check quadratic.
_HTML_RICH = re.compile(
    r"<(?:strong|b|mark|small|u|ins|font)[\s>]|<span\b[^<>]{0,2048}?\b(?:data-importance|style)\b",
    re.I,
)
_IMPORTANCE_TAG = re.compile(r"</?(?:" + "|".join(IMPORTANCE_TAGS) + r")(?=[\s/>])", re.IGNORECASE)


def detect_format(text: str) -> Format:
    """The format ``parse(text, format="auto")`` uses; see this module's docstring."""
    if "<" not in text:
        return Format.MARKDOWN if _has_markdown(text) else Format.PLAIN
    if _HTML_LEADING.match(text):
        return Format.HTML
    markdown = _has_markdown(text)
    if not markdown and _found(_HTML_BLOCK, text):
        return Format.HTML
    if markdown:
        return Format.MARKDOWN
    if _found(_HTML_RICH, text):
        return Format.HTML
    if _found(_IMPORTANCE_TAG, text):
        return Format.TAGS
    return Format.PLAIN


_LONGEST_MATCH = 2_100  # the longest match of the tag patterns (a <span …> bounded at 2,048)


def _found(pattern: re.Pattern[str], text: str) -> bool:
    """``pattern.search(text) is not None``, a window at a time (``markup._search``)."""
    return found(pattern, text, _LONGEST_MATCH)


def parse(
    text: str,
    format: Format | str = Format.AUTO,
    strict: bool = False,
    *,
    max_elements: int | None = None,
    detect_rules: bool = False,
    style_levels: StyleLevels | None = None,
) -> Document:
    """Parse importance markup in ``text``.

    Returns the clean text (markup removed, NFC-normalised) with its importance spans. In strict
    mode a markup fault raises a ``MarkupError`` carrying its offset, line and column in ``text``;
    otherwise it is repaired and reported in ``Document.warnings``. ``max_elements`` bounds the
    importance elements a text may open (importance tags, HTML rich-text elements, Markdown
    emphasis and callouts; not other HTML elements): past it,
    ``TooManyElementsError`` is raised in either mode. ``style_levels`` maps rich-text
    signals (bold, underline, colour… in HTML) to levels (``markup._styles``).
    ``detect_rules`` adds the sentences that state a rule as ``hard`` spans with source
    ``detected`` (``markup._rules``), where no explicit mark lies.
    """
    document = _parse(text, format, strict, max_elements, 0, style_levels)[0]
    return with_detected_rules(document, limit=max_elements) if detect_rules else document


def _parse(
    text: str,
    format: Format | str,
    strict: bool,
    limit: int | None,
    before: int = 0,
    style_levels: StyleLevels | None = None,
) -> tuple[Document, int]:
    """``parse``, and how many elements were opened, counting the ``before`` that earlier
    messages of a conversation opened."""
    if not isinstance(text, str):
        raise TypeError(f"parse() takes text as str, not {type(text).__name__}")
    if limit is not None and limit < 0:
        raise ValueError(f"max_elements must be >= 0, not {limit}")
    fmt = as_format(format)
    normal, to_original = nfc_with_map(text)
    if fmt is Format.AUTO:
        fmt = detect_format(normal)
    if fmt is Format.PLAIN:
        return Document(normal, (), Format.PLAIN, ()), before
    ctx = ParseContext(
        text,
        normal,
        to_original,
        strict,
        limit=limit,
        elements=before,
        style_levels=style_levels or DEFAULT_STYLE_LEVELS,
    )
    # A parse allocates many small objects that all live until it returns: the cyclic garbage
    # collector would walk them again and again (a third of the time on a tag-dense MiB) and
    # find nothing. It is paused for the parse and resumed after.
    collecting = gc.isenabled()
    gc.disable()
    try:
        if fmt is Format.TAGS:
            scan_tags(ctx, with_html=False)
        elif fmt is Format.MARKDOWN:
            parse_markdown(ctx)
        else:
            parse_html(ctx)
        return ctx.build(fmt), ctx.elements
    finally:
        if collecting:
            gc.enable()


def as_format(value: Format | str) -> Format:
    try:
        return Format(value)
    except ValueError:
        allowed = ", ".join(f.value for f in Format)
        raise ValueError(f"unknown format {value!r}; use one of: {allowed}") from None


def parse_messages(
    messages: Sequence[Mapping[str, Any]],
    trusted_roles: Iterable[str] = DEFAULT_TRUSTED_ROLES,
    format: Format | str = Format.AUTO,
    strict: bool = False,
    *,
    max_elements: int | None = None,
    detect_rules: bool = False,
    style_levels: StyleLevels | None = None,
) -> Conversation:
    """Parse OpenAI-style chat messages, honouring markup only in trusted roles.

    A message in an untrusted role (user, tool, assistant, unless listed) is parsed as plain
    text: a ``<rule>`` pasted into it stays literal text and never raises its level above
    ``normal``. ``content`` may be a string, ``None`` (a tool call) or a list of content parts,
    whose text parts are joined with a line break. Errors carry the ``message_index``.
    ``max_elements`` bounds the elements of all messages together (see ``parse``).
    ``detect_rules`` detects rule sentences in trusted messages only: text in an untrusted role
    never becomes a rule, marked or not.
    """
    trusted = frozenset(role.lower() for role in trusted_roles)
    fmt = as_format(format)
    parsed: list[MessageDocument] = []
    opened = 0
    for index, message in enumerate(messages):
        role, content = _role_and_content(message, index)
        is_trusted = role.lower() in trusted
        try:
            document, opened = _parse(
                content,
                fmt if is_trusted else Format.PLAIN,
                strict,
                max_elements,
                opened,
                style_levels,
            )
        except MarkupError as error:
            error.message_index = index
            raise
        if detect_rules and is_trusted:
            document = with_detected_rules(document, limit=max_elements)
        parsed.append(MessageDocument(index, role, is_trusted, document))
    return Conversation(tuple(parsed))


def _role_and_content(message: Mapping[str, Any], index: int) -> tuple[str, str]:
    if not isinstance(message, Mapping):
        raise MessageError("a message must be an object with role and content", message_index=index)
    role = message.get("role")
    if not isinstance(role, str) or not role:
        raise MessageError("a message needs a non-empty string role", message_index=index)
    content = message.get("content")
    if content is None:
        return role, ""
    if isinstance(content, str):
        return role, content
    if isinstance(content, list):
        texts: list[str] = []
        for part in content:
            if not isinstance(part, Mapping) or not isinstance(part.get("type"), str):
                raise MessageError(
                    "a content part must be an object with a type", message_index=index
                )
            if part["type"] == "text":
                text = part.get("text")
                if not isinstance(text, str):
                    raise MessageError(
                        "a text content part needs a string text", message_index=index
                    )
                texts.append(text)
        return role, "\n".join(texts)
    raise MessageError(
        "content must be a string, a list of content parts, or null", message_index=index
    )
