"""The eval on Ray (evals.distributed), on a local Ray with 2 actors over the shipped model: the
same keys and results as one process, a killed run resumes with nothing lost or repeated, and an
actor that dies is replaced with its samples computed again."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import psutil
import pytest
import ray  # the [ray] extra: `make test` installs it

from tests.evals.runs import count, eval_run, rows

# the grid; one torch thread everywhere (the same arithmetic in the driver and the
# actors), --batch 2: one prompt per group, so 4 groups over 2 actors, 2 records a group
GRID = ["--items", "2", "--lengths", "0,128", "--methods", "none,uniform", "--max-new-tokens",
        "12", "--margin", "--batch", "2", "--threads", "1"]  # fmt: skip
RAY = ["--ray", "--workers", "2"]


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The single-process run the Ray runs must equal."""
    db = tmp_path_factory.mktemp("single") / "single.sqlite3"
    done = eval_run(db, GRID)
    out, err = done.communicate(timeout=600)
    assert done.returncode == 0, err
    assert "8 new, 0 resumed" in out
    return db


def test_a_ray_run_equals_the_single_process_run(single: Path, tmp_path: Path) -> None:
    assert ray.__version__
    db = tmp_path / "ray.sqlite3"
    done = eval_run(db, GRID, *RAY)
    out, err = done.communicate(timeout=600)
    assert done.returncode == 0, err
    assert "8 new, 0 resumed, 8 in the grid" in out
    assert rows(db) == rows(single)  # same keys, same answers, same margins


def test_a_killed_ray_run_resumes_with_nothing_lost_or_repeated(
    single: Path, tmp_path: Path
) -> None:
    db = tmp_path / "killed.sqlite3"
    victim = eval_run(db, GRID, *RAY)
    deadline = time.monotonic() + 300
    while count(db) < 2:
        assert victim.poll() is None, victim.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.killpg(victim.pid, signal.SIGKILL)  # the driver and the Ray it started, mid-run
    victim.wait(timeout=30)
    partial = count(db)
    assert 2 <= partial < 8
    resumed = eval_run(db, GRID, *RAY)
    out, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err
    assert f"{8 - partial} new, {partial} resumed" in out
    assert rows(db) == rows(single)


def computing_actors() -> list[psutil.Process]:
    """Ray actor processes of this test's run that are inside EvalWorker.evaluate."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info["cmdline"] or []
        if cmdline and cmdline[0].startswith("ray::EvalWorker.evaluate"):
            found.append(process)
    return found


def test_an_actor_that_dies_is_replaced_and_its_samples_are_retried(
    single: Path, tmp_path: Path
) -> None:
    db = tmp_path / "dies.sqlite3"
    run = eval_run(db, GRID, *RAY)
    deadline = time.monotonic() + 300
    while not (busy := computing_actors()):
        assert run.poll() is None, run.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    # each actor holds two groups from the start, so the one killed takes work with it
    busy[0].send_signal(signal.SIGKILL)
    out, err = run.communicate(timeout=600)
    assert run.returncode == 0, err
    assert "actor(s) died and were replaced" in out
    assert "8 new, 0 resumed, 8 in the grid" in out
    assert rows(db) == rows(single)
