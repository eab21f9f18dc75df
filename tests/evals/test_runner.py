"""The runner on the shipped model: a run killed with SIGKILL resumes to exactly the records of an
uninterrupted run; the CLI reports it."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GRID = ["--items", "2", "--lengths", "0,64", "--methods", "none,uniform", "--max-new-tokens", "12",
        "--margin"]  # fmt: skip


def eval_run(db: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "service.cli", "eval", "run", "--db", str(db), "--name", "t",
         "--quiet", *GRID, *extra],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def rows(db: Path) -> list[tuple[str, dict[str, object]]]:
    """(key, result) per record, without the timing (which differs run to run)."""
    with sqlite3.connect(db) as c:
        found = c.execute("select key, result from samples where run = 't'").fetchall()
    out = []
    for key, result in sorted(found):
        data = json.loads(result)
        del data["seconds"]
        out.append((key, data))
    return out


def count(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=5) as c:
            return int(c.execute("select count(*) from samples").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def test_a_killed_run_resumes_with_nothing_lost_or_repeated(tmp_path: Path) -> None:
    whole = tmp_path / "whole.sqlite3"
    done = eval_run(whole)
    out, err = done.communicate(timeout=600)
    assert done.returncode == 0, err
    assert "8 new, 0 resumed" in out

    killed = tmp_path / "killed.sqlite3"
    victim = eval_run(killed)
    deadline = time.monotonic() + 300
    while count(killed) < 3:
        assert victim.poll() is None, victim.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(victim.pid, signal.SIGKILL)  # really killed, mid-run
    victim.wait(timeout=30)
    partial = count(killed)
    assert 3 <= partial < 8

    resumed = eval_run(killed)
    out, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err
    assert f"{8 - partial} new, {partial} resumed" in out
    assert rows(killed) == rows(whole)  # same keys, one each, same results

    report = subprocess.run(
        [sys.executable, "-m", "service.cli", "eval", "report", "t", "--db", str(killed),
         "--out", str(tmp_path / "report")],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert report.returncode == 0, report.stderr
    assert "| uniform | 64 | 2 |" in report.stdout and "Against `none`" in report.stdout
    assert (tmp_path / "report" / "both-vs-length.png").stat().st_size > 1000
    assert (tmp_path / "report" / "summary.md").read_text() == report.stdout
    assert all("margin" in r for _, r in rows(killed))
