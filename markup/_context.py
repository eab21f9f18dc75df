"""Shared machinery of the format parsers: edits, marks, and building the Document.

A format parser never builds clean text itself. It reports, in offsets of the NFC text:

- *edits*: ``(start, end, replacement)`` ranges of markup to remove (or, for HTML character
  references and line breaks, to replace), non-overlapping;
- *marks*: ``(start, end, level, source)`` ranges of content that an element gives a level.

``build`` applies the edits, maps the marks onto the clean text and paints levels so that the
innermost mark wins (the one that opens last; for equal starts, the one that closes first).
Errors and warnings go through the context so that their offsets point into the text as sent.
"""

from __future__ import annotations

import heapq
import itertools
import re
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from ._splice import Splice
from ._styles import DEFAULT_STYLE_LEVELS, StyleLevels
from .document import Document, Format, Level, ParseWarning, Source, Span
from .errors import MarkupError, TooManyElementsError


@dataclass(slots=True)
class Mark:
    start: int
    end: int
    level: Level
    source: Source
    seq: int
    via: str | None = None
    signals: frozenset[str] = frozenset()  # rich-text signals (markup._styles), inherited ones too
    css: frozenset[str] = frozenset()  # those of the signals that came from inline CSS


# Repairs listed one by one per document; past this, they are counted in one last warning. A
# hostile prompt can hold a fault every few characters: listing each would make the answer
# many times larger than the prompt.
MAX_WARNINGS = 100


