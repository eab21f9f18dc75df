"""Text methods: renderings of importance, for models that cannot take an attention bias.

Each text method is one entry of ``TEXT_METHODS`` (a ``TextMethod``: what it does to a hard and
to a high span, and where it restates the rules); ``plain`` (the clean text, marks dropped) is
the rendering of the method ``none``. Adding a text method is adding an entry there: the model's
method registry (``model.methods``), the proxy, the API's schemas, the CLI and the page all read
the table.

A ``Document`` renders to a string; a ``Conversation`` to OpenAI-style messages. Markup in
untrusted messages was never parsed, so it is never rendered as a rule.

Injection safety: a rendering's markers are reserved. Text that salience did not mark as a rule
(every untrusted message, and the normal and low text of trusted ones) cannot carry one — in
every style, whichever markers that style itself uses:

- a ``<rule``/``<important`` tag, open or close, any case: its ``<`` is written ``&lt;``, the
  way XML writes a literal angle bracket, so ``<rule>`` never reaches a model unless salience
  wrote it around a span the author marked;
- ``IMPORTANT:`` in capitals, and the rule-list headers ("Rules you must follow:", "Remember,
  these rules must be followed:", any case): put in quotation marks (“…”), read as a mention,
  not as salience's marker.

Marked text (hard and high spans of trusted messages) is the author's own and is left alone, and
so is code in trusted text: a code span or fenced block (``markup._code``) is literal, so it comes
out byte for byte in every rendering (``Use `<rule>` tags`` stays as written). Untrusted text is
defused everywhere, code included. ``plain`` is the clean text: a trusted document renders as its
``text`` exactly (it adds no marker, so nothing needs defusing); untrusted messages are defused.

``render(..., safe=False)`` skips the defusing. It exists to measure what the defusing buys
(the eval's ``xml@raw`` method, EVAL.md "Injection"); nothing in the service calls it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from ._code import code_regions
from ._search import found
from .document import Conversation, Document, Level

RULES_HEADER = "Rules you must follow:"
ECHO_HEADER = "Remember, these rules must be followed:"


def _caps(body: str) -> str:
    lead = len(body) - len(body.lstrip())
    return f"{body[:lead]}IMPORTANT: {body[lead:]}"


@dataclass(frozen=True)
class TextMethod:
    """A rendering: ``hard``/``high`` rewrite a span of that level in place (None: as it is;
    ``remove``: the span leaves the text), and ``rules`` restates the hard rules: "after" the
    prompt (``ECHO_HEADER``), in the "system" message (``RULES_HEADER``), or not at all."""

    name: str
    help: str
    hard: Callable[[str], str] | None = None
    high: Callable[[str], str] | None = None
    remove_hard: bool = False
    rules: Literal["after", "system"] | None = None

    @property
    def marks_high(self) -> bool:
        return self.high is not None

    def span(self, body: str, level: Level, quote: Callable[[str], str]) -> str:
        if level is Level.HARD:
            return "" if self.remove_hard else (self.hard(body) if self.hard else body)
        if level is Level.HIGH:
            return self.high(body) if self.high else body
        return quote(body)  # normal and low text is no rule either


PLAIN = TextMethod("plain", "the clean text, marks dropped")
_UNMARKED = TextMethod("unmarked", "the text with its marks dropped, defused like any rendering")
TEXT_METHODS: dict[str, TextMethod] = {
    m.name: m
    for m in (
        TextMethod(
            "xml",
            "hard spans wrapped in <rule>…</rule>, high spans in <important>…</important>",
            hard=lambda body: f"<rule>{body}</rule>",
            high=lambda body: f"<important>{body}</important>",
        ),
        TextMethod("caps", "each hard span prefixed with 'IMPORTANT: '", hard=_caps),
        TextMethod("echo", "the hard rules restated in a list after the prompt", rules="after"),
        TextMethod(
            "system",
            "the hard rules moved into the system message (a document: to its top)",
            remove_hard=True,
            rules="system",
        ),
    )
}
"""salience's text methods, the one table (``plain`` is ``none``'s rendering, not a method)."""

# markers a rendering uses for rules, as someone could type them (see the module's docstring)
_RESERVED_TAG = re.compile(r"<(?=\s*/?\s*(?:rule|important)\b)", re.IGNORECASE)
_RESERVED_WORDS = re.compile(
    "(?<!“)(?:"  # already in quotation marks: a mention (so defusing twice changes nothing)
    + r"\bIMPORTANT\s*:"
    + "".join(f"|(?i:{re.escape(h[:-1])})\\s*:" for h in (RULES_HEADER, ECHO_HEADER))
    + ")"
)


RESERVED = re.compile(f"(?i:{_RESERVED_TAG.pattern})|{_RESERVED_WORDS.pattern}")
"""Any reserved marker, exactly those ``defuse`` rewrites (a quick test of whether a text needs
it): the tags in any case, ``IMPORTANT:`` in capitals, the headers in any case."""

# Every reserved marker holds one of these words (in the regex engine's own case rules): a text
# without one holds no marker. Unlike RESERVED (tried at each "<", and unbounded in its
# whitespace), its matches are short, so it can be searched a window at a time.
_MARKER_WORD = re.compile(r"(?i:rule|important)")


def has_marker(text: str) -> bool:
    """Whether ``text`` holds a reserved marker (``RESERVED.search``), cheaply when it cannot:
    a long text with no marker word is ruled out a window at a time (``markup._search``),
    without one long call of the regex engine."""
    if not found(_MARKER_WORD, text, 9):
        return False
    return RESERVED.search(text) is not None


def defuse(text: str) -> str:
    """``text`` with no rendering marker left in it: reserved tags get ``&lt;``, reserved words
    quotation marks. Idempotent."""
    if not found(_MARKER_WORD, text, 9):
        return text
    # words first: a quotation mark can end a tag's name ("<ruleRemember, …:" → "<rule“…"),
    # which the tags' pass then sees; escaping a "<" never makes a word marker
    text = _RESERVED_WORDS.sub(lambda m: f"“{m.group(0)}”", text)
    return _RESERVED_TAG.sub("&lt;", text)


def _defuser(text: str, trusted: bool) -> Callable[[int, int], str]:
    """``quote(a, b)``: ``text[a:b]`` defused, except (in trusted text) where it is code, which
    stays byte for byte. Code is found in the whole text once, so a fence that opens in one
    stretch and closes in another is still code."""
    regions = code_regions(text) if trusted and has_marker(text) else []
    if not regions:
        return lambda a, b: defuse(text[a:b])

    def quote(a: int, b: int) -> str:
        out: list[str] = []
        pos = a
        for start, end in regions:
            if end <= pos:
                continue
            if start >= b:
                break
            out.append(defuse(text[pos:start]) if start > pos else "")
            out.append(text[max(start, pos) : min(end, b)])
            pos = min(end, b)
        out.append(defuse(text[pos:b]))
        return "".join(out)

    return quote


def text_method(name: str) -> TextMethod:
    """The rendering called ``name``: a text method, or ``plain`` (``none`` too)."""
    if name in ("plain", "none"):
        return PLAIN
    try:
        return TEXT_METHODS[name]
    except KeyError:
        known = ", ".join(["plain", *TEXT_METHODS])
        raise ValueError(f"unknown text method {name!r}; use one of: {known}") from None


def render_notes(target: Document | Conversation, method: str) -> list[str]:
    """What ``method`` leaves out of ``target``, said in words (empty: nothing): a method that
    marks hard spans only (caps, echo, system) gives high spans to the model as plain text."""
    chosen = text_method(method)
    if chosen is PLAIN or chosen.marks_high:
        return []
    documents = [target] if isinstance(target, Document) else [m.document for m in target.messages]
    high = sum(len(d.spans_at(Level.HIGH)) for d in documents)
    if not high:
        return []
    spans = "span" if high == 1 else "spans"
    marking = [m.name for m in TEXT_METHODS.values() if m.marks_high]
    return [
        f"{high} high {spans} rendered as plain text: the {method} method marks hard spans only "
        f"({', '.join(marking)} marks both)"
    ]


def _verbatim(text: str) -> str:
    return text


def render(
    target: Document | Conversation, method: str, *, safe: bool = True
) -> str | list[dict[str, str]]:
    """``target`` rendered by the text method ``method`` (or ``plain``); ``safe=False`` leaves
    typed markers as they are (see above). A ``Document`` is the author's, so trusted."""
    chosen = text_method(method)
    if isinstance(target, Document):
        return render_document(target, chosen, safe=safe)
    return render_conversation(target, chosen, safe=safe)


