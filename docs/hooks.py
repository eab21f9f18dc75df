"""MkDocs hooks: pages whose one source lives outside ``docs/``.

The README is the site's home page and ``BENCHMARKS.md`` (where every bench records its figures,
with their commands) its Benchmarks page. Both stay at the repository's root, where a reader of
the repository finds them, and are turned into pages at build time so that the two can never
differ; links that point from the root into ``docs/`` are rewritten to point from the site's
root.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[1]
GENERATED = {"index.md": ROOT / "README.md", "benchmarks.md": ROOT / "BENCHMARKS.md"}
_LINK = re.compile(r"\]\((docs/|BENCHMARKS\.md)")


def _from_root(text: str) -> str:
    """Links written from the repository's root, as links from the site's root."""
    return _LINK.sub(lambda m: "](" + ("" if m[1] == "docs/" else "benchmarks.md"), text)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    """A page in ``docs/`` links ``../BENCHMARKS.md`` (which reads on GitHub); on the site that
    file is the generated Benchmarks page."""
    depth = page.file.src_uri.count("/")
    return markdown.replace(
        "](" + "../" * (depth + 1) + "BENCHMARKS.md", "](" + "../" * depth + "benchmarks.md"
    )


def on_files(files: Files, config: Any) -> Files:
    for uri, source in GENERATED.items():
        content = _from_root(source.read_text(encoding="utf-8"))
        files.append(File.generated(config, uri, content=content))
    return files
