"""Every error salience raises about its input, as one tree (classes defined outside this module
are named with it; they live next to what raises them, so that markup stays torch-free).

    SalienceError
     ├── MarkupError                 the markup of a prompt is wrong (strict mode)
     │    ├── UnclosedTagError         an opening tag never closed
     │    ├── MismatchedTagError       a closing tag that closes the wrong element
     │    ├── UnexpectedCloseTagError  a closing tag with nothing open to close
     │    ├── MalformedTagError        a known tag that is not well formed (no ``>``, bad quoting)
     │    ├── BadAttributeError        a level attribute that is missing or not a level
     │    └── TooManyElementsError     more elements than the caller's limit (in both modes)
     ├── MessageError                a chat message that is not a message (no role, bad content)
     ├── DocumentError               a .docx/RTF document salience cannot read (damaged, hostile)
     ├── EncodingError               a tokenizer encoding problem
     │    └── EncodingUnavailableError an encoding whose data is not on this machine
     ├── model.methods.MethodError     an unknown method or parameter, a missing bias file
     ├── model.loader.ModelNotFoundError       no model at the path (or the hub is unreachable)  503
     ├── model.loader.DeviceUnavailableError   the device asked for is not on this machine       503
     ├── model.prompt.TemplateError    the model's chat template cannot render the conversation
     ├── evals.openai_backend.BackendError     a remote model server failed (upstream_status)   502
     ├── evals.errors.GridError        an eval grid that cannot run (bad-grid, bad-family)
     ├── service.engine.ModelUnavailableError  the local model could not be loaded             503
     ├── service.jobs.TooManyJobsError         the eval job queue is full                       429
     ├── service.jobs.GridTooLargeError        a job asks for more answers than the limit
     └── service.proxy.rewrite.RewriteError    a chat request the proxy cannot annotate
          └── ParameterError                     a parameter of the wrong type or range (param)

Each class says how a service answers it: ``code``, ``status`` (422 unless the tree gives another)
and ``title``; ``fields()`` gives where the fault is, by the same names everywhere. Every
``MarkupError`` carries the character ``offset`` of the fault in the text as the caller sent it
(before NFC normalisation), with its 1-based ``line`` and ``column``, and, for chat messages, the
``message_index``; ``RewriteError`` carries ``message_index`` (and ``offset``) the same way. The
service maps this tree to JSON problem details in one place (``service.core.problems``) and to
OpenAI-style errors in one place (``service.proxy.errors``).
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BadAttributeError",
    "DocumentError",
    "EncodingError",
    "EncodingUnavailableError",
    "MalformedTagError",
    "MarkupError",
    "MessageError",
    "MismatchedTagError",
    "SalienceError",
    "TooManyElementsError",
    "UnclosedTagError",
    "UnexpectedCloseTagError",
    "line_col",
]


def line_col(text: str, offset: int) -> tuple[int, int]:
    """1-based line and column (in characters) of ``offset`` in ``text``."""
    offset = max(0, min(offset, len(text)))
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return line, column


class SalienceError(Exception):
    """Base of every error salience raises about its input. ``code``, ``status`` and ``title``
    are what a service answers with (``service.core.problems``, ``service.proxy.errors``);
    ``fields()`` locates the fault (offset, line, column, message_index) and adds what helps
    (a limit, the encodings available), the same names on every class."""

    code = "salience-error"
    status = 422
    title = "Invalid input"

    def detail(self) -> str:
        """The message alone (``str()`` may prefix where the fault is; ``fields`` says it)."""
        return str(self)

    def fields(self) -> dict[str, Any]:
        return {}


class MarkupError(SalienceError):
    """The markup of a prompt is wrong; raised in strict mode only."""

    code = "markup-error"
    title = "Markup error"

    def __init__(
        self,
        message: str,
        *,
        offset: int,
        line: int,
        column: int,
        message_index: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset
        self.line = line
        self.column = column
        self.message_index = message_index

    def detail(self) -> str:
        return self.message

    def fields(self) -> dict[str, Any]:
        where = {"offset": self.offset, "line": self.line, "column": self.column}
        return {**where, "message_index": self.message_index}

    @classmethod
    def at(cls, message: str, text: str, offset: int) -> MarkupError:
        """Build the error for ``offset`` in ``text`` (the text as the caller sent it)."""
        line, column = line_col(text, offset)
        return cls(message, offset=offset, line=line, column=column)

    def __str__(self) -> str:
        where = f"{self.line}:{self.column}"
        if self.message_index is not None:
            where = f"message {self.message_index}, {where}"
        return f"{where}: {self.message}"


class UnclosedTagError(MarkupError):
    """An opening tag that is never closed; ``offset`` is where it opens."""

    code = "unclosed-tag"


class MismatchedTagError(MarkupError):
    """A closing tag for another element than the one open; ``offset`` is the closing tag."""

    code = "mismatched-tag"


class UnexpectedCloseTagError(MarkupError):
    """A closing tag with no element open to close."""

    code = "unexpected-close-tag"


class MalformedTagError(MarkupError):
    """A known tag that is not well formed: no ``>``, broken quoting, stray characters."""

    code = "malformed-tag"


class BadAttributeError(MarkupError):
    """A level attribute that is missing or not one of the levels."""

    code = "bad-attribute"


class TooManyElementsError(MarkupError):
    """The text opens more importance elements (tags, HTML rich-text elements, Markdown emphasis
    and callouts) than the ``max_elements`` the caller set; raised in lenient mode too, as it is
    a limit, not a fault to repair. ``offset`` is where the element that passed the limit starts (in
    Markdown, tags are counted first, then callouts and emphasis)."""

    code = "too-many-elements"

    def __init__(self, message: str, *, limit: int, offset: int, line: int, column: int) -> None:
        super().__init__(message, offset=offset, line=line, column=column)
        self.limit = limit

    def fields(self) -> dict[str, Any]:
        return {**super().fields(), "limit": self.limit}


class MessageError(SalienceError):
    """A chat message is not a message: no role, or content that is not text."""

    code = "bad-message"
    title = "Invalid message"

    def __init__(self, message: str, *, message_index: int) -> None:
        super().__init__(message)
        self.message = message
        self.message_index = message_index

    def detail(self) -> str:
        return self.message

    def fields(self) -> dict[str, Any]:
        return {"message_index": self.message_index}

    def __str__(self) -> str:
        return f"message {self.message_index}: {self.message}"


class DocumentError(SalienceError):
    """A document salience cannot read: not the format it claims, damaged, or hostile."""

    code = "bad-document"


class EncodingError(SalienceError):
    """A tokenizer encoding salience cannot use."""

    code = "encoding-error"


class EncodingUnavailableError(EncodingError):
    """The encoding is unknown, or its data file is not on this machine (nothing is downloaded)."""

    code = "encoding-unavailable"
    title = "Encoding not available"

    def __init__(self, message: str, *, name: str, available: list[str]) -> None:
        super().__init__(message)
        self.name = name
        self.available = available

    def fields(self) -> dict[str, Any]:
        return {"available": self.available}
