"""HTML rich text: ``<strong>``, ``<b>``, ``<mark>`` (high), ``<small>`` (low),
``<span data-importance="…">`` (any level), plus the importance tags, read with ``html.parser``.

The clean text is the text content: every tag, comment and declaration is removed, character
references are decoded, ``<script>``/``<style>`` contents are dropped, and ``<br>`` and the end
of a block element (``</p>``, ``</div>``, ``</li>``, …) become a line break unless one follows
already. Whitespace is kept as written. Only elements that carry importance are checked for
nesting; HTML's optional end tags (``<p>``, ``<li>``) are not faults. Inside ``<code>`` and
``<pre>`` no element sets a level: code is literal.
"""

from __future__ import annotations

import html
from html.parser import HTMLParser

from ._context import ParseContext
from ._tags import HTML_TAGS, IMPORTANCE_TAGS, TagStack, level_of
from .document import Level, Source

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


def parse_html(ctx: ParseContext) -> None:
    parser = _Parser(ctx)
    parser.feed(ctx.text)
    parser.close()
    parser.stack.finish(len(ctx.text))


class _Parser(HTMLParser):
    def __init__(self, ctx: ParseContext) -> None:
        super().__init__(convert_charrefs=False)
        self.ctx = ctx
        self.stack = TagStack(ctx)
        self.line_starts = [0]
        text = ctx.text
        pos = text.find("\n")
        while pos >= 0:
            self.line_starts.append(pos + 1)
            pos = text.find("\n", pos + 1)
        self.raw_depth = 0
        self.code_depth = 0

    def _offset(self) -> int:
        line, column = self.getpos()
        return self.line_starts[line - 1] + column

    def _tag_end(self, start: int) -> int:
        end = self.ctx.text.find(">", start)
        return len(self.ctx.text) if end < 0 else end + 1

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        start = self._offset()
        raw = self.get_starttag_text() or ""
        end = start + len(raw)
        self.ctx.remove(start, end, "\n" if tag == "br" else "")
        if tag in _RAW_TEXT:
            self.raw_depth += 1
        if tag in _CODE:
            self.code_depth += 1
        rule_source = _VOCABULARY.get(tag)
        if rule_source is None:
            return
        rule, source = rule_source
        attributes = {k.lower(): (v or "") for k, v in attrs}
        level, _ = level_of(self.ctx, tag, rule, attributes, start)
        self.stack.open(tag, None if self.code_depth else level, source, start, end)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        start = self._offset()
        raw = self.get_starttag_text() or ""
        self.ctx.remove(start, start + len(raw), "\n" if tag == "br" else "")

    def handle_endtag(self, tag: str) -> None:
        start = self._offset()
        end = self._tag_end(start)
        text = self.ctx.text
        newline = tag in _BLOCK and end < len(text) and text[end] != "\n"
        self.ctx.remove(start, end, "\n" if newline else "")
        if tag in _RAW_TEXT:
            self.raw_depth = max(0, self.raw_depth - 1)
        if tag in _CODE:
            self.code_depth = max(0, self.code_depth - 1)
        if tag in _VOCABULARY:
            self.stack.close(tag, start, end)

    def handle_data(self, data: str) -> None:
        if self.raw_depth:
            start = self._offset()
            self.ctx.remove(start, start + len(data))

    def handle_entityref(self, name: str) -> None:
        self._reference("&" + name)

    def handle_charref(self, name: str) -> None:
        self._reference("&#" + name)

    def _reference(self, head: str) -> None:
        start = self._offset()
        text = self.ctx.text
        end = start + len(head)
        if text.startswith(";", end):
            end += 1
        raw = text[start:end]
        self.ctx.remove(start, end, "" if self.raw_depth else html.unescape(raw))

    def handle_comment(self, data: str) -> None:
        start = self._offset()
        end = self.ctx.text.find("-->", start)
        self.ctx.remove(start, len(self.ctx.text) if end < 0 else end + 3)

    def handle_decl(self, decl: str) -> None:
        start = self._offset()
        self.ctx.remove(start, self._tag_end(start))

    def handle_pi(self, data: str) -> None:
        self.handle_decl(data)

    def unknown_decl(self, data: str) -> None:
        start = self._offset()
        end = self.ctx.text.find("]]>", start)
        self.ctx.remove(start, len(self.ctx.text) if end < 0 else end + 3)