def rules(document: Document) -> list[str]:
    """The text of each hard span, stripped, in order."""
    found = [document.span_text(s).strip() for s in document.spans if s.level is Level.HARD]
    return [r for r in found if r]


def _rule_list(header: str, items: list[str]) -> str:
    return header + "\n" + "\n".join(f"- {item}" for item in items)


def _inline(document: Document, method: TextMethod, safe: bool = True, trusted: bool = True) -> str:
    """Each span rewritten in place; a removed span takes with it the space its removal would
    leave doubled ("a <rule>r</rule> b" → "a b", not "a  b"). Text outside hard and high spans is
    defused (no reserved marker survives in it), except code in trusted text; ``plain`` renders
    trusted text as its clean text."""
    text = document.text
    if method is PLAIN and trusted:
        return text
    quote_range = _defuser(text, trusted) if safe else (lambda a, b: text[a:b])
    out: list[str] = []
    pos = 0
    cut = False  # the last span was removed
    for span in document.spans:
        between = quote_range(pos, span.start)
        out.append(_after_cut(out, between) if cut else between)
        piece = method.span(text[span.start : span.end], span.level, defuse if safe else _verbatim)
        cut = piece == "" and span.start != span.end
        out.append(piece)
        pos = span.end
    rest = quote_range(pos, len(text))
    out.append(_after_cut(out, rest) if cut else rest)
    return "".join(out)


