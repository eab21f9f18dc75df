"""An eval sample at the model's whole window (8,192 tokens) runs to the end in a real process,
and its peak memory leaves room for the default batch on a 24 GiB machine.

The run uses a small batch (2 rows) and the default dtype (float32 on the CPU: the widest
cache); the test adds what the default batch's other 14 rows would hold at this length (each
row's KV cache for the prompt and its answer) to the measured peak and requires the sum to stay
under 24 GiB. The peak is printed (``-s``) so a run records it.
"""

from __future__ import annotations

import os
from pathlib import Path

from salience.model.batch import cache_bytes
from salience.model.local import LocalModel
from tests.evals.runs import count, eval_run

LENGTH = 8192
NEW = 4
SMALL, DEFAULT_BATCH = 2, 16  # rows per pass here; the CLI's default --batch
MACHINE = 24 * 1024**3


def test_an_8k_sample_runs_and_leaves_room_for_the_default_batch(tmp_path: Path) -> None:
    db = tmp_path / "long.sqlite3"
    grid = ["--items", "1", "--lengths", str(LENGTH), "--kinds", "prose", "--positions",
            "before", "--methods", "none", "--max-new-tokens", str(NEW), "--batch", str(SMALL),
            "--threads", "2"]  # fmt: skip
    run = eval_run(db, grid)
    _, status, usage = os.wait4(run.pid, 0)  # this child's own peak, not the session's
    run.returncode = os.waitstatus_to_exitcode(status)
    _, err = run.communicate()
    assert run.returncode == 0, err
    assert count(db) == 1
    peak = usage.ru_maxrss * 1024  # KiB on Linux
    rest = (DEFAULT_BATCH - SMALL) * cache_bytes(LocalModel.load(), LENGTH + NEW)  # float32, as run
    print(f"\n8k sample, batch {SMALL}: peak RSS {peak / 1024**3:.2f} GiB; the default batch's "
          f"other {DEFAULT_BATCH - SMALL} rows add {rest / 1024**3:.2f} GiB")  # fmt: skip
    assert peak + rest < MACHINE
