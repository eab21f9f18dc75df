"""Documents the tests build with python-docx (a producer independent of salience's reader)."""

from __future__ import annotations

import io

import docx

RULE = "Never ask for a PIN."


def rules_docx() -> bytes:
    """A .docx whose one rule is bold and underlined: ``hard`` once read."""
    document = docx.Document()
    paragraph = document.add_paragraph("You help customers of a bank. ")
    run = paragraph.add_run(RULE)
    run.bold = run.underline = True
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()