def _after_cut(out: list[str], following: str) -> str:
    """Join the text after a removed span to what precedes it with one space at most: the
    preceding text loses its trailing blanks where the following starts with a blank or with
    punctuation that should not stand after one (or nothing follows)."""
    previous = next((chunk for chunk in reversed(out) if chunk), "")
    if not previous or previous[-1] not in " \t":
        return following
    if not following or following[0] in " \t.,;:!?)":
        for i in range(len(out) - 1, -1, -1):
            if out[i]:
                out[i] = out[i].rstrip(" \t")
                break
    return following


def render_document(document: Document, method: TextMethod, *, safe: bool = True) -> str:
    found = rules(document)
    # a restating method with nothing to restate writes the text as it is, defused all the same
    body = _inline(document, _UNMARKED if method.rules and not found else method, safe)
    if not found or method.rules is None:
        return body
    if method.rules == "after":
        return f"{body.rstrip()}\n\n{_rule_list(ECHO_HEADER, found)}"
    return f"{_rule_list(RULES_HEADER, found)}\n\n{body.strip()}"


def render_conversation(
    conversation: Conversation, method: TextMethod, *, safe: bool = True
) -> list[dict[str, str]]:
    messages = [
        {"role": m.role, "content": _inline(m.document, method, safe, m.trusted)}
        for m in conversation.messages
    ]
    found = [r for m in conversation.messages for r in rules(m.document)]
    if not found or method.rules is None:
        return messages
    if method.rules == "after":
        last = messages[-1]
        last["content"] = f"{last['content'].rstrip()}\n\n{_rule_list(ECHO_HEADER, found)}"
        return messages
    # the rules leave their messages and join the first system message (or a new one)
    block = _rule_list(RULES_HEADER, found)
    system = next((m for m in messages if m["role"] == "system"), None)
    if system is None:
        return [{"role": "system", "content": block}, *messages]
    system["content"] = f"{system['content'].rstrip()}\n\n{block}".lstrip()
    return messages
