"""RTF read into the HTML rich text salience parses: a reader of salience's own, a single pass
over the tokens (linear), groups nested at most ``MAX_DEPTH`` deep. ``\\b``, ``\\ul``, ``\\cf``
(colour table), ``\\highlight``, ``\\cb``, ``\\fs``, ``\\caps``, ``\\par``/``\\line``, ``\\'hh``
and ``\\uN`` escapes; destinations (font and style tables, pictures, ``{\\*…}``) are skipped.
(markup.documents dispatches here.)"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace

from .errors import DocumentError

MAX_DEPTH = 512  # RTF group nesting


def _check_runs(n: int, limit: int | None) -> None:
    if limit is not None and n > limit:
        raise DocumentError(
            f"the document has more than {limit} formatted runs and paragraphs (the limit)"
        )


_TOKEN = re.compile(
    r"\\([a-zA-Z]{1,32})(-?\d{1,10})? ?|\\'([0-9a-fA-F]{2})|\\(.)|([{}])|([^\\{}\r\n]+)|[\r\n]+",
    re.S,
)
_SKIP = frozenset(
    {"fonttbl", "colortbl", "stylesheet", "info", "pict", "object", "header", "footer",
     "headerl", "headerr", "footerl", "footerr", "footnote", "field", "fldinst", "themedata",
     "colorschememapping", "latentstyles", "datastore", "listtable", "listoverridetable",
     "rsidtbl", "generator", "xmlnstbl", "mmathPr", "pgdsctbl", "filetbl", "revtbl"}
)  # fmt: skip
_NO_HIGHLIGHT = frozenset({0, 8})  # \highlight0 is none, 8 is white; the others are colours


@dataclass
class _State:
    bold: bool = False
    underline: bool = False
    colour: str | None = None
    highlight: bool = False
    size: float | None = None  # points
    caps: bool = False
    skip: bool = False
    uc: int = 1  # characters to skip after \uN

    def css(self) -> str:
        out = []
        if self.bold:
            out.append("font-weight:bold")
        if self.underline:
            out.append("text-decoration:underline")
        if self.colour:
            out.append(f"color:{self.colour}")
        if self.highlight:
            out.append("background-color:yellow")
        if self.size is not None:
            out.append(f"font-size:{self.size:g}pt")
        if self.caps:
            out.append("text-transform:uppercase")
        return ";".join(out)


def rtf_to_html(data: bytes, max_runs: int | None = None) -> str:
    """The RTF body as HTML. Linear: one pass over the tokens."""
    text = data.decode("latin-1")  # RTF is 7-bit with escapes; latin-1 maps bytes 1:1
    if not text.startswith("{\\rtf"):
        raise DocumentError("not an RTF document (it must start with {\\rtf)")
    colours = _colour_table(text)
    stack: list[_State] = []
    state = _State()
    paragraphs: list[list[str]] = [[]]
    pending_skip = 0  # characters of \uN's fallback still to drop
    pieces: list[tuple[str, str]] = []  # (css, text) of the current paragraph

    def emit(chars: str) -> None:
        if not state.skip and chars:
            pieces.append((state.css(), chars))

    runs = 0

    def end_paragraph() -> None:
        nonlocal runs
        paragraphs[-1] = [_span(css, t) for css, t in _merge(pieces)]
        runs += len(paragraphs[-1])
        _check_runs(runs, max_runs)
        pieces.clear()
        paragraphs.append([])

    for m in _TOKEN.finditer(text):
        word, number, hexa, symbol, brace, plain = m.groups()
        if brace == "{":
            if len(stack) >= MAX_DEPTH:
                raise DocumentError(f"RTF groups nest more than {MAX_DEPTH} deep")
            stack.append(replace(state))
            continue
        if brace == "}":
            if not stack:
                break  # the end of the document's outer group
            state = stack.pop()
            continue
        if plain is not None:
            if pending_skip:
                cut = min(pending_skip, len(plain))
                plain, pending_skip = plain[cut:], pending_skip - cut
            emit(plain)
            continue
        if hexa is not None:
            if pending_skip:
                pending_skip -= 1
                continue
            emit(bytes([int(hexa, 16)]).decode("cp1252", errors="replace"))
            continue
        if symbol is not None:
            if symbol == "*":
                state.skip = True  # {\*\destination …}: not text
            elif symbol in "\\{}":
                emit(symbol)
            elif symbol == "~":
                emit("\u00a0")
            elif symbol in "\n\r":
                end_paragraph()
            continue
        if word is None:
            continue  # a bare line break in the source: not text
        value = int(number) if number is not None else None
        if word in _SKIP:
            state.skip = True
        elif word in ("par", "line", "sect", "page"):
            if not state.skip:
                end_paragraph()
        elif word == "tab":
            emit("\t")
        elif word == "b":
            state.bold = value != 0
        elif word == "ul":
            state.underline = value != 0
        elif word in ("ulnone", "ul0"):
            state.underline = False
        elif word == "cf":
            state.colour = colours.get(value or 0)
        elif word in ("highlight", "cb", "chcbpat"):
            state.highlight = value is not None and value > 0 and value not in _NO_HIGHLIGHT
        elif word == "fs":
            state.size = (value or 24) / 2
        elif word == "caps":
            state.caps = value != 0
        elif word == "plain":
            skip, uc = state.skip, state.uc
            state = _State(skip=skip, uc=uc)
        elif word == "uc":
            state.uc = max(0, value or 0)
        elif word == "u" and value is not None:
            emit(chr(value % 65536))
            pending_skip = state.uc
        elif word in ("emdash", "endash", "bullet", "lquote", "rquote", "ldblquote", "rdblquote"):
            emit({"emdash": "—", "endash": "–", "bullet": "•", "lquote": "‘", "rquote": "’",
                  "ldblquote": "“", "rdblquote": "”"}[word])  # fmt: skip
    end_paragraph()
    return "".join(f"<p>{''.join(p)}</p>" for p in paragraphs if p)


def _merge(pieces: list[tuple[str, str]]) -> Iterator[tuple[str, str]]:
    css: str | None = None
    buffer: list[str] = []
    for piece_css, chars in pieces:
        if piece_css != css and buffer:
            yield css or "", "".join(buffer)
            buffer = []
        css = piece_css
        buffer.append(chars)
    if buffer:
        yield css or "", "".join(buffer)


def _span(css: str, chars: str) -> str:
    escaped = html.escape(chars)
    return f'<span style="{css}">{escaped}</span>' if css else escaped


_COLOUR_TABLE = re.compile(r"\{\\colortbl\s*;?([^{}]*)\}")
_COLOUR = re.compile(r"\\red(\d+)\\green(\d+)\\blue(\d+)")


def _colour_table(text: str) -> dict[int, str]:
    """Colour numbers (1-based; 0 is the default) to CSS colours."""
    m = _COLOUR_TABLE.search(text, 0, 1 << 20)
    if m is None:
        return {}
    table: dict[int, str] = {}
    for i, entry in enumerate(m.group(1).split(";"), 1):
        c = _COLOUR.search(entry)
        if c is not None:
            r, g, b = (min(255, int(x)) for x in c.groups())
            table[i] = f"#{r:02x}{g:02x}{b:02x}"
    return table
