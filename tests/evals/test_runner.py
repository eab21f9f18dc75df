"""The runner on the shipped model: a run killed with SIGKILL resumes to exactly the records of an
uninterrupted run; the CLI reports it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.evals.runs import ROOT, count, eval_run, rows

# --batch 2: one prompt (both its methods) per group, so records land in four bursts of two and
# the kill can fall between them
GRID = ["--items", "2", "--lengths", "0,64", "--methods", "none,uniform", "--max-new-tokens", "12",
        "--margin", "--batch", "2"]  # fmt: skip


def test_a_killed_run_resumes_with_nothing_lost_or_repeated(tmp_path: Path) -> None:
    whole = tmp_path / "whole.sqlite3"
    done = eval_run(whole, GRID)
    out, err = done.communicate(timeout=600)
    assert done.returncode == 0, err
    assert "8 new, 0 resumed" in out

    killed = tmp_path / "killed.sqlite3"
    victim = eval_run(killed, GRID)
    deadline = time.monotonic() + 300
    while count(killed) < 3:
        assert victim.poll() is None, victim.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(victim.pid, signal.SIGKILL)  # really killed, mid-run
    victim.wait(timeout=30)
    partial = count(killed)
    assert 3 <= partial < 8

    resumed = eval_run(killed, GRID)
    out, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err
    assert f"{8 - partial} new, {partial} resumed" in out
    assert rows(killed) == rows(whole)  # same keys, one each, same results

    report = subprocess.run(
        [sys.executable, "-m", "salience", "eval", "report", "t", "--db", str(killed),
         "--out", str(tmp_path / "report")],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert report.returncode == 0, report.stderr
    assert "| uniform | 64 | 2 |" in report.stdout and "Against `none`" in report.stdout
    assert (tmp_path / "report" / "both-vs-length.png").stat().st_size > 1000
    assert (tmp_path / "report" / "summary.md").read_text() == report.stdout
    assert "- [both-vs-length](both-vs-length.png) ([svg](both-vs-length.svg))" in report.stdout
    assert "Grid: 2 items of the test split; methods none, uniform; lengths 0, 64" in report.stdout
    # the committed-records path: export compressed, report from the file alone, same tables
    records = tmp_path / "records.jsonl.gz"
    written = []
    for _ in range(2):
        exported = subprocess.run(
            [sys.executable, "-m", "salience", "eval", "export", "t", "--db", str(killed),
             "--out", str(records)],
            cwd=ROOT, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert exported.returncode == 0, exported.stderr
        written.append(records.read_bytes())
    assert written[0] == written[1]  # the same records give the same bytes
    from_file = subprocess.run(
        [sys.executable, "-m", "salience", "eval", "report", "t", "--records", str(records),
         "--out", str(tmp_path / "from-file")],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert from_file.returncode == 0, from_file.stderr
    assert from_file.stdout == report.stdout
    margins = [r["margin"] for _, r in rows(killed)]
    # items 1 and 2 of the test split are lowercase and uppercase rules: the model's own answer
    # breaks them and both have a compliance transform, so every sample has a margin
    assert len(margins) == 8 and all(isinstance(m, float) for m in margins), margins
    assert "## Compliance margin" in report.stdout
    assert (tmp_path / "report" / "margin-vs-length.png").is_file()
    assert (tmp_path / "report" / "measures-vs-length.png").is_file()


def test_a_remote_server_runs_with_bounded_concurrency(tmp_path: Path) -> None:
    from salience.evals.backends import RemoteBackend
    from salience.evals.grid import Grid
    from salience.evals.runner import run
    from salience.evals.store import Store
    from salience.model.methods import MethodError
    from tests.fakes.openai_server import Behaviour, fake_openai

    behaviour = Behaviour()
    grid = Grid(items=2, lengths=(0, 64), methods=("none", "xml"), max_new_tokens=5)
    store = Store(tmp_path / "r.sqlite3")
    with fake_openai(behaviour) as url:
        stats = run(grid, RemoteBackend(url, "m"), store, "remote", concurrency=3)
        assert stats.done == 8 and len(behaviour.received) == 8
        again = run(grid, RemoteBackend(url, "m"), store, "remote", concurrency=3)
        assert again.done == 0 and again.skipped == 8 and len(behaviour.received) == 8
        records = list(store.records("remote"))
        assert all(r["response"].startswith("echo: ") for r in records)
        xml = [
            m for body in behaviour.received for m in body["messages"] if "<rule>" in m["content"]
        ]
        assert len(xml) == 4  # the xml rendering went upstream; `none` sent the clean text
        try:
            run(
                Grid(items=1, lengths=(0,), methods=("uniform",)),
                RemoteBackend(url, "m"),
                store,
                "x",
            )
        except MethodError as error:
            assert "attention bias" in str(error)
        else:
            raise AssertionError("a bias method must be refused for a remote model")
    store.close()


def test_several_servers_share_the_requests_in_turn(tmp_path: Path) -> None:
    from salience.evals.backends import RemoteBackend
    from salience.evals.grid import Grid
    from salience.evals.runner import run
    from salience.evals.store import Store
    from tests.fakes.openai_server import Behaviour, fake_openai

    first, second = Behaviour(), Behaviour()
    grid = Grid(items=2, lengths=(0, 64), methods=("none", "xml"), max_new_tokens=5)
    store = Store(tmp_path / "r.sqlite3")
    with fake_openai(first) as one, fake_openai(second) as two:
        stats = run(grid, RemoteBackend([one, two], "m"), store, "two", concurrency=2)
    store.close()
    assert stats.done == 8
    assert len(first.received) == len(second.received) == 4
