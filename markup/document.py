"""The parsed form of a prompt: clean text plus importance spans over it.

A ``Document`` is what every other part of salience consumes. Its ``text`` is the prompt with
the importance markup removed (and NFC-normalised); its ``spans`` are sorted, non-overlapping
``[start, end)`` ranges of characters of ``text`` that carry an explicit level. Characters outside
every span are ``normal`` by default.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class Level(StrEnum):
    """Importance levels, from most to least important."""

    HARD = "hard"
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"

    @property
    def rank(self) -> int:
        """3 for hard down to 0 for low: larger is more important."""
        return _RANK[self]

    @classmethod
    def parse(cls, value: str) -> Level | None:
        """The level named by ``value`` (case and surrounding space ignored), else None."""
        try:
            return cls(value.strip().lower())
        except ValueError:
            return None


_RANK = {Level.HARD: 3, Level.HIGH: 2, Level.NORMAL: 1, Level.LOW: 0}
LEVELS: tuple[Level, ...] = (Level.HARD, Level.HIGH, Level.NORMAL, Level.LOW)


class Source(StrEnum):
    """Which kind of markup gave a span its level."""

    TAG = "tag"
    MARKDOWN = "markdown"
    HTML = "html"
    STYLE = "style"  # inline CSS in HTML (``Span.via`` names the declarations)
    DETECTED = "detected"  # a rule sentence found by the rule detector (``detect_rules``)


class Format(StrEnum):
    AUTO = "auto"
    TAGS = "tags"
    MARKDOWN = "markdown"
    HTML = "html"
    PLAIN = "plain"


@dataclass(frozen=True, slots=True)
class Span:
    """Characters ``[start, end)`` of a document's clean text, with one level and one source;
    ``via`` says what made a rich-text span ("<u>", "font-weight:700; color:#c00")."""

    start: int
    end: int
    level: Level
    source: Source
    via: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "start": self.start,
            "end": self.end,
            "level": self.level.value,
            "source": self.source.value,
        }
        if self.via is not None:
            out["via"] = self.via
        return out


@dataclass(frozen=True, slots=True)
class ParseWarning:
    """A repair made in lenient mode. ``offset`` is in the text as the caller sent it."""

    code: str
    message: str
    offset: int
    line: int
    column: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Document:
    """Clean text, its importance spans, the format that was parsed, and lenient repairs."""

    text: str
    spans: tuple[Span, ...] = ()
    format: Format = Format.PLAIN
    warnings: tuple[ParseWarning, ...] = ()

    def level_at(self, index: int) -> Level:
        """The level of character ``index`` of the clean text."""
        for span in self.spans:
            if span.start <= index < span.end:
                return span.level
            if span.start > index:
                break
        return Level.NORMAL

    def spans_at(self, level: Level) -> list[Span]:
        return [s for s in self.spans if s.level is level]

    def span_text(self, span: Span) -> str:
        return self.text[span.start : span.end]

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "format": self.format.value,
            "spans": [s.to_dict() for s in self.spans],
            "warnings": [w.to_dict() for w in self.warnings],
        }


@dataclass(frozen=True, slots=True)
class MessageDocument:
    """One chat message, parsed. Markup is honoured only when ``trusted``."""

    index: int
    role: str
    trusted: bool
    document: Document

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "role": self.role,
            "trusted": self.trusted,
            **self.document.to_dict(),
        }


@dataclass(frozen=True, slots=True)
class Conversation:
    """A parsed list of chat messages, in order."""

    messages: tuple[MessageDocument, ...] = field(default_factory=tuple)

    def to_messages(self) -> list[dict[str, str]]:
        """The messages with clean text, in OpenAI form."""
        return [{"role": m.role, "content": m.document.text} for m in self.messages]

    def to_dict(self) -> dict[str, Any]:
        return {"messages": [m.to_dict() for m in self.messages]}
