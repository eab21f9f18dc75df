"""Ctrl-C on a real ``salience eval run`` with the default batch: every sample finished before
the interrupt is saved, the message says how many and the command that resumes, and the resumed
run records exactly what an uninterrupted one does."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.evals.runs import ROOT, count, rows

# 8 items × lengths 0 and 64 × 2 methods = 32 samples: with the default batch (16 rows per pass)
# two passes, so an interrupt after the first leaves the second undone
GRID = ["--items", "8", "--lengths", "0,64", "--methods", "none,share", "--max-new-tokens", "12"]


def start(db: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "salience", "eval", "run", "--db", str(db), "--name", "t",
         *GRID, *extra],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip


def test_ctrl_c_keeps_every_finished_sample_and_says_how_to_resume(tmp_path: Path) -> None:
    whole = tmp_path / "whole.sqlite3"
    done = start(whole)
    out, err = done.communicate(timeout=900)
    assert done.returncode == 0, err
    assert "32 new, 0 resumed, 32 in the grid" in out
    assert f"report it: salience eval report t --db {whole}" in out
    # progress from the start: the loading step, then a line per sample with its rate
    lines = err.splitlines()
    assert lines[0] == "loading the embedded model…"
    per_sample = [line for line in lines if re.search(r"\] \d+/32 \(0 resumed\)", line)]
    assert len(per_sample) == 32 and "1/32" in per_sample[0] and "32/32" in per_sample[-1]
    assert all("samples/min" in line for line in per_sample)

    stopped = tmp_path / "stopped.sqlite3"
    kept = tmp_path / "kept.jsonl"
    victim = start(stopped, "--quiet", "--jsonl", str(kept))
    deadline = time.monotonic() + 600
    while count(stopped) < 1:
        assert victim.poll() is None, victim.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(victim.pid, signal.SIGINT)  # Ctrl-C, as a terminal sends it
    out, err = victim.communicate(timeout=120)
    assert victim.returncode == 130, err
    saved = count(stopped)
    assert 1 <= saved < 32
    plural = "s" if saved != 1 else ""
    assert f"interrupted: {saved} new sample{plural} saved this time; {saved} of 32" in err
    assert len(kept.read_text().splitlines()) == saved  # --jsonl is written on Ctrl-C too
    resume = err.split("Resume with:\n", 1)[1].strip()
    assert resume.startswith("salience eval run --db ") and "--items 8" in resume

    again = start(stopped, "--quiet", "--jsonl", str(kept))
    out, err = again.communicate(timeout=900)
    assert again.returncode == 0, err
    assert f"{32 - saved} new, {saved} resumed" in out
    assert rows(stopped) == rows(whole)  # same keys, one each, same results


def test_a_complete_run_says_there_was_nothing_left(tmp_path: Path) -> None:
    db = tmp_path / "e.sqlite3"
    grid = ["--items", "1", "--lengths", "0", "--methods", "none", "--max-new-tokens", "4"]
    for expected in ("1 new, 0 resumed", "0 new, 1 resumed, 1 in the grid; nothing left to run"):
        proc = subprocess.run(
            [sys.executable, "-m", "salience", "eval", "run", "--db", str(db), *grid],
            cwd=ROOT, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert expected in proc.stdout
    assert "resuming: 1 of 1 samples already recorded" in proc.stderr
    assert "runner overhead" not in proc.stdout
