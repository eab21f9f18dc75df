"""Running ``salience eval run`` as a real process, and reading what it recorded."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def eval_run(db: Path, grid: list[str], *extra: str) -> subprocess.Popen[str]:
    """The run named ``t`` of ``grid`` into ``db``, in its own process group (so that killing
    the group takes everything the run started, as a terminal or a job scheduler does)."""
    return subprocess.Popen(
        [sys.executable, "-m", "service.cli", "eval", "run", "--db", str(db), "--name", "t",
         "--quiet", *grid, *extra],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
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
