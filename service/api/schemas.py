"""Request and response bodies of the HTTP API, with the examples shown in ``/docs``."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator

from salience.markup import TEXT_METHODS, Format

from ..annotator import SCHEMA_VERSION, AnnotateOptions

# the text methods (markup.rendering's table), and plain: the clean text
TextMethodName = Literal[("plain", *TEXT_METHODS)]  # type: ignore[valid-type]
LevelName = Literal["hard", "high", "normal", "low"]
SourceName = Literal["tag", "markdown", "html", "style", "detected"]

EXAMPLE_TEXT = "Summarise the report. <rule>Answer in at most three bullet points.</rule>"


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str = Field(min_length=1)
    text: str | None = None


class ChatMessage(BaseModel):
    """An OpenAI-style chat message; fields other than role and content are kept as they are."""

    model_config = ConfigDict(extra="allow")
    role: str = Field(min_length=1, max_length=64)
    content: str | list[ContentPart] | None = None


def _exactly_one_input(schema: dict[str, Any]) -> None:
    """In the JSON schema: ``text`` and ``messages`` are not nullable, and exactly one is given."""
    properties = schema["properties"]
    for name in ("text", "messages"):
        field = properties[name]
        choices = field.pop("anyOf")
        field.update(next(c for c in choices if c.get("type") != "null"))
        field.pop("default", None)
    schema["oneOf"] = [{"required": ["text"]}, {"required": ["messages"]}]
    schema["examples"] = ANNOTATE_EXAMPLES


ANNOTATE_EXAMPLES: list[dict[str, Any]] = [
    {"text": EXAMPLE_TEXT, "method": "xml"},
    {
        "messages": [
            {"role": "system", "content": "<rule>Reply in French.</rule>"},
            {"role": "user", "content": "<rule>this stays text</rule> Hello!"},
        ],
        "tokens": False,
    },
]


class AnnotateRequest(BaseModel):
    """Either ``text`` or ``messages``, and what to return."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_exactly_one_input)

    text: str | None = Field(None, description="a prompt with importance markup")
    messages: list[ChatMessage] | None = Field(
        None, description="OpenAI-style chat messages; markup only in trusted roles"
    )
    format: Format = Field(Format.AUTO, description="markup format; auto detects it")
    strict: StrictBool = Field(False, description="markup faults are 422 errors instead of repairs")
    detect_rules: StrictBool = Field(
        False,
        description="also mark the sentences that state a rule as hard (source 'detected'), "
        "in the text or in trusted messages only, where no explicit mark lies",
    )
    style_levels: dict[str, LevelName | None] | None = Field(
        None,
        description="HTML rich text: the level each style signal gives (bold, underline, color, "
        "highlight, larger, uppercase, heading; null ignores it) and 'combined', the level of "
        "two or more together (default: the server's; each signal high, combined hard)",
    )
    encoding: str | None = Field(
        None, min_length=1, description="tiktoken base encoding (default: the server's)"
    )
    trusted_roles: list[str] | None = Field(
        None, description="roles whose markup is honoured (default: the server's)"
    )
    tokens: StrictBool = Field(True, description="include token ids, levels and markers")
    offsets: StrictBool = Field(True, description="include each token's character offsets")
    method: TextMethodName | None = Field(
        None,
        description="also render the prompt with this text method, for a model without a bias "
        "(plain: the clean text); the response's 'render' holds the result",
    )
    render: TextMethodName | None = Field(
        None, deprecated=True, description="the former name of 'method', accepted until 0.3"
    )

    @model_validator(mode="after")
    def _one_input(self) -> AnnotateRequest:
        for name in ("text", "messages"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} may not be null; leave it out instead")
        if (self.text is None) == (self.messages is None):
            raise ValueError("give exactly one of text or messages")
        if self.render is not None:
            if self.method is not None and self.method != self.render:
                raise ValueError("'render' is the former name of 'method'; give one of them")
            self.method = self.render
        return self

    def options(self) -> AnnotateOptions:
        """The request as the annotator's plain options."""
        messages = None
        if self.messages is not None:
            messages = [{"role": m.role, "content": _content(m)} for m in self.messages]
        return AnnotateOptions(
            text=self.text,
            messages=messages,
            format=self.format,
            strict=self.strict,
            detect_rules=self.detect_rules,
            style_levels=self.style_levels,
            encoding=self.encoding,
            trusted_roles=self.trusted_roles,
            tokens=self.tokens,
            offsets=self.offsets,
            method=self.method,
        )


def _content(message: ChatMessage) -> Any:
    if isinstance(message.content, list):
        return [part.model_dump(exclude_none=True) for part in message.content]
    return message.content


class SpanOut(BaseModel):
    start: int
    end: int
    level: LevelName
    source: SourceName
    via: str | None = Field(
        None, description="rich text: what made the level (<u>, font-weight:700, …)"
    )


class WarningOut(BaseModel):
    code: str
    message: str
    offset: int
    line: int
    column: int


class TokensOut(BaseModel):
    count: int
    ids: list[int]
    levels: list[LevelName]
    markers: list[bool]
    offsets: list[tuple[int, int]] | None = None


class DocumentOut(BaseModel):
    text: str
    format: Literal["tags", "markdown", "html", "plain"]
    spans: list[SpanOut]
    warnings: list[WarningOut]
    tokens: TokensOut | None = None


class MessageOut(DocumentOut):
    index: int
    role: str
    trusted: bool


class SpecialToken(BaseModel):
    token: str
    id: int
    level: LevelName
    kind: Literal["open", "close"]


class RenderedMessage(BaseModel):
    role: str
    content: str


class AnnotateResponse(BaseModel):
    schema_version: Literal["1"] = SCHEMA_VERSION
    encoding: str = Field(description="the importance encoding used, e.g. cl100k_base_imp")
    token_count: int
    document: DocumentOut | None = Field(None, description="for a text request")
    messages: list[MessageOut] | None = Field(None, description="for a messages request")
    special_tokens: list[SpecialToken]
    render: str | list[RenderedMessage] | None = None
    render_notes: list[str] | None = Field(
        None, description="what the rendering leaves out (caps/echo/system: high spans)"
    )


class BatchRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"requests": [{"text": EXAMPLE_TEXT}, {"text": "**hi**"}]}]
        },
    )
    requests: list[AnnotateRequest] = Field(min_length=1)


class Problem(BaseModel):
    """RFC 9457 problem details; the fields after ``detail`` appear where they apply."""

    model_config = ConfigDict(extra="allow")
    type: str
    title: str
    status: int
    detail: str
    offset: int | None = None
    line: int | None = None
    column: int | None = None
    message_index: int | None = None


class BatchItem(BaseModel):
    ok: bool
    result: AnnotateResponse | None = None
    error: Problem | None = None


class BatchResponse(BaseModel):
    schema_version: Literal["1"] = SCHEMA_VERSION
    results: list[BatchItem]


class EncodingOut(BaseModel):
    name: str
    importance_name: str
    n_vocab: int
    special_tokens: list[SpecialToken]


class EncodingsResponse(BaseModel):
    default: str
    encodings: list[EncodingOut]
    unavailable: list[dict[str, str]]


PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {
        "model": Problem,
        "description": description,
        "content": {"application/problem+json": {}},
    }
    for status, description in {
        400: "invalid JSON or UTF-8",
        408: "the body did not arrive in time",
        413: "body over the limit",
        415: "not application/json",
        422: "invalid request, markup error (strict), token limit, or unknown encoding",
    }.items()
}
