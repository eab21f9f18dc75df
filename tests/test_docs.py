"""The front door and the documentation say what the code does, and nothing a reader cannot open.

The site itself is built strictly (no broken link, no missing page, no missing anchor) by
``make docs-check``, a step of ``make test``; these tests hold the pages' claims to the code.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from salience import parse
from salience.model.methods import REGISTRY
from salience.service.cli import _leaves, build_parser

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted([ROOT / "README.md", ROOT / "BENCHMARKS.md", *(ROOT / "docs").rglob("*.md")])
# folders that exist only on the machine where something ran: a reader has none of them
MACHINE_PATH = re.compile(r"(?<![\w.~])/(?:work|tmp|home|root|opt|var/folders|Users)/")


def test_readme_is_a_front_door() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 200
    assert lines[0] == "# salience"
    first_paragraph = " ".join(lines[2:9])
    assert "salience makes a language model heed" in first_paragraph
    # the two set-up commands come first, as CI runs them
    block = lines[lines.index("```sh") + 1 : lines.index("```sh") + 3]
    assert [line.split()[:2] for line in block] == [["make", "serve"], ["make", "test"]]
    ci = (ROOT / ".ci/run").read_text(encoding="utf-8")
    assert "\nmake test\n" in ci


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_page_cites_a_path_on_some_machine(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    found = [
        f"{text.count(chr(10), 0, m.start()) + 1}: {text[m.start() : m.start() + 40]}"
        for m in MACHINE_PATH.finditer(text)
    ]
    assert found == []


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_reaches_a_file(page: Path) -> None:
    """The pages read on GitHub as on the site: a relative link reaches a committed file."""
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    missing = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:|#", target):
            continue
        path = (page.parent / target.split("#")[0]).resolve()
        if not path.exists():
            missing.append(target)
    assert missing == []


def _clean_text_table() -> list[tuple[str, str, list[tuple[str, str]]]]:
    page = (ROOT / "docs/markup.md").read_text(encoding="utf-8")
    section = page.split("## The clean text", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = re.fullmatch(r"\| (``?)(.+?)\1 \| (``?)(.+?)\3 \| (.+) \|", line)
        if not cells or cells[2] == "you write":
            continue
        written, clean = (
            c.replace("` / `", "\n").replace(" / ", "\n") for c in (cells[2], cells[4])
        )
        spans = [] if cells[5] == "—" else [
            (m[1], m[2]) for m in re.finditer(r"`([^`]+)` (hard|high|normal|low)", cells[5])
        ]  # fmt: skip
        rows.append((written, clean, spans))
    return rows


def test_the_clean_text_table_is_what_parse_gives() -> None:
    rows = _clean_text_table()
    assert len(rows) >= 10
    for written, clean, spans in rows:
        doc = parse(written, format="markdown")
        assert doc.text == clean, written
        assert [(doc.text[s.start : s.end], s.level.value) for s in doc.spans] == spans, written


def test_the_methods_table_lists_every_method() -> None:
    page = (ROOT / "docs/steering.md").read_text(encoding="utf-8")
    table = page.split("| method | what it does |", 1)[1].split("\n\n", 1)[0]
    listed = set(re.findall(r"`([a-z]+)`", "".join(r.split(" | ")[0] for r in table.splitlines())))
    assert listed >= set(REGISTRY)


def test_help_names_no_issue_numbers_and_shows_no_markup() -> None:
    parser = build_parser()
    texts = [parser.format_help(), *(leaf.format_help() for leaf in _leaves(parser))]
    texts += [entry.help for entry in REGISTRY.values()]
    for text in texts:
        assert not re.search(r"\bissues? \d", text), text
        assert "``" not in text, text
