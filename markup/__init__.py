"""salience.markup: importance markup in prompts, parsed into spans and importance tokens.

>>> from markup import parse, tokenize
>>> doc = parse("Answer briefly. <rule>Reply in JSON.</rule>")
>>> doc.text, [(s.start, s.end, s.level.value) for s in doc.spans]
('Answer briefly. Reply in JSON.', [(16, 30, 'hard')])
"""

from __future__ import annotations

from ._styles import DEFAULT_STYLE_LEVELS, StyleLevels
from .document import (
    LEVELS,
    Conversation,
    Document,
    Format,
    Level,
    MessageDocument,
    ParseWarning,
    Source,
    Span,
)
from .encoding import ImportanceEncoding, available_encodings, load_encoding
from .errors import (
    BadAttributeError,
    EncodingError,
    EncodingUnavailableError,
    MalformedTagError,
    MarkupError,
    MessageError,
    MismatchedTagError,
    SalienceError,
    TooManyElementsError,
    UnclosedTagError,
    UnexpectedCloseTagError,
)
from .parsing import DEFAULT_TRUSTED_ROLES, detect_format, parse, parse_messages
from .rendering import TEXT_METHODS, TextMethod, render, render_notes
from .tokens import TokenizedDocument, tokenize

__all__ = [
    "DEFAULT_STYLE_LEVELS",
    "DEFAULT_TRUSTED_ROLES",
    "LEVELS",
    "TEXT_METHODS",
    "BadAttributeError",
    "Conversation",
    "Document",
    "EncodingError",
    "EncodingUnavailableError",
    "Format",
    "ImportanceEncoding",
    "Level",
    "MalformedTagError",
    "MarkupError",
    "MessageDocument",
    "MessageError",
    "MismatchedTagError",
    "ParseWarning",
    "SalienceError",
    "Source",
    "Span",
    "StyleLevels",
    "TextMethod",
    "TokenizedDocument",
    "TooManyElementsError",
    "UnclosedTagError",
    "UnexpectedCloseTagError",
    "available_encodings",
    "detect_format",
    "load_encoding",
    "parse",
    "parse_messages",
    "render",
    "render_notes",
    "tokenize",
]
