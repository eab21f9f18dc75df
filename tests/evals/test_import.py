"""``salience eval import``: committed records become a database run again, claimed with the
settings its ``eval run`` command claims, so that a study resumes on a machine that has only
the committed file, and a report or an export of it gives what the file gives."""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

import pytest

from salience.evals.runner import FACTORS, RecordsError, claimed_from
from salience.evals.store import read_jsonl
from tests.evals.runs import ROOT, count, eval_run, rows

COMMITTED = ROOT / "docs/eval/distance/records.jsonl.gz"
GRID = ["--items", "2", "--lengths", "0,48", "--methods", "none,uniform", "--positions",
        "before,after", "--design", "rotated", "--max-new-tokens", "6", "--samples", "2",
        "--margin", "--batch", "4"]  # fmt: skip


def salience(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "salience", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_the_committed_study_round_trips(tmp_path: Path) -> None:
    """import → report equals the committed summary; import → export is the committed file,
    line for line."""
    db = tmp_path / "study.sqlite3"
    done = salience("eval", "import", str(COMMITTED), "--db", str(db), "--name", "distance")
    assert done.returncode == 0, done.stderr
    assert "imported 2200 records into run 'distance'" in done.stderr
    report = salience("eval", "report", "distance", "--db", str(db))
    assert report.returncode == 0, report.stderr
    committed = (ROOT / "docs/eval/distance/summary.md").read_text(encoding="utf-8")
    title, body = report.stdout.split("\n", 1)
    assert title == "# Run distance"  # the committed summary names its file's run "records"
    assert body == committed.split("\n## Plots\n", 1)[0].split("\n", 1)[1]
    out = tmp_path / "again.jsonl.gz"
    exported = salience("eval", "export", "distance", "--db", str(db), "--out", str(out))
    assert exported.returncode == 0, exported.stderr
    # the same lines, byte for byte (the gzip header holds the file's own name)
    assert gzip.decompress(out.read_bytes()) == gzip.decompress(COMMITTED.read_bytes())
    # a second import adds nothing; another name with these records' settings is refused
    again = salience("eval", "import", str(COMMITTED), "--db", str(db), "--name", "distance")
    assert again.returncode == 0 and "imported 0 records" in again.stderr


def test_an_imported_run_resumes_under_its_own_command(tmp_path: Path) -> None:
    """A real run, exported, imported into a fresh database: the same `eval run` command finds
    every sample there and computes none (its settings claim matched), records unchanged."""
    first = tmp_path / "first.sqlite3"
    run = eval_run(first, GRID)
    out, err = run.communicate(timeout=600)
    assert run.returncode == 0, err
    total = count(first)
    assert total > 0 and f"{total} new, 0 resumed" in out
    records = tmp_path / "records.jsonl"
    assert (
        salience("eval", "export", "t", "--db", str(first), "--out", str(records)).returncode == 0
    )

    fresh = tmp_path / "fresh.sqlite3"
    imported = salience("eval", "import", str(records), "--db", str(fresh), "--name", "t")
    assert imported.returncode == 0, imported.stderr
    resumed = eval_run(fresh, GRID)
    out, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err
    assert f"0 new, {total} resumed" in out
    assert rows(fresh) == rows(first)
    # the same records under a grid with another setting are refused, naming the setting
    other = eval_run(fresh, [*GRID[:-2], "--batch", "4", "--seed", "1"])
    _, err = other.communicate(timeout=300)
    assert other.returncode != 0 and "seed was 0, now 1" in err


def test_records_of_two_runs_are_not_one_run() -> None:
    records = read_jsonl(COMMITTED)[:4]
    mixed = [records[0], {**records[1], "model": "another-model"}]
    with pytest.raises(RecordsError, match="model takes 2 values"):
        claimed_from(mixed)
    with pytest.raises(RecordsError, match="lacks"):
        claimed_from([{"key": "k"}])
    with pytest.raises(RecordsError):
        claimed_from([])


def test_factors_are_what_the_runner_writes() -> None:
    """The import splits a record at ``FACTORS``: every key a planned sample's factors hold is
    one of them, and no result key is."""
    from salience.evals.backends import Backend
    from salience.evals.grid import Grid
    from salience.evals.runner import plan

    class Text(Backend):  # a plan needs a backend's name, model, token count and method ids
        name, model, batched, context_window = "remote", "m", False, None

        def count(self, text: str) -> int:
            return len(text.split())

        def fingerprint(self, method: str) -> str:
            return method

    planned = plan(Grid(items=1, lengths=(0, 64)), Text())
    assert planned and set(planned[0].factors) <= set(FACTORS)
    record = read_jsonl(COMMITTED)[0]
    assert not {"strict", "response", "margin", "sampled"} & set(FACTORS)
    assert {k for k in record if k in FACTORS} >= {"item", "method", "length", "model"}


def test_a_method_run_later_merges_into_the_committed_file(tmp_path: Path) -> None:
    """A study grows its committed file one method at a time: ``eval export --merge`` adds the
    new method's records, and the file then reports as the database run holding both does; a
    run of other settings is refused."""
    db, file = tmp_path / "m.sqlite3", tmp_path / "records.jsonl.gz"
    tiny = ["--items", "2", "--lengths", "0", "--max-new-tokens", "4", "--quiet"]
    base = ["eval", "run", "--db", str(db), "--name", "s", *tiny]
    assert salience(*base, "--methods", "none").returncode == 0
    assert salience("eval", "export", "s", "--db", str(db), "--out", str(file)).returncode == 0
    assert salience(*base, "--methods", "none,xml").returncode == 0  # the run grows a method
    merged = salience("eval", "export", "s", "--db", str(db), "--out", str(file), "--merge")
    assert merged.returncode == 0, merged.stderr
    assert (
        "merged 2 new records" in merged.stderr and "(2 already there; 4 in all)" in merged.stderr
    )
    assert sorted(r["method"] for r in read_jsonl(file)) == ["none", "none", "xml", "xml"]
    from_db = salience("eval", "report", "s", "--db", str(db))
    from_file = salience("eval", "report", "s", "--records", str(file))
    assert from_db.returncode == 0 and from_db.stdout == from_file.stdout
    other = [
        "eval",
        "run",
        "--db",
        str(db),
        "--name",
        "o",
        *tiny,
        "--seed",
        "5",
        "--methods",
        "none",
    ]
    assert salience(*other).returncode == 0
    refused = salience("eval", "export", "o", "--db", str(db), "--out", str(file), "--merge")
    assert refused.returncode == 1
    assert "cannot merge run 'o'" in refused.stderr and "seed takes 2 values" in refused.stderr
    assert len(read_jsonl(file)) == 4  # untouched