class LineIndex:
    """Line and column of an offset in O(log n), after one O(n) pass on first use.

    ``errors.line_col`` counts newlines from the start on every call: fine for one error, but a
    lenient parse may report a repair per tag, and that must not cost O(n) each.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self._starts: list[int] | None = None

    def line_col(self, offset: int) -> tuple[int, int]:
        starts = self._starts
        if starts is None:
            starts = self._starts = [0, *(m.end() for m in _NEWLINE.finditer(self.text))]
        offset = max(0, min(offset, len(self.text)))
        line = bisect_right(starts, offset)
        return line, offset - starts[line - 1] + 1


_NEWLINE = re.compile("\n")


@dataclass
class ParseContext:
    original: str  # the text as the caller sent it
    text: str  # its NFC form, which the parsers read
    to_original: Callable[[int], int]
    strict: bool
    edits: list[tuple[int, int, str]] = field(default_factory=list)
    marks: list[Mark] = field(default_factory=list)
    warnings: list[ParseWarning] = field(default_factory=list)
    unlisted: int = 0  # repairs past MAX_WARNINGS
    # Elements the parsers may open (None: no limit). A caller that serves untrusted
    # text bounds the work a parse can do per request: each element costs a few µs of Python.
    limit: int | None = None
    elements: int = 0  # elements opened so far (in a conversation: by earlier messages too)
    style_levels: StyleLevels = DEFAULT_STYLE_LEVELS  # rich-text signals → levels (HTML)
    lines: LineIndex = field(init=False)

    def __post_init__(self) -> None:
        self.lines = LineIndex(self.original)

    def remove(self, start: int, end: int, replacement: str = "") -> None:
        if end > start or replacement:
            self.edits.append((start, end, replacement))

    def mark(
        self,
        start: int,
        end: int,
        level: Level,
        source: Source,
        via: str | None = None,
        signals: frozenset[str] = frozenset(),
        css: frozenset[str] = frozenset(),
    ) -> None:
        self.marks.append(Mark(start, end, level, source, len(self.marks), via, signals, css))

    def element(self, offset: int) -> None:
        """Count an element that opens at ``offset``; past the limit, refuse the text."""
        self.elements += 1
        if self.limit is not None and self.elements > self.limit:
            original_offset = self.to_original(offset)
            line, column = self.lines.line_col(original_offset)
            raise TooManyElementsError(
                f"the text has more than {self.limit} importance elements (tags, HTML "
                "rich-text elements, Markdown emphasis and callouts); this one is past the limit",
                limit=self.limit,
                offset=original_offset,
                line=line,
                column=column,
            )

    def listing(self) -> bool:
        """Whether a fault now would be raised or listed (not only counted): callers that
        report many faults skip building messages that nobody will read."""
        return self.strict or len(self.warnings) < MAX_WARNINGS

    def fault(
        self,
        error: type[MarkupError],
        code: str,
        problem: str,
        offset: int,
        *,
        repair: str,
        fix: str,
    ) -> None:
        """Raise ``error`` in strict mode, saying the problem and how to fix it ("<rule> is
        never closed (close it with </rule>)"); otherwise record a warning that says the
        problem and the repair that was made ("…; it was closed at the end of the text")."""
        if not self.strict and len(self.warnings) >= MAX_WARNINGS:
            self.unlisted += 1
            return
        original_offset = self.to_original(offset)
        line, column = self.lines.line_col(original_offset)
        if self.strict:
            message = f"{problem} ({fix})"
            raise error(message, offset=original_offset, line=line, column=column)
        message = f"{problem}; {repair}"
        self.warnings.append(ParseWarning(code, message, original_offset, line, column))

    def where(self, offset: int) -> str:
        """ "line L, column C" of a text offset, for messages that refer to a second place."""
        line, column = self.lines.line_col(self.to_original(offset))
        return f"line {line}, column {column}"

    def build(self, fmt: Format) -> Document:
        splice = Splice(self.text, self.edits)
        clean, to_clean = splice.text, splice.to_new
        marks = self.marks
        if any(m.css for m in marks):
            marks = _without_dominant_css(marks, to_clean, clean, self.style_levels)
        spans = _paint(marks, to_clean)
        warnings = self.warnings
        if self.unlisted:
            last = warnings[-1]
            warnings.append(
                ParseWarning(
                    "more-repairs",
                    f"{self.unlisted} more repairs were made after this one and are not listed "
                    f"(at most {MAX_WARNINGS} are)",
                    last.offset,
                    last.line,
                    last.column,
                )
            )
        return Document(clean, tuple(spans), fmt, tuple(warnings))


# A CSS signal over this share of a document's text is its style, not emphasis; documents
# shorter than DOCUMENT characters (a pasted sentence or two) are taken at face value.
DOMINANT = 0.9
DOCUMENT = 200
_PROPERTIES = {
    "bold": ("font-weight",),
    "underline": ("text-decoration",),
    "color": ("color",),
    "highlight": ("background",),
    "larger": ("font-size",),
    "uppercase": ("text-transform",),
}


def _without_dominant_css(
    marks: list[Mark], to_clean: Callable[[int], int], clean: str, levels: StyleLevels
) -> list[Mark]:
    """Editor chrome is not importance: a signal that inline CSS puts on (nearly) the whole
    text — one bold span around a pasted document, a default colour — is taken out of every
    mark's signals, and the marks are levelled again (dropped where nothing is left)."""
    content = len(clean.strip())
    if content < DOCUMENT:
        return marks
    dominant = set()
    for signal in {s for m in marks for s in m.css}:
        ranges = sorted((to_clean(m.start), to_clean(m.end)) for m in marks if signal in m.css)
        covered, reach = 0, 0
        for a, b in ranges:
            a = max(a, reach)
            if b > a:
                covered += b - a
                reach = b
        if covered >= DOMINANT * content:
            dominant.add(signal)
    if not dominant:
        return marks
    out = []
    dropped = tuple(p for signal in dominant for p in _PROPERTIES.get(signal, ()))
    for m in marks:
        if m.via is None or not m.signals & dominant:  # an explicit level is never re-levelled
            out.append(m)
            continue
        level = levels.level(m.signals - frozenset(dominant))
        if level is not None:
            causes = [
                "; ".join(d for d in part.split("; ") if not d.startswith(dropped))
                for part in m.via.split(" + ")
            ]
            via = " + ".join(c for c in causes if c) or None
            out.append(replace(m, level=level, signals=m.signals - frozenset(dominant), via=via))
    return out


def _paint(marks: list[Mark], to_clean: Callable[[int], int]) -> list[Span]:
    # Innermost wins: larger start, then smaller end, then later sequence number.
    placed = []
    for m in marks:
        a, b = to_clean(m.start), to_clean(m.end)
        if b > a:
            placed.append(((m.start, -m.end, m.seq), a, b, m.level, m.source, m.via))
    if not placed:
        return []
    placed.sort(key=lambda p: p[1])
    if all(placed[k][2] <= placed[k + 1][1] for k in range(len(placed) - 1)):
        return _disjoint(placed)  # the common case: no nesting at all
    points = sorted({p[1] for p in placed} | {p[2] for p in placed})
    heap: list[tuple[tuple[int, int, int], int, Level, Source, str | None]] = []
    spans: list[Span] = []
    i = 0
    for x, y in itertools.pairwise(points):
        while i < len(placed) and placed[i][1] <= x:
            key, _, end, level, source, via = placed[i]
            heapq.heappush(heap, ((-key[0], -key[1], -key[2]), end, level, source, via))
            i += 1
        while heap and heap[0][1] <= x:
            heapq.heappop(heap)
        if not heap:
            continue
        _, _, level, source, via = heap[0]
        _extend(spans, x, y, level, source, via)
    return spans


_Placed = tuple[tuple[int, int, int], int, int, Level, Source, str | None]


def _disjoint(placed: list[_Placed]) -> list[Span]:
    spans: list[Span] = []
    for _, a, b, level, source, via in placed:
        _extend(spans, a, b, level, source, via)
    return spans


def _extend(
    spans: list[Span], a: int, b: int, level: Level, source: Source, via: str | None
) -> None:
    """Append ``[a, b)``, merged into the last span if they touch with one level, source and
    cause."""
    last = spans[-1] if spans else None
    if (
        last is not None
        and last.end == a
        and last.level is level
        and last.source is source
        and last.via == via
    ):
        spans[-1] = Span(last.start, b, level, source, via)
    else:
        spans.append(Span(a, b, level, source, via))
