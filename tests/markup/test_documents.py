""".docx and RTF documents, built here with the libraries salience reads them with, and hostile
ones: damaged, zip bombs, groups nested without end."""

from __future__ import annotations

import io
import subprocess
import sys
import zipfile
from pathlib import Path

import docx
import pytest
from docx.enum.text import WD_COLOR_INDEX
from docx.shared import Pt, RGBColor

from salience.markup.documents import DocumentError, document_format, parse_document, rtf_to_html


def spans(data: bytes, name: str = "", **options: object) -> list[tuple[str, str, str | None]]:
    doc = parse_document(data, name, **options)
    return [(doc.text[s.start : s.end], s.level.value, s.via) for s in doc.spans]


def word_document() -> bytes:
    d = docx.Document()
    p = d.add_paragraph("You help the customers of a bank. ")
    rule = p.add_run("Never ask for a PIN.")
    rule.bold = True
    rule.underline = True
    p = d.add_paragraph("Keep answers short. ")
    p.add_run("Escalate fraud.").font.color.rgb = RGBColor(0xC0, 0x00, 0x00)
    p.add_run(" ")
    p.add_run("Log every call.").font.highlight_color = WD_COLOR_INDEX.YELLOW
    big = d.add_paragraph().add_run("Be polite.")
    big.font.size = Pt(20)
    d.add_paragraph("Quiet text in black.").runs[0].font.color.rgb = RGBColor(0, 0, 0)
    d.add_heading("Scope", level=1)
    buffer = io.BytesIO()
    d.save(buffer)
    return buffer.getvalue()


def test_a_docx_gives_the_spans_its_formatting_means() -> None:
    data = word_document()
    assert document_format(data, "rules.docx") == "docx"
    assert spans(data) == [
        ("Never ask for a PIN.", "hard", "font-weight:bold; text-decoration:underline"),
        ("Escalate fraud.", "high", "color:#c00000"),
        ("Log every call.", "high", "background-color:yellow"),
        ("Be polite.", "high", "font-size:20pt"),
        ("Scope", "high", "<h2>"),
    ]
    text = parse_document(data).text
    assert text.splitlines()[0] == "You help the customers of a bank. Never ask for a PIN."


def test_a_paragraph_style_named_rule_marks_its_paragraph() -> None:
    d = docx.Document()
    d.styles.add_style("Rule", 1)  # 1: a paragraph style
    d.add_paragraph("Background.")
    d.add_paragraph("Always answer in English.", style="Rule")
    buffer = io.BytesIO()
    d.save(buffer)
    assert spans(buffer.getvalue()) == [("Always answer in English.", "hard", None)]


RTF = (
    rb"{\rtf1\ansi\deff0{\fonttbl{\f0 Arial;}}{\colortbl;\red0\green0\blue0;\red192\green0\blue0;}"
    rb"{\*\generator Writer;}{\info{\title Not text}}\f0\fs24 You help customers. "
    rb"{\b\ul Never ask for a PIN.}\par Keep it short. {\cf2 Escalate fraud.} "
    rb"{\highlight7 Log calls.}\par caf\'e9 \u8364? {\pict\pngblip 89504e47}done.}"
)


def test_an_rtf_document_gives_its_spans_and_its_text() -> None:
    assert document_format(RTF) == "rtf"
    doc = parse_document(RTF)
    assert doc.text.splitlines() == [
        "You help customers. Never ask for a PIN.",
        "Keep it short. Escalate fraud. Log calls.",
        "café € done.",
    ]
    assert spans(RTF) == [
        ("Never ask for a PIN.", "hard", "font-weight:bold; text-decoration:underline"),
        ("Escalate fraud.", "high", "color:#c00000"),
        ("Log calls.", "high", "background-color:yellow"),
    ]


def _zip(parts: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in parts.items():
            archive.writestr(name, data)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"PK\x03\x04 not really a zip", "damaged zip"),
        (_zip({"word/document.xml": b"\0" * (8 << 20)}), "zip bomb"),
        (_zip({f"part{i}": b"x" for i in range(2100)} | {"word/document.xml": b""}), "parts"),
        (_zip({"word/document.xml": b"<not xml"}), "not a readable .docx"),
        (b"{\\rtf1 " + b"{" * 600 + b"x" + b"}" * 600 + b"}", "nest more than"),
        (b"plain text", "neither"),
    ],
)
def test_hostile_or_damaged_documents_are_refused_with_the_reason(data: bytes, reason: str) -> None:
    with pytest.raises(DocumentError, match=reason):
        parse_document(data, "x.docx" if data.startswith(b"PK") else "")


def test_formatted_runs_count_toward_the_element_limit() -> None:
    body = rb"{\b a}{\ul b}" * 50
    with pytest.raises(DocumentError, match="more than 40 formatted runs"):
        parse_document(b"{\\rtf1 " + body + b"}", max_elements=40)
    doc = parse_document(b"{\\rtf1 " + body + b"}", max_elements=100)  # within it: read
    assert len(doc.spans) == 100


def test_rtf_reading_is_one_pass_over_unterminated_input() -> None:
    assert rtf_to_html(b"{\\rtf1 " + b"\\b x\\b0 " * 10_000).count("<span") == 1  # never closed


def test_the_cli_annotates_a_docx_file(tmp_path: Path) -> None:
    path = tmp_path / "rules.docx"
    path.write_bytes(word_document())
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-m", "salience", "annotate", "--json", str(path)],
        cwd=root, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert '"level":"hard","source":"style"' in out.stdout.replace(" ", "")
    bad = tmp_path / "bad.docx"
    bad.write_bytes(b"PK\x03\x04 damaged")
    out = subprocess.run(
        [sys.executable, "-m", "salience", "annotate", str(bad)],
        cwd=root, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "damaged zip archive" in out.stderr
