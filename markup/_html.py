"""HTML rich text: ``<strong>``, ``<b>``, ``<mark>`` (high), ``<small>`` (low),
``<span data-importance="…">`` (any level), plus the importance tags.

The clean text is the text content: every tag, comment and declaration is removed, character
references are decoded, ``<script>``/``<style>`` contents are dropped, and ``<br>`` and the end
of a block element (``</p>``, ``</div>``, ``</li>``, …) become a line break unless one follows
already. Whitespace is kept as written. Only elements that carry importance are checked for
nesting; HTML's optional end tags (``<p>``, ``<li>``) are not faults. Inside ``<code>`` and
``<pre>`` no element sets a level: code is literal.

The tokenizer is this module's own, a single left-to-right pass, so that its cost is linear in
the text whatever the text holds (``html.parser`` in the Pythons this runs on goes quadratic on
an unclosed ``<!--``, ``</`` or ``<a`` repeated, and reports only line and column). It follows
the HTML tokenizer where prompts need it:

- a tag is ``<`` + a letter, its name up to white space, ``/`` or ``>``, and ends at the first
  ``>`` outside a quoted value, within ``MAX_TAG_CHARS``; ``/>`` makes it self-closing;
- ``<!--`` … ``-->`` is a comment, ``<![CDATA[`` … ``]]>`` and ``<!…>``/``<?…>`` are removed;
- anything of the above that never ends (no ``>``, no ``-->``) is text, kept as written: a stray
  ``<`` never swallows the rest of a prompt; so is what follows a ``<script>``/``<style>``
  that never closes;
- ``&name;``, ``&#N;`` and ``&#xH;`` are decoded as ``html.unescape`` does (also without ``;``
  where HTML allows); an unknown name stays as written.
"""

from __future__ import annotations

import html
import re

from ._context import ParseContext
from ._styles import STYLE_TAGS, effect
from ._tags import HTML_TAGS, IMPORTANCE_TAGS, MAX_TAG_CHARS, TagStack, level_of, parse_attributes
from .document import Level, Source
from .errors import MismatchedTagError

_BLOCK = frozenset(
    {
        *("p", "div", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "table"),
        *("blockquote", "pre", "section", "article", "header", "footer", "nav", "aside"),
        *("dl", "dt", "dd", "figure", "figcaption"),
    }
)
_RAW_TEXT = frozenset({"script", "style"})
_CODE = frozenset({"code", "pre", "kbd", "samp"})
_VOCABULARY: dict[str, tuple[Level | str | None, Source]] = {
    **{name: (rule, Source.HTML) for name, rule in HTML_TAGS.items()},
    # <aside> is also an HTML block element; as an importance tag it marks background.
    **{name: (rule, Source.TAG) for name, rule in IMPORTANCE_TAGS.items()},
}

# Inline (phrasing) elements whose end tag HTML requires: in strict mode a closing tag that
# crosses one of them (<b><i></b></i>) is misnesting, reported where it happens; the elements
# that carry importance are checked for it by the tag stack already.
_INLINE = frozenset(
    {
        *("a", "abbr", "b", "bdi", "bdo", "cite", "code", "data", "del", "dfn", "em", "font"),
        *("i", "ins", "kbd", "mark", "q", "s", "samp", "small", "span", "strong", "sub", "sup"),
        *("time", "u", "var"),
    }
)


class _Nesting:
    """Open inline elements (strict mode), to find a closing tag that crosses one."""

    def __init__(self, ctx: ParseContext) -> None:
        self.ctx = ctx
        self.stack: list[tuple[str, int]] = []
        self.count: dict[str, int] = {}

    def open(self, tag: str, start: int) -> None:
        self.stack.append((tag, start))
        self.count[tag] = self.count.get(tag, 0) + 1

    def close(self, tag: str, start: int) -> None:
        stack = self.stack
        if not self.count.get(tag):
            return  # a stray end tag: nothing open to cross (the tag stack judges its own)
        while stack:
            name, opened = stack.pop()
            self.count[name] -= 1
            if name == tag:
                return
            if name not in _VOCABULARY or tag not in _VOCABULARY:  # both: the tag stack's
                self.ctx.fault(
                    MismatchedTagError,
                    "mismatched-tag",
                    f"closing tag </{tag}> while <{name}> (opened at "
                    f"{self.ctx.where(opened)}) is still open",
                    start,
                    repair=f"<{name}> was closed here",
                    fix=f"close <{name}> first, with </{name}>",
                )


