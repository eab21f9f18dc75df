"""Markdown importance: ``**strong**``/``__strong__`` (high) and GitHub callouts
``> [!CAUTION]``/``> [!WARNING]`` (hard), ``> [!IMPORTANT]`` (high).

Tags come first: importance tags and HTML rich-text tags are found outside code and removed, then
pyromark (CommonMark + GFM, with byte ranges) parses what is left, so that ``<rule>`` on a line of
its own does not turn the rule into a raw HTML block. Offsets in that stripped text are mapped
back to the full text. Code spans and fenced code are literal to both passes. Everything that is
not importance markup (headings, lists, single ``*emphasis*``, links, ``[!NOTE]`` callouts) stays
in the clean text as written.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable

import numpy as np
import pyromark

from ._context import ParseContext
from ._tags import scan_tags
from .document import Level, Source

_OPTIONS = (
    pyromark.Options.ENABLE_GFM
    | pyromark.Options.ENABLE_TABLES
    | pyromark.Options.ENABLE_STRIKETHROUGH
    | pyromark.Options.ENABLE_TASKLISTS
)
CALLOUT_LEVELS = {"Caution": Level.HARD, "Warning": Level.HARD, "Important": Level.HIGH}
_QUOTE_PREFIX = re.compile(r"[ ]{0,3}>[ ]?")
# Cheap pre-checks: without these characters pyromark cannot find anything of ours.
_MAYBE_MARKDOWN = re.compile(r"\*\*|__|\[!")


def parse_markdown(ctx: ParseContext) -> None:
    scan_tags(ctx, with_html=True)
    tag_edits = sorted(ctx.edits)
    stripped, to_full = _strip(ctx.text, tag_edits)
    if not _MAYBE_MARKDOWN.search(stripped):
        return
    byte_to_char = _byte_to_char(stripped)
    stack: list[tuple[str, int, int]] = []  # (kind, start, end) of open Strong/callout
    for event, span in pyromark.events_with_range(stripped, options=_OPTIONS):
        if isinstance(event, str):
            continue
        start_event = event.get("Start")
        if start_event is not None:
            kind = _kind(start_event)
            if kind is not None:
                stack.append((kind, span["start"], span["end"]))
            continue
        end_event = event.get("End")
        if end_event is None or _kind(end_event) is None or not stack:
            continue
        kind, a, b = stack.pop()
        a, b = byte_to_char(a), byte_to_char(b)
        if kind == "Strong":
            _strong(ctx, stripped, to_full, a, b)
        else:
            _callout(ctx, stripped, to_full, a, b, CALLOUT_LEVELS[kind])


def _kind(value: object) -> str | None:
    if value == "Strong":
        return "Strong"
    if isinstance(value, dict):
        quote = value.get("BlockQuote")
        if quote in CALLOUT_LEVELS:
            return str(quote)
    return None


def _strong(
    ctx: ParseContext, stripped: str, to_full: Callable[[int], int], a: int, b: int
) -> None:
    # A Strong range always starts and ends with exactly two delimiter characters.
    ctx.element(to_full(a))
    _remove(ctx, to_full, a, a + 2)
    _remove(ctx, to_full, b - 2, b)
    # The content runs from just after the opening delimiter to the closing one, in the full
    # text, so that a tag written just inside the delimiters nests inside the strong span.
    ctx.mark(to_full(a + 1) + 1, to_full(b - 2), Level.HIGH, Source.MARKDOWN)


def _callout(
    ctx: ParseContext,
    stripped: str,
    to_full: Callable[[int], int],
    a: int,
    b: int,
    level: Level,
) -> None:
    # The marker line "> [!WARNING]" goes, and so does the "> " that starts each later line of
    # this quote (at the quote's own column, so an enclosing list or quote keeps its prefix).
    ctx.element(to_full(a))
    first_newline = stripped.find("\n", a, b)
    marker_end = b if first_newline < 0 else first_newline + 1
    marker_line = stripped.rfind("\n", 0, a) + 1
    column = a - marker_line
    # The whole marker line goes when only indentation or outer quote markers precede it.
    blank_before = stripped[marker_line:a].strip(" >") == ""
    _remove(ctx, to_full, marker_line if blank_before else a, marker_end)
    line_start = marker_end
    content_start = marker_end
    while line_start < b:
        prefix = _QUOTE_PREFIX.match(stripped, line_start + column, b)
        if prefix is not None and stripped[line_start : line_start + column].strip(" >") == "":
            _remove(ctx, to_full, prefix.start(), prefix.end())
            if line_start == marker_end:
                content_start = prefix.end()
        newline = stripped.find("\n", line_start, b)
        if newline < 0:
            break
        line_start = newline + 1
    if content_start < b:
        ctx.mark(to_full(content_start - 1) + 1, to_full(b - 1) + 1, level, Source.MARKDOWN)


def _remove(ctx: ParseContext, to_full: Callable[[int], int], a: int, b: int) -> None:
    """Remove stripped characters ``[a, b)``, which may be interleaved with removed tags."""
    if b <= a:
        return
    run_start = to_full(a)
    if to_full(b - 1) - run_start == b - 1 - a:  # no removed tag inside: one range
        ctx.remove(run_start, run_start + (b - a))
        return
    previous = run_start
    for c in range(a + 1, b):
        full = to_full(c)
        if full != previous + 1:
            ctx.remove(run_start, previous + 1)
            run_start = full
        previous = full
    ctx.remove(run_start, previous + 1)


def _strip(text: str, edits: list[tuple[int, int, str]]) -> tuple[str, Callable[[int], int]]:
    """``text`` without the tag edits, and a map from a stripped character to its full offset."""
    if not edits:
        return text, lambda c: c
    pieces: list[str] = []
    breaks: list[int] = []  # stripped offsets where a removed tag sat just before
    shifts: list[int] = []  # characters removed up to and including that tag
    pos = 0
    removed = 0
    for a, b, _ in edits:
        pieces.append(text[pos:a])
        breaks.append(a - removed)
        removed += b - a
        shifts.append(removed)
        pos = b
    pieces.append(text[pos:])

    def to_full(c: int) -> int:
        i = bisect_right(breaks, c) - 1
        return c if i < 0 else c + shifts[i]

    return "".join(pieces), to_full


def _byte_to_char(text: str) -> Callable[[int], int]:
    """Map a UTF-8 byte offset of ``text`` to its character offset."""
    if text.isascii():
        return lambda b: b
    data = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    is_start = (data & 0xC0) != 0x80
    char_index = np.cumsum(is_start) - 1
    total = len(data)

    def convert(b: int) -> int:
        return len(text) if b >= total else int(char_index[b])

    return convert
