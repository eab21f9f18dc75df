"""Text nobody here wrote, from this machine: sentences of the standard library's docstrings
and licence files, in a fixed order. The eval's prose distractors, PASTA's profiling prompts and
the benches all read it from here.

A package's submodules are attributes of it only once something has imported them (Ray, uvicorn
and the service import ``email.*``, ``logging.*``, ``asyncio.*``), so they are skipped: the text
must not depend on what else the process loaded (every eval sample key is built on it).
"""

from __future__ import annotations

import inspect
import pydoc
import sys
from functools import cache
from pathlib import Path

MODULES = ("collections", "json", "re", "argparse", "typing", "asyncio", "email", "logging",
           "pathlib", "itertools", "functools", "datetime", "string", "textwrap")  # fmt: skip
SKIP_CHARS = "<>*`_|{}"  # markup, code and tables read as something other than prose


def _keep(part: str) -> bool:
    return 30 < len(part) < 300 and not any(c in part for c in SKIP_CHARS)


@cache
def docstring_sentences() -> tuple[tuple[str, str], ...]:
    """(sentence, source) from the public names of ``MODULES``, in order."""
    out: list[tuple[str, str]] = []
    for name in MODULES:
        module = __import__(name)
        for attr in sorted(dir(module)):
            if attr.startswith("_") or inspect.ismodule(getattr(module, attr)):
                continue
            for part in pydoc.getdoc(getattr(module, attr)).replace("\n", " ").split(". "):
                part = " ".join(part.split())
                if _keep(part):
                    out.append((part + ".", f"python:{name}.{attr}"))
    return tuple(out)


@cache
def licence_sentences() -> tuple[tuple[str, str], ...]:
    """(sentence, source) from Python's licence and up to six of Debian's common licences."""
    licence = (
        Path(sys.base_prefix)
        / "lib"
        / f"python{sys.version_info.major}.{sys.version_info.minor}"
        / "LICENSE.txt"
    )
    out: list[tuple[str, str]] = []
    for path in [licence, *sorted(Path("/usr/share/common-licenses").glob("*"))[:6]]:
        if path.is_file():
            text = " ".join(path.read_text(encoding="utf-8", errors="replace").split())
            for part in text.split(". "):
                if _keep(part):
                    out.append((part + ".", f"file:{path}"))
    return tuple(out)