_SPECIAL = re.compile(r"[<&]")
_TAG_NAME = re.compile(r"[a-zA-Z][^\t\n\f\r />]*")
_BARE_TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9]*)>")
# The rest of a tag after its name: anything but '>' and quotes, or a quoted run. The
# alternatives never overlap and the repeat is possessive (nothing to backtrack into), so a
# failed match costs one pass over its window.
_TAG_REST = re.compile(r"""(?:[^>"']++|"[^"]*+"|'[^']*+')*+>""")
_REFERENCE = re.compile(r"&(?:#[0-9]{1,10};?|#[xX][0-9a-fA-F]{1,8};?|[a-zA-Z][a-zA-Z0-9]{0,31};?)")


_STYLE_ATTRIBUTE = re.compile(r"\bstyle\s*=", re.IGNORECASE)


def _matching_close(text: str, tag: str, start: int) -> int:
    """Where the element whose content starts at ``start`` ends: past its closing tag, counting
    nested elements of the same name; the end of the text when it never closes. One pass."""
    pattern = re.compile(rf"<(/?){re.escape(tag)}(?=[\s/>])[^>]{{0,{MAX_TAG_CHARS}}}>", re.I)
    depth = 1
    for m in pattern.finditer(text, start):
        if m.group(1):
            depth -= 1
            if depth == 0:
                return m.end()
        elif not m.group().endswith("/>"):
            depth += 1
    return len(text)


class _Finder:
    """``text.find(needle, start)`` that stays linear over many calls: the last answer is
    remembered, so a search that starts before it (or after a failed one) costs nothing."""

    def __init__(self, text: str, needle: str) -> None:
        self.text = text
        self.needle = needle
        self.found = -2  # not searched yet

    def __call__(self, start: int) -> int:
        if self.found == -1 or self.found >= start:
            return self.found
        self.found = self.text.find(self.needle, start)
        return self.found


