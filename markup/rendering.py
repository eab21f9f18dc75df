"""Text renderings of importance, for models that cannot take an attention bias.

Styles (one line each):

- ``plain``: the clean text, marks dropped.
- ``xml``: hard spans wrapped in ``<rule>…</rule>``, high spans in ``<important>…</important>``.
- ``caps``: each hard span prefixed with ``IMPORTANT: ``.
- ``echo``: the hard rules restated in a list after the rest of the prompt.
- ``system``: the hard rules moved out of the text into the system message (for a single
  document: to the top of it).

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

Marked text (hard and high spans of trusted messages) is the author's own and is left alone.

``render(..., safe=False)`` skips the defusing. It exists to measure what the defusing buys
(the eval's ``xml@raw`` method, EVAL.md "Injection"); nothing in the service calls it.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from .document import Conversation, Document, Level, Span

RENDER_STYLES: dict[str, str] = {
    "plain": "the clean text, marks dropped",
    "xml": "hard spans wrapped in <rule>…</rule>, high spans in <important>…</important>",
    "caps": "each hard span prefixed with 'IMPORTANT: '",
    "echo": "the hard rules restated in a list after the rest of the prompt",
    "system": "the hard rules moved into the system message (a document: to its top)",
}
# the renderings a model that cannot take a bias is given: salience's text methods, everywhere
# (model.methods, the proxy, the eval's remote backend) read them from here
TEXT_METHODS: tuple[str, ...] = tuple(style for style in RENDER_STYLES if style != "plain")
RULES_HEADER = "Rules you must follow:"
ECHO_HEADER = "Remember, these rules must be followed:"

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


def defuse(text: str) -> str:
    """``text`` with no rendering marker left in it: reserved tags get ``&lt;``, reserved words
    quotation marks. Idempotent."""
    text = _RESERVED_TAG.sub("&lt;", text)
    return _RESERVED_WORDS.sub(lambda m: f"“{m.group(0)}”", text)


def render_notes(target: Document | Conversation, style: str) -> list[str]:
    """What ``style`` leaves out of ``target``, said in words (empty: nothing): caps, echo and
    system carry hard spans only, so high spans go to the model as plain text."""
    if style not in ("caps", "echo", "system"):
        return []
    documents = [target] if isinstance(target, Document) else [m.document for m in target.messages]
    high = sum(len(d.spans_at(Level.HIGH)) for d in documents)
    if not high:
        return []
    spans = "span" if high == 1 else "spans"
    return [
        f"{high} high {spans} rendered as plain text: the {style} style marks hard spans only "
        "(xml marks both)"
    ]


def _verbatim(text: str) -> str:
    return text


def render(
    target: Document | Conversation, style: str, *, safe: bool = True
) -> str | list[dict[str, str]]:
    """``target`` in ``style``; ``safe=False`` leaves typed markers as they are (see above)."""
    if style not in RENDER_STYLES:
        raise ValueError(f"unknown render style {style!r}; use one of: {', '.join(RENDER_STYLES)}")
    if isinstance(target, Document):
        return render_document(target, style, safe=safe)
    return render_conversation(target, style, safe=safe)


def rules(document: Document) -> list[str]:
    """The text of each hard span, stripped, in order."""
    found = [document.span_text(s).strip() for s in document.spans if s.level is Level.HARD]
    return [r for r in found if r]


def _rule_list(header: str, items: list[str]) -> str:
    return header + "\n" + "\n".join(f"- {item}" for item in items)


def _inline(document: Document, style: str, safe: bool = True) -> str:
    """xml/caps/plain: rewrite each span in place; ``system`` removes hard spans (and the space
    the removal would leave doubled: "a <rule>r</rule> b" → "a b", not "a  b"). Text outside
    hard and high spans is defused (no reserved marker survives in it)."""
    quote = defuse if safe else _verbatim
    text = document.text
    out: list[str] = []
    pos = 0
    cut = False  # the last span was removed
    for span in document.spans:
        between = quote(text[pos : span.start])
        out.append(_after_cut(out, between) if cut else between)
        piece = _inline_span(text, span, style, quote)
        cut = piece == "" and span.start != span.end
        out.append(piece)
        pos = span.end
    rest = quote(text[pos:])
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


def _inline_span(text: str, span: Span, style: str, quote: Callable[[str], str]) -> str:
    body = text[span.start : span.end]
    if style == "xml" and span.level is Level.HARD:
        return f"<rule>{body}</rule>"
    if style == "xml" and span.level is Level.HIGH:
        return f"<important>{body}</important>"
    if style == "caps" and span.level is Level.HARD:
        lead = len(body) - len(body.lstrip())
        return f"{body[:lead]}IMPORTANT: {body[lead:]}"
    if style == "system" and span.level is Level.HARD:
        return ""
    if span.level not in (Level.HARD, Level.HIGH):
        return quote(body)  # normal and low text is no rule either
    return body


def render_document(document: Document, style: str, *, safe: bool = True) -> str:
    found = rules(document)
    if style == "echo":
        body = _inline(document, "plain", safe)
        return body if not found else f"{body.rstrip()}\n\n{_rule_list(ECHO_HEADER, found)}"
    if style == "system":
        if not found:
            return _inline(document, "plain", safe)
        rest = _inline(document, "system", safe).strip()
        return f"{_rule_list(RULES_HEADER, found)}\n\n{rest}"
    return _inline(document, style, safe)


def render_conversation(
    conversation: Conversation, style: str, *, safe: bool = True
) -> list[dict[str, str]]:
    inline = "plain" if style == "echo" else style
    messages = [
        {"role": m.role, "content": _inline(m.document, inline, safe)}
        for m in conversation.messages
    ]
    found = [r for m in conversation.messages for r in rules(m.document)]
    if not found or style in ("plain", "xml", "caps"):
        return messages
    if style == "echo":
        last = messages[-1]
        last["content"] = f"{last['content'].rstrip()}\n\n{_rule_list(ECHO_HEADER, found)}"
        return messages
    # system: the rules leave their messages and join the first system message (or a new one).
    block = _rule_list(RULES_HEADER, found)
    system = next((m for m in messages if m["role"] == "system"), None)
    if system is None:
        return [{"role": "system", "content": block}, *messages]
    system["content"] = f"{system['content'].rstrip()}\n\n{block}".lstrip()
    return messages
