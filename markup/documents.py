"""Documents people write rules in: .docx and RTF, read into the HTML rich text salience parses.

A document's formatting becomes the inline CSS and tags that ``markup._styles`` reads, so a
bold and underlined rule in Word is ``hard`` exactly as it would be pasted from the clipboard,
and every span names what made it. The clean text is the document's text, one paragraph per
line; span offsets are into it (a document has no character offsets of its own to keep).

- **.docx** with the standard library: ``zipfile`` and a streaming read of
  ``word/document.xml`` (expat, which resolves no external entity and bounds entity
  expansion; python-docx was tried first and cost ~400 µs a run, 18 s for a hostile MiB).
  Runs: bold, underline, colour, highlight, size, all caps; paragraph styles named
  ``Heading …`` count as headings, and a paragraph style named ``Rule`` (or
  ``Must``/``Important``) marks its paragraph as the matching importance tag.
  The archive is checked before it is opened: at most ``MAX_PARTS`` parts and
  ``MAX_UNPACKED`` bytes unpacked, and no part compressed more than ``MAX_RATIO`` times (zip
  bombs are refused with the reason); paragraphs and runs count toward the caller's limit.
- **RTF** with a reader of salience's own (a single pass, linear; groups nest at most
  ``MAX_DEPTH`` deep): ``\\b``, ``\\ul``, ``\\cf`` (colour table), ``\\highlight``,
  ``\\cb``, ``\\fs``, ``\\caps``, ``\\par``/``\\line``, ``\\'hh`` and ``\\uN`` escapes;
  destinations (font and style tables, pictures, ``{\\*…}``) are skipped.
"""

from __future__ import annotations

import html
import io
import re
import zipfile
from dataclasses import replace
from xml.etree import ElementTree

from ._rtf import MAX_DEPTH as MAX_DEPTH
from ._rtf import _check_runs, rtf_to_html
from .document import Document
from .errors import DocumentError
from .parsing import parse

__all__ = [
    "DocumentError",
    "document_format",
    "document_html",
    "docx_to_html",
    "may_be_document",
    "parse_document",
    "rtf_to_html",
]

MAX_PARTS = 2_000
MAX_UNPACKED = 32 << 20  # bytes, all parts together
MAX_RATIO = 200  # uncompressed / compressed, per part


_RTF_MAGIC = b"{\\rtf"
_ZIP_MAGIC = b"PK\x03\x04"
MAGIC_BYTES = 8  # enough of a file's start for ``may_be_document``


def may_be_document(head: bytes) -> bool:
    """Whether a file starting with ``head`` may be a document (RTF, or a zip that may be a
    .docx): the rest of it is worth reading as bytes."""
    return head.startswith((_RTF_MAGIC, _ZIP_MAGIC))


def document_format(data: bytes, name: str = "") -> str | None:
    """``"docx"``, ``"rtf"``, or None for anything else (read as text)."""
    if data.startswith(_RTF_MAGIC):
        return "rtf"
    if data.startswith(_ZIP_MAGIC) and (name.lower().endswith(".docx") or _has_word_part(data)):
        return "docx"
    return None


def document_html(data: bytes, name: str = "", max_runs: int | None = None) -> str | None:
    """The HTML of a .docx or RTF document, or None when ``data`` is neither. ``max_runs``
    bounds the formatted runs read (each becomes an element of the HTML)."""
    kind = document_format(data, name)
    if kind == "docx":
        return docx_to_html(data, max_runs)
    if kind == "rtf":
        return rtf_to_html(data, max_runs)
    suffix = name.lower().rpartition(".")[2] if "." in name else ""
    if suffix in ("docx", "rtf"):  # named as a document, and not one: no silent read as text
        what = "a zip archive holding a Word document" if suffix == "docx" else "RTF ({\\rtf)"
        raise DocumentError(f"{name} is named .{suffix} but is not {what}")
    return None


def parse_document(data: bytes, name: str = "", **options: object) -> Document:
    """The ``Document`` of a .docx or RTF file (``options`` go to ``markup.parse``)."""
    limit = options.get("max_elements")
    source = document_html(data, name, limit if isinstance(limit, int) else None)
    if source is None:
        raise DocumentError(f"{name or 'the input'} is neither a .docx nor an RTF document")
    document = parse(source, "html", **options)  # type: ignore[arg-type]
    return replace(document, warnings=())  # offsets of repairs would point into our HTML


# --- .docx -------------------------------------------------------------------------------


def _has_word_part(data: bytes) -> bool:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return "word/document.xml" in archive.namelist()
    except zipfile.BadZipFile:
        return False