def parse_html(ctx: ParseContext) -> None:
    text = ctx.text
    n = len(text)
    stack = TagStack(ctx)
    remove = ctx.remove
    comment_end = _Finder(text, "-->")
    cdata_end = _Finder(text, "]]>")
    gt = _Finder(text, ">")
    raw_ends: dict[str, re.Pattern[str]] = {}
    nesting = _Nesting(ctx) if ctx.strict else None
    code_depth = 0
    pos = 0
    while True:
        m = _SPECIAL.search(text, pos)
        if m is None:
            break
        i = m.start()
        if text[i] == "&":
            ref = _REFERENCE.match(text, i)
            if ref is None:
                pos = i + 1
                continue
            raw = ref.group()
            decoded = html.unescape(raw)
            if decoded != raw:
                remove(i, ref.end(), decoded)
            pos = ref.end()
            continue
        nxt = text[i + 1 : i + 2]
        if nxt == "!":
            if text.startswith("<!--", i):
                end = comment_end(i + 4)
                stop = -1 if end < 0 else end + 3
            elif text.startswith("<![CDATA[", i):
                end = cdata_end(i + 9)
                stop = -1 if end < 0 else end + 3
            else:
                end = gt(i + 2)
                stop = -1 if end < 0 else end + 1
            if stop < 0:  # never ends: text
                pos = i + 1
                continue
            remove(i, stop)
            pos = stop
            continue
        if nxt == "?":
            end = gt(i + 2)
            if end < 0:
                pos = i + 1
                continue
            remove(i, end + 1)
            pos = end + 1
            continue
        bare = _BARE_TAG.match(text, i)
        if bare is not None:  # the common case, <b> or </b>: one match says it all
            closing = bare.group(1) == "/"
            tag = bare.group(2).lower()
            end = bare.end()
            name_end = end - 1
        else:
            closing = nxt == "/"
            name_match = _TAG_NAME.match(text, i + 2 if closing else i + 1)
            if name_match is None:  # "< b", "<1", "</>": text
                pos = i + 1
                continue
            name_end = name_match.end()
            close_at = gt(name_end)
            if close_at < 0 or close_at >= i + MAX_TAG_CHARS:  # no '>' within reach: text
                pos = i + 1
                continue
            rest = _TAG_REST.match(text, name_end, i + MAX_TAG_CHARS)
            if rest is None:  # a quote left open: text
                pos = i + 1
                continue
            end = rest.end()
            tag = name_match.group().lower()
        pos = end
        if closing:
            newline = tag in _BLOCK and end < n and text[end] != "\n"
            remove(i, end, "\n" if newline else "")
            if tag in _CODE and code_depth:
                code_depth -= 1
            if nesting is not None and tag in _INLINE:
                nesting.close(tag, i)
            if tag in _VOCABULARY or stack.open_by_name.get(tag):
                stack.close(tag, i, end)
            continue
        remove(i, end, "\n" if tag == "br" else "")
        attributes_raw = text[name_end : end - 1]
        if attributes_raw and attributes_raw.rstrip().endswith("/"):
            continue  # self-closing: no content, nothing to open
        if tag in _RAW_TEXT:
            # Raw text runs to the matching end tag and is dropped; with no end tag, the rest
            # of the text is kept as written, tags and all (nothing in it is parsed).
            pattern = raw_ends.get(tag)
            if pattern is None:
                pattern = raw_ends[tag] = re.compile(rf"</{tag}[\t\n\f\r />]", re.IGNORECASE)
            close = pattern.search(text, end)
            if close is None:
                pos = n
                break
            remove(end, close.start())
            pos = close.start()
            continue
        if nesting is not None and tag in _INLINE:
            nesting.open(tag, i)
        if tag in _CODE:
            code_depth += 1
        rule_source = _VOCABULARY.get(tag)
        styled = tag in STYLE_TAGS or _STYLE_ATTRIBUTE.search(attributes_raw) is not None
        if rule_source is None and not styled:
            continue
        attributes = parse_attributes(attributes_raw) if attributes_raw else {}
        found = effect(tag, attributes) if styled else None
        if found is not None and found.hidden:
            # display:none: the element and all it holds never reach the clean text
            hidden_end = _matching_close(text, tag, end)
            remove(end, hidden_end)
            pos = hidden_end
            continue
        parent = stack.stack[-1] if stack.stack else None
        signals = parent.signals if parent is not None else frozenset()
        css = parent.css if parent is not None else frozenset()
        # what set each signal (one entry per signal, so that deep nesting stays linear)
        causes = dict(parent.causes) if parent is not None else {}
        if found is not None:
            signals, css = found.apply(signals, css)
            for signal in found.remove:
                causes.pop(signal, None)
            for signal in found.add:
                causes[signal] = found.via
        level: Level | None = None
        source, via = Source.HTML, None
        if rule_source is not None and tag not in STYLE_TAGS:
            # an explicit importance (the importance tags, <small>, <span data-importance>)
            rule, source = rule_source
            if rule is None or isinstance(rule, Level):
                level = rule
            else:
                attributes = {k: html.unescape(v) for k, v in attributes.items()}
                level, _ = level_of(ctx, tag, rule, attributes, i)
        if level is None and found is not None:
            level = ctx.style_levels.level(signals)
            source = Source.STYLE if found.css else Source.HTML
            # what made the level: the inherited causes too, each named once
            named = dict.fromkeys(cause for signal, cause in causes.items() if signal in signals)
            via = " + ".join(named) or None
        stack.open(
            tag,
            None if code_depth else level,
            source,
            i,
            end,
            via,
            signals,
            css,
            tuple(causes.items()),
        )
    stack.finish(n)
