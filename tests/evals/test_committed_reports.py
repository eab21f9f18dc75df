"""Every committed study's summary is what its committed records give today.

The results page (docs/results.md) quotes these summaries; a change to the statistics (or a
records file re-exported without its report) would otherwise leave published numbers that no
command reproduces.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from salience.service.cli import main

ROOT = Path(__file__).resolve().parents[2]
STUDIES = {  # folder → the report's arguments before --records, as the results page gives them
    "distance": [],
    "measures": ["measures", "--headline", str(ROOT / "evals/data/headline-smollm2-135m.json")],
    "inject": ["inject"],
    # in progress: docs/eval/effective/study.sh commits its records and report as it goes
    "effective": [],
}
COMMITTED = sorted(s for s in STUDIES if (ROOT / "docs/eval" / s / "records.jsonl.gz").is_file())
IN_PROGRESS = {"effective"}


def test_every_committed_records_file_has_its_report_here() -> None:
    folders = {p.parent.name for p in (ROOT / "docs/eval").glob("*/records.jsonl.gz")}
    assert folders <= set(STUDIES)
    assert set(STUDIES) - folders <= IN_PROGRESS  # a finished study's records are committed


@pytest.mark.parametrize("study", COMMITTED)
def test_the_committed_summary_is_reproduced_from_the_committed_records(
    study: str, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = ROOT / "docs/eval" / study
    argv = ["eval", "report", *STUDIES[study], "--records", str(folder / "records.jsonl.gz")]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    committed = (folder / "summary.md").read_text(encoding="utf-8")
    # --out adds the links to the plots at the end; the rest is the printed report
    assert "\n## Plots\n" in committed
    assert printed == committed.split("\n## Plots\n", 1)[0]


def _paired_cells(summary: str) -> dict[tuple[str, str, str], str]:
    """(method, length, measure) → "diff [low, high] (p P)" from a summary's tables against
    `none`; greedy measures are named "greedy strict" and so on, as the results page names them."""
    cells: dict[tuple[str, str, str], str] = {}
    section = ""
    for line in summary.splitlines():
        if line.startswith("## "):
            section = line
        row = re.fullmatch(
            r"\| (\S+) \| (\d+) \| ([a-z_ ]+) \| \d+ \| (.+ \[.+\]) \| ([\d.]+) \|", line
        )
        if row and "Against `none`" in section:
            method, length, measure, estimate, p = row.groups()
            if not measure.startswith(("sampled", "margin")):
                measure = f"greedy {measure}"
            cells[(method, length, measure)] = f"{estimate} (p {p})"
    return cells


def test_eval_md_quotes_the_distance_study_as_its_report_gives_it() -> None:
    """Each cell of the results page's distance-study table is the report's figure for that cell."""
    cells = _paired_cells((ROOT / "docs/eval/distance/summary.md").read_text(encoding="utf-8"))
    eval_md = (ROOT / "docs/results.md").read_text(encoding="utf-8")
    section = eval_md.split("## A bias that depends on distance", 1)[1].split("\n## ", 1)[0]
    columns = ["sampled both", "greedy both", "greedy quality", "sampled strict", "margin"]
    header = "| method | length | " + " | ".join(columns) + " |"
    rows = section.split(header, 1)[1].split("\n\n", 1)[0].strip().splitlines()[1:]
    quoted = set()
    for row in rows:
        method, length, *values = row.strip("| ").split(" | ")
        for column, value in zip(columns, values, strict=True):
            assert value == cells[(method, length, column)], (method, length, column)
        quoted.add(method)
    assert quoted == {method for method, _, _ in cells}  # every method the file holds is quoted


def test_eval_md_quotes_the_position_split_as_the_report_gives_it() -> None:
    """The results page's "Distance or length?" table: each quality cell is the report's "By rule
    position" figure for that method, length and position."""
    summary = (ROOT / "docs/eval/distance/summary.md").read_text(encoding="utf-8")
    cells = {}
    for line in summary.split("## By rule position", 1)[1].split("\n## ", 1)[0].splitlines():
        row = re.fullmatch(
            r"\| (\S+) \| (\d+) \| (\w+) \| greedy quality \| \d+ \| (.+\]) \| .+", line
        )
        if row:
            method, length, position, estimate = row.groups()
            cells[(method, length, position)] = estimate
    eval_md = (ROOT / "docs/results.md").read_text(encoding="utf-8")
    section = eval_md.split("*Distance or length?*", 1)[1]
    header = "| method | greedy quality, length 0 (before / after) | 2,048, rule before |"
    rows = section.split(header, 1)[1].split("\n\n", 1)[0].strip().splitlines()[2:]
    assert len(rows) == 4
    for line in rows:
        method, at_zero, before, after = line.strip("| ").split(" | ")
        assert at_zero == f"{cells[(method, '0', 'before')]} / {cells[(method, '0', 'after')]}"
        assert before == cells[(method, "2048", "before")], method
        assert after == cells[(method, "2048", "after")], method
