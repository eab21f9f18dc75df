"""What ``pip install salience`` puts on a machine: one import name, its data, its public names.

The wheel is built from this checkout with setuptools (no network, no isolation), and read as pip
would install it: its RECORD lists every file it installs.
"""

from __future__ import annotations

import ast
import csv
import io
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import salience

ROOT = Path(__file__).resolve().parents[1]
PARTS = ("markup", "model", "evals", "service")


def checkout_copy(into: Path) -> Path:
    """The files a clone holds (tracked, or new and not ignored), links kept as links: what is
    built is what a fresh clone builds, and setuptools' build folders stay out of the checkout."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, check=True, capture_output=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for name in filter(None, listed):
        source, target = ROOT / name, into / name
        if not source.exists() and not source.is_symlink():
            continue  # deleted in the work tree, not yet in the index
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target, follow_symlinks=False)
    return into


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    tree = checkout_copy(tmp_path_factory.mktemp("checkout"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
         "--wheel-dir", str(out), str(tree)],
        check=True, cwd=tree, timeout=300,
        env={**os.environ, "PIP_NO_INDEX": "1"},
    )  # fmt: skip
    (found,) = out.glob("salience-*.whl")
    return zipfile.ZipFile(found)


def installed_files(wheel: zipfile.ZipFile) -> list[str]:
    (record,) = [n for n in wheel.namelist() if n.endswith(".dist-info/RECORD")]
    rows = csv.reader(io.StringIO(wheel.read(record).decode()))
    return [row[0] for row in rows if row]


def test_the_wheel_installs_one_top_level_import_name(wheel: zipfile.ZipFile) -> None:
    files = installed_files(wheel)
    tops = {f.split("/")[0] for f in files if not f.split("/")[0].endswith(".dist-info")}
    assert tops == {"salience"}
    (top_level,) = [n for n in wheel.namelist() if n.endswith(".dist-info/top_level.txt")]
    assert wheel.read(top_level).decode().split() == ["salience"]
    # each part is inside it, as a package, with its own modules
    for part in PARTS:
        assert f"salience/{part}/__init__.py" in files, part
    assert "salience/service/proxy/pipeline.py" in files
    assert not any(f.startswith(("tests/", "bench/")) for f in files)


def test_the_wheel_carries_the_data_its_code_reads(wheel: zipfile.ZipFile) -> None:
    files = set(installed_files(wheel))
    for path in (
        "salience/py.typed",
        "salience/service/static/index.html",
        "salience/model/data/learned-smollm2-135m.json",
        "salience/markup/data/rule-detector.json",
        "salience/evals/data/system-prompts.jsonl",
    ):
        assert path in files, path
    # every data file in the checkout's parts, and nothing else under their data folders
    for part in ("markup", "model", "evals"):
        for data in (ROOT / part / "data").iterdir():
            assert f"salience/{part}/data/{data.name}" in files, data


def test_the_public_names_import_from_salience_alone() -> None:
    """A fresh interpreter: ``import salience`` loads no part; each public name loads its own."""
    code = (
        "import sys, salience\n"
        "assert not [m for m in sys.modules if m.startswith('salience.')], 'eager'\n"
        "from salience import parse, parse_messages, tokenize, render\n"
        "from salience import SalienceTransport, AsyncSalienceTransport, SalienceHook\n"
        "from salience import LocalModel, SalienceError, MarkupError, Document, Span, Level\n"
        "doc = parse('Answer. <rule>Reply in JSON.</rule>')\n"
        "print(doc.text, [(s.start, s.end) for s in doc.spans], render(doc, 'caps'))\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'markup', 'model', 'evals',"
        " 'service'}))\n"
    )
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd="/",
        timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    first, generic = out.stdout.strip().splitlines()[-2:]
    assert first.startswith("Answer. Reply in JSON. [(8, 22)]")
    assert first.endswith("Answer. IMPORTANT: Reply in JSON.")  # caps
    assert generic == "[]"  # no generic top-level name was ever imported


def test_every_public_name_is_documented_and_real() -> None:
    doc = salience.__doc__ or ""
    for name in salience.__all__:
        if name == "__version__":
            continue
        assert f"``{name}``" in doc, f"{name} is not described in salience's docstring"
        assert getattr(salience, name) is not None
    with pytest.raises(AttributeError):
        salience.no_such_name  # noqa: B018


def test_no_module_imports_a_generic_top_level_name() -> None:
    """Every import inside the package and its tests is ``salience.…`` or relative."""
    offenders = []
    for folder in (*PARTS, "tests", "bench", "salience"):
        for path in (ROOT / folder).rglob("*.py"):
            tree = ast.parse(path.read_text(), str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                offenders += [
                    f"{path.relative_to(ROOT)}:{node.lineno} {n}"
                    for n in names
                    if n.split(".")[0] in PARTS
                ]
    assert offenders == []
