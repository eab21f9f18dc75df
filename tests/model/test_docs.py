"""The package's own usage example runs as written."""

from __future__ import annotations

import contextlib
import io
import textwrap

from salience import model


def test_the_package_docstring_example_runs() -> None:
    doc = model.__doc__ or ""
    block = doc.split("\n\n", 1)[1].split("\n\n(")[0]  # the indented code, up to the note
    code = textwrap.dedent(block)
    assert "LocalModel.load()" in code and "lm.generate(" in code
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "salience/model/__init__.py", "exec"), {})
    assert out.getvalue().strip()