def _check_archive(data: bytes) -> None:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as error:
        raise DocumentError(f"not a readable .docx (a damaged zip archive: {error})") from None
    with archive:
        parts = archive.infolist()
        if len(parts) > MAX_PARTS:
            raise DocumentError(f"the .docx has {len(parts)} parts; the limit is {MAX_PARTS}")
        total = 0
        for part in parts:
            total += part.file_size
            if part.compress_size and part.file_size / part.compress_size > MAX_RATIO:
                raise DocumentError(
                    f"part {part.filename} unpacks {part.file_size // part.compress_size}× its "
                    f"size (more than {MAX_RATIO}×): refused as a zip bomb"
                )
        if total > MAX_UNPACKED:
            raise DocumentError(f"the .docx unpacks to {total} bytes; the limit is {MAX_UNPACKED}")
        if "word/document.xml" not in archive.namelist():
            raise DocumentError("not a .docx: the archive has no word/document.xml")


_RULE_STYLES = {"rule": "rule", "must": "must", "important": "important"}
_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_OFF = ("0", "false", "off", "none")


def docx_to_html(data: bytes, max_runs: int | None = None) -> str:
    """The document body as HTML: a ``<p>`` per paragraph, a styled ``<span>`` per run.

    WordprocessingML is read with the standard library's streaming XML parser (expat: no
    external entities, bounded entity expansion), a paragraph at a time; a run costs a few
    microseconds."""
    _check_archive(data)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        styles = _style_names(archive)
        out: list[str] = []
        runs_read = 0
        try:
            with archive.open("word/document.xml") as stream:
                for _event, element in ElementTree.iterparse(stream, events=("end",)):
                    if element.tag != f"{_W}p":
                        continue
                    runs = []
                    for run in element.iter(f"{_W}r"):
                        text = _run_text(run)
                        if not text:
                            continue
                        runs_read += 1
                        _check_runs(runs_read, max_runs)
                        css = _run_css(run.find(f"{_W}rPr"))
                        escaped = html.escape(text).replace("\n", "<br>")
                        runs.append(f'<span style="{css}">{escaped}</span>' if css else escaped)
                    runs_read += 1  # a paragraph costs as much as a run
                    _check_runs(runs_read, max_runs)
                    out.append(_paragraph(element, "".join(runs), styles))
                    element.clear()
        except ElementTree.ParseError as error:
            raise DocumentError(f"not a readable .docx (word/document.xml: {error})") from None
    return "".join(out)


def _style_names(archive: zipfile.ZipFile) -> dict[str, str]:
    if "word/styles.xml" not in archive.namelist():
        return {}
    try:
        root = ElementTree.fromstring(archive.read("word/styles.xml"))
    except ElementTree.ParseError:
        return {}
    names = {}
    for style in root.iter(f"{_W}style"):
        name = style.find(f"{_W}name")
        sid = style.get(f"{_W}styleId")
        if sid is not None and name is not None:
            names[sid] = (name.get(f"{_W}val") or "").strip().lower()
    return names


def _run_text(run: ElementTree.Element) -> str:
    pieces = []
    for child in run:
        if child.tag == f"{_W}t":
            pieces.append(child.text or "")
        elif child.tag == f"{_W}tab":
            pieces.append("\t")
        elif child.tag in (f"{_W}br", f"{_W}cr"):
            pieces.append("\n")
    return "".join(pieces)


def _run_css(props: ElementTree.Element | None) -> str:
    if props is None:
        return ""
    css = []

    def on(tag: str) -> ElementTree.Element | None:
        found = props.find(f"{_W}{tag}")
        if found is None or found.get(f"{_W}val", "true").lower() in _OFF:
            return None
        return found

    if on("b") is not None:
        css.append("font-weight:bold")
    if on("u") is not None:
        css.append("text-decoration:underline")
    colour = props.find(f"{_W}color")
    value = colour.get(f"{_W}val", "") if colour is not None else ""
    if re.fullmatch(r"[0-9A-Fa-f]{6}", value):
        css.append(f"color:#{value}")
    if on("highlight") is not None:
        css.append("background-color:yellow")
    size = props.find(f"{_W}sz")
    half_points = size.get(f"{_W}val", "") if size is not None else ""
    if half_points.isdigit():
        css.append(f"font-size:{int(half_points) / 2:g}pt")
    if on("caps") is not None:
        css.append("text-transform:uppercase")
    return ";".join(css)


def _paragraph(element: ElementTree.Element, body: str, styles: dict[str, str]) -> str:
    style = element.find(f"{_W}pPr/{_W}pStyle")
    sid = style.get(f"{_W}val", "") if style is not None else ""
    name = styles.get(sid, sid.lower())
    if name.startswith("heading"):
        return f"<h2>{body}</h2>"
    if name in _RULE_STYLES:
        tag = _RULE_STYLES[name]
        return f"<p><{tag}>{body}</{tag}></p>"
    return f"<p>{body}</p>"


# --- RTF ---------------------------------------------------------------------------------
