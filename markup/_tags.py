"""Importance tags: ``<rule>``, ``<important>``, ``<background>``, ``<importance level=…>`` and kin.

The scanner looks only for the names it knows (case-insensitive); any other tag is ordinary text.
A known tag that is not well formed, a closing tag that does not match, and an opening tag that
never closes are faults: errors in strict mode, repaired with a warning otherwise. Tags inside
code (backtick spans and fenced blocks) are literal.

``TagStack`` is shared with the HTML parser, so both nest and repair the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ._code import CodeIndex, code_regions
from ._context import ParseContext
from .document import Level, Source
from .errors import (
    BadAttributeError,
    MalformedTagError,
    MismatchedTagError,
    UnclosedTagError,
    UnexpectedCloseTagError,
)

# name -> fixed level, or the attribute that carries the level
IMPORTANCE_TAGS: dict[str, Level | str] = {
    "rule": Level.HARD,
    "must": Level.HARD,
    "hard": Level.HARD,
    "important": Level.HIGH,
    "high": Level.HIGH,
    "background": Level.LOW,
    "context": Level.LOW,
    "low": Level.LOW,
    "aside": Level.LOW,
    "importance": "level",
}

# HTML rich text that carries importance. ``span`` without the attribute has no level but must
# still be tracked, so that its ``</span>`` closes it and not a span that does carry a level.
HTML_TAGS: dict[str, Level | str | None] = {
    "strong": Level.HIGH,
    "b": Level.HIGH,
    "mark": Level.HIGH,
    "small": Level.LOW,
    "span": "data-importance",
}

# A tag's attributes: a name holds no '<' (so that a tag without its '>' cannot swallow the
# tags after it), and the whole tag is at most MAX_TAG_CHARS long. Both keep the scan linear: a
# tail is matched over a bounded window, whatever the text holds.
MAX_TAG_CHARS = 2048
_ATTRIBUTE = re.compile(r"""([^\s"'>/=<]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+)))?""")
_OPEN_TAIL = re.compile(
    r"""((?:\s+[^\s"'>/=<]+(?:\s*=\s*(?:"[^"]*"|'[^']*'|[^\s"'=<>`]+))?)*)\s*(/?)>"""
)
_CLOSE_TAIL = re.compile(r"\s*>")


def parse_attributes(raw: str) -> dict[str, str]:
    """Attributes of a tag, names lower-cased; a bare attribute has the value ``""``."""
    attrs: dict[str, str] = {}
    for m in _ATTRIBUTE.finditer(raw):
        value = next((g for g in m.groups()[1:] if g is not None), "")
        attrs.setdefault(m.group(1).lower(), value)
    return attrs


@dataclass(slots=True)
class _Open:
    name: str
    level: Level | None
    source: Source
    start: int  # where the opening tag starts
    end: int  # where it ends: the content starts here
    via: str | None = None  # rich text: what made its level (markup._styles)
    signals: frozenset[str] = frozenset()  # rich text: its signals, inherited ones included
    css: frozenset[str] = frozenset()  # those of them that came from inline CSS
    causes: tuple[tuple[str, str], ...] = ()  # (signal, what set it): at most one per signal


class TagStack:
    """Open elements, in order; closes them, repairing or failing on faults."""

    def __init__(self, ctx: ParseContext) -> None:
        self.ctx = ctx
        self.stack: list[_Open] = []
        # How many elements of each name are open: a closing tag with none open is known to be
        # stray without a walk down the stack (which made stray closers quadratic).
        self.open_by_name: dict[str, int] = {}

    def open(
        self,
        name: str,
        level: Level | None,
        source: Source,
        start: int,
        end: int,
        via: str | None = None,
        signals: frozenset[str] = frozenset(),
        css: frozenset[str] = frozenset(),
        causes: tuple[tuple[str, str], ...] = (),
    ) -> None:
        self.ctx.element(start)
        self.stack.append(_Open(name, level, source, start, end, via, signals, css, causes))
        self.open_by_name[name] = self.open_by_name.get(name, 0) + 1

    def close(self, name: str, start: int, end: int) -> None:
        """Close the element ``name`` with the closing tag at ``[start, end)``.

        Linear over a whole text: the walk down the stack only passes elements that this
        closing tag closes (each element is closed once), and a name with nothing open is
        refused at once.
        """
        stack = self.stack
        if stack and stack[-1].name == name:  # the usual case: it closes the innermost element
            self.open_by_name[name] -= 1
            self._emit(stack.pop(), start)
            return
        ctx = self.ctx
        depth = -1
        if self.open_by_name.get(name, 0):
            depth = next(i for i in range(len(stack) - 1, -1, -1) if stack[i].name == name)
        if depth < 0:
            ctx.fault(
                UnexpectedCloseTagError,
                "unexpected-close-tag",
                f"closing tag </{name}> has no matching opening tag",
                start,
                repair="it was dropped",
                fix=f"remove it, or open <{name}> before it",
            )
            return
        for inner in reversed(self.stack[depth + 1 :]):
            ctx.fault(
                MismatchedTagError,
                "mismatched-tag",
                f"closing tag </{name}> while <{inner.name}> (opened at "
                f"{ctx.where(inner.start)}) is still open",
                start,
                repair=f"<{inner.name}> was closed here",
                fix=f"close <{inner.name}> first, with </{inner.name}>",
            )
            self._emit(inner, start)
        self._emit(stack[depth], start)
        for closed in stack[depth:]:
            self.open_by_name[closed.name] -= 1
        del stack[depth:]

    def finish(self, end: int) -> None:
        """Close whatever is still open at the end of the text."""
        ctx = self.ctx
        for left in reversed(self.stack):
            if ctx.listing():
                ctx.fault(
                    UnclosedTagError,
                    "unclosed-tag",
                    f"<{left.name}> is never closed",
                    left.start,
                    repair="it was closed at the end of the text",
                    fix=f"close it with </{left.name}>",
                )
            else:
                ctx.unlisted += 1
            self._emit(left, end)
        self.stack.clear()
        self.open_by_name.clear()

    def _emit(self, element: _Open, content_end: int) -> None:
        if element.level is not None:
            self.ctx.mark(
                element.end,
                content_end,
                element.level,
                element.source,
                element.via,
                element.signals,
                element.css,
            )


def level_of(
    ctx: ParseContext, name: str, rule: Level | str | None, attrs: dict[str, str], at: int
) -> tuple[Level | None, bool]:
    """``(level, ok)`` for an opening tag; reports a fault when the level attribute is bad."""
    if rule is None or isinstance(rule, Level):
        return rule, True
    value = attrs.get(rule)
    if value is None:
        if name == "span":  # a plain <span> carries no importance, and that is fine
            return None, True
        ctx.fault(
            BadAttributeError,
            "bad-attribute",
            f'<{name}> needs {rule}="hard|high|normal|low"',
            at,
            repair="the tag was ignored",
            fix=f'add {rule}="hard", or another level',
        )
        return None, False
    level = Level.parse(value)
    if level is None:
        ctx.fault(
            BadAttributeError,
            "bad-attribute",
            f'{rule}="{value}" on <{name}> is not a level (hard, high, normal, low)',
            at,
            repair="the tag was ignored",
            fix="use one of those levels",
        )
        return None, False
    return level, True


_VOCABULARIES: dict[bool, dict[str, tuple[Level | str | None, Source]]] = {
    False: {name: (rule, Source.TAG) for name, rule in IMPORTANCE_TAGS.items()},
    True: {
        **{name: (rule, Source.TAG) for name, rule in IMPORTANCE_TAGS.items()},
        **{name: (rule, Source.HTML) for name, rule in HTML_TAGS.items()},
    },
}


def scan_tags(ctx: ParseContext, *, with_html: bool) -> None:
    """Find importance tags (and, ``with_html``, HTML rich-text tags) outside code in ``ctx``."""
    text = ctx.text
    if "<" not in text:
        return
    vocabulary = _VOCABULARIES[with_html]
    candidate = _candidate_pattern(tuple(sorted(vocabulary)))
    regions = code_regions(text)
    code = CodeIndex(regions) if regions else None
    stack = TagStack(ctx)
    edits = ctx.edits
    # This loop runs once per tag in long prompts: it is kept flat on purpose. The pattern takes
    # the '>' of a tag without attributes (<rule>, </rule>) itself; only the others need a tail.
    open_element = stack.open
    close_element = stack.close
    for m in candidate.finditer(text):
        start = m.start()
        if code is not None and start in code:
            continue
        slash, name, bracket = m.groups()
        entry = vocabulary.get(name)
        if entry is None:
            name = name.lower()
            entry = vocabulary[name]
        rule, source = entry
        if bracket:
            end = m.end()
            edits.append((start, end, ""))
            if slash:
                close_element(name, start, end)
            else:
                # A tag with a bad level is still pushed (with no level), so that its closing
                # tag matches.
                level = (
                    rule
                    if rule is None or isinstance(rule, Level)
                    else level_of(ctx, name, rule, {}, start)[0]
                )
                open_element(name, level, source, start, end)
            continue
        tail = (_CLOSE_TAIL if slash else _OPEN_TAIL).match(text, m.end(), start + MAX_TAG_CHARS)
        if tail is None:
            ctx.fault(
                MalformedTagError,
                "malformed-tag",
                f"<{slash}{name} is not a well-formed tag (no closing '>' within "
                f"{MAX_TAG_CHARS} characters, or bad attribute quoting)",
                start,
                repair="it was kept as text",
                fix="end the tag with '>' and quote its attributes, or write &lt; for a "
                "literal '<'",
            )
            continue
        end = tail.end()
        edits.append((start, end, ""))
        if slash:
            close_element(name, start, end)
            continue
        raw_attributes, self_closing = tail.groups()
        if rule is None or isinstance(rule, Level):
            level = rule
        else:
            attrs = parse_attributes(raw_attributes) if raw_attributes else {}
            level, _ = level_of(ctx, name, rule, attrs, start)
        if self_closing:
            continue  # no content
        open_element(name, level, source, start, end)
    stack.finish(len(text))


_PATTERNS: dict[tuple[str, ...], re.Pattern[str]] = {}


def _candidate_pattern(names: tuple[str, ...]) -> re.Pattern[str]:
    pattern = _PATTERNS.get(names)
    if pattern is None:
        alternatives = "|".join(sorted(names, key=len, reverse=True))
        pattern = re.compile(rf"<(/?)({alternatives})(?:(>)|(?=[\s/]|$))", re.IGNORECASE)
        _PATTERNS[names] = pattern
    return pattern
