"""Running ``salience eval run`` as a real process, and reading what it recorded."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path
from typing import Any

from salience.evals.store import Store

ROOT = Path(__file__).resolve().parents[2]


def eval_run(db: Path, grid: list[str], *extra: str) -> subprocess.Popen[str]:
    """The run named ``t`` of ``grid`` into ``db``, in its own process group (so that killing
    the group takes everything the run started, as a terminal or a job scheduler does)."""
    return subprocess.Popen(
        [sys.executable, "-m", "salience", "eval", "run", "--db", str(db), "--name", "t",
         "--quiet", *grid, *extra],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )  # fmt: skip


def rows(db: Path) -> list[tuple[str, dict[str, Any]]]:
    """(key, result) per record of run ``t``, without the timing (which differs run to run)."""
    with closing(Store(db)) as store:
        return store.outcomes("t")


def count(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=5) as c:
            return int(c.execute("select count(*) from samples").fetchone()[0])
    except sqlite3.OperationalError:
        return 0
