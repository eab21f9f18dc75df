"""What a person sees while ``salience eval run`` goes: on a terminal (a pseudo-terminal here) the
progress line moves before the first sample is done (the model's prefill and decoding steps),
and the count advances while the run is still going."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

from tests.evals.runs import ROOT, count

# 8 items × lengths 0 and 64 × 2 methods = 32 samples: two passes of 16 rows (the default batch)
GRID = ["--items", "8", "--lengths", "0,64", "--methods", "none,share", "--max-new-tokens", "12"]


def test_progress_moves_on_a_terminal_before_and_between_results(tmp_path: Path) -> None:
    db = tmp_path / "p.sqlite3"
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "salience", "eval", "run", "--db", str(db), "--name", "t", *GRID],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=follower, text=True,
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    os.close(follower)
    seen = ""
    activity_with_nothing_recorded = False
    count_while_running: set[int] = set()
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(leader, 65536).decode("utf-8", "replace")
            except OSError:  # the child closed the terminal
                break
            seen += chunk
            if re.search(r"(prefill|decode) \d+/\d+", chunk) and count(db) == 0:
                activity_with_nothing_recorded = True
            if process.poll() is None:
                count_while_running |= {int(n) for n in re.findall(r"\] (\d+)/32 ", chunk)}
        elif process.poll() is not None:
            break
    out, _ = process.communicate(timeout=60)
    os.close(leader)
    assert process.returncode == 0, seen[-2000:]
    assert "32 new, 0 resumed" in out
    assert seen.startswith("loading the embedded model…")
    # the line moved while no sample was done yet: the model's steps, redrawn in place
    assert activity_with_nothing_recorded, seen[-2000:]
    assert "\r" in seen and "samples/min" in seen
    # the count advanced before the run ended: the first pass's samples, then the second's
    assert count_while_running and min(count_while_running) < 32, sorted(count_while_running)
