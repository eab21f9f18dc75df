"""Evaluation jobs: queued in SQLite beside the sample records, run one at a time.

A job is a grid to run on the local model. Its whole state lives in the ``jobs`` table, the one
place every server process sees (``salience serve --workers N`` runs N processes, each with its
own worker thread, all on one database file):

- a worker claims the oldest queued job in one transaction, only while no job is running
  anywhere, and writes its owner (host, pid) and a heartbeat every ``HEARTBEAT_S``;
- it runs the grid through ``evals.runner`` (which stores every sample as it finishes) and
  writes progress to the row;
- ``cancel`` cancels a queued job at once, and asks a running one to stop through the row: its
  worker, in whichever process, reads the request between two samples;
- every change (progress, status) is appended to the job's event log, ``job_events``: a
  watcher (the SSE stream) reads the log from where it joined, so every watcher sees every
  event, in order, whichever process wrote it.

Jobs survive a restart: a job whose owner is gone (its process is dead on this host, or its
heartbeat is older than ``STALE_S``) is queued again and, since the runner skips stored
samples, resumes where it stopped.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from salience.evals.grid import Grid
from salience.evals.runner import RunStats
from salience.evals.runner import run as run_grid
from salience.evals.store import Store
from salience.markup.errors import SalienceError

log = logging.getLogger("salience.jobs")

JOBS_SCHEMA = """
create table if not exists jobs (
    id text primary key,
    status text not null,          -- queued, running, done, failed, cancelled
    grid text not null,
    created real not null,
    updated real not null,
    done integer not null default 0,
    skipped integer not null default 0,
    total integer not null default 0,
    error text,
    owner text,                    -- host:pid of the process running it
    heartbeat real,                -- when its owner last said it was alive
    cancel integer not null default 0  -- a running job asked to stop
);
create table if not exists job_events (
    job text not null,
    seq integer not null,
    event text not null,
    primary key (job, seq)
);
"""
# columns added since the first schema: a database made before them gains them when opened
ADDED_COLUMNS = {"owner": "text", "heartbeat": "real", "cancel": "integer not null default 0"}
FINAL = frozenset({"done", "failed", "cancelled"})
HEARTBEAT_S = 2.0
STALE_S = 30.0  # a running job whose owner has not been heard from for this long is requeued
COLUMNS = ("id", "status", "grid", "created", "updated", "done", "skipped", "total", "error",
           "cancel")  # fmt: skip


class TooManyJobsError(SalienceError):
    """The queue already holds ``max_queued`` jobs waiting to run; answered 429."""

    code = "too-many-jobs"
    status = 429
    title = "Too many jobs"


class GridTooLargeError(SalienceError):
    """A job asks for more answers than one job may (``max_samples``)."""

    code = "grid-too-large"
    title = "Grid too large"


class Cancelled(Exception):
    pass


class JobManager:
    def __init__(
        self,
        db_path: str | Path,
        backend_factory: Callable[[], Any],
        max_queued: int = 16,
        max_samples: int = 5000,
    ) -> None:
        self.store = Store(db_path)
        self.db = self.store.db
        self.lock = threading.Lock()
        self.db.executescript(JOBS_SCHEMA)
        have = {row[1] for row in self.db.execute("pragma table_info(jobs)")}
        for column, kind in ADDED_COLUMNS.items():
            if column not in have:
                self.db.execute(f"alter table jobs add column {column} {kind}")
        self.db.commit()
        self.backend_factory = backend_factory
        self._backend: Any = None
        self.max_queued = max_queued
        self.max_samples = max_samples
        self.owner = f"{socket.gethostname()}:{os.getpid()}"
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None
        self._requeue_orphans()  # a job whose process died resumes

    # --- API side (any process) ---

    def submit(self, grid: Grid) -> dict[str, Any]:
        answers = grid.size() * (1 + grid.samples)
        if answers > self.max_samples:
            raise GridTooLargeError(
                f"the grid asks for {answers} answers ({grid.size()} samples × "
                f"(1 + {grid.samples} sampled)); the limit is {self.max_samples}"
            )
        job_id = uuid.uuid4().hex[:12]
        now = time.time()
        with self.lock:
            self.db.execute("begin immediate")  # the count and the insert, one at a time
            try:
                queued = self.db.execute(
                    "select count(*) from jobs where status in ('queued', 'running')"
                ).fetchone()[0]
                if queued >= self.max_queued:
                    raise TooManyJobsError(
                        f"{queued} jobs are waiting; the limit is {self.max_queued}"
                    )
                self.db.execute(
                    "insert into jobs (id, status, grid, created, updated, total)"
                    " values (?, 'queued', ?, ?, ?, ?)",
                    (job_id, json.dumps(asdict(grid)), now, now, grid.size()),
                )
            except BaseException:
                self.db.rollback()
                raise
            self.db.commit()
        self.wake.set()
        job = self.get(job_id)
        assert job is not None
        return job

    def get(self, job_id: str) -> dict[str, Any] | None:
        with self.lock:
            return self._row(job_id)

    def _row(self, job_id: str) -> dict[str, Any] | None:
        row = self.db.execute(
            f"select {', '.join(COLUMNS)} from jobs where id = ?", (job_id,)
        ).fetchone()
        if row is None:
            return None
        job = dict(zip(COLUMNS, row, strict=True))
        job["grid"] = json.loads(job["grid"])
        job["cancel_requested"] = bool(job.pop("cancel"))
        return job

    def recent(self) -> list[dict[str, Any]]:
        with self.lock:
            ids = [
                r[0] for r in self.db.execute("select id from jobs order by created desc limit 200")
            ]
        return [job for job in (self.get(i) for i in ids) if job is not None]

    def records(self, job_id: str) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.store.records(run_name(job_id)))

    def cancel(self, job_id: str) -> dict[str, Any] | None:
        """Cancel a queued job now; ask a running one to stop (its worker, in whichever
        process, stops between two samples). None if there is no such job."""
        with self.lock:
            now = time.time()
            cursor = self.db.execute(
                "update jobs set status = 'cancelled', updated = ? where id = ? and "
                "status = 'queued'",
                (now, job_id),
            )
            if cursor.rowcount:  # its watchers hear of it, and their streams end
                self._append(job_id, {"event": "status", "status": "cancelled"})
            self.db.execute(
                "update jobs set cancel = 1, updated = ? where id = ? and status = 'running'",
                (now, job_id),
            )
            self.db.commit()
        return self.get(job_id)

    def snapshot(self, job_id: str) -> tuple[dict[str, Any], int]:
        """The job's state and the sequence number of its latest event (0: none yet), read in
        one transaction: every event after that number is a change the state does not show."""
        with self.lock:
            self.db.execute("begin")
            try:
                row = self.db.execute(
                    "select coalesce(max(seq), 0) from job_events where job = ?", (job_id,)
                ).fetchone()
                job = self._row(job_id)
            finally:
                self.db.commit()
        return job or {}, int(row[0])

    def events_after(self, job_id: str, seq: int) -> list[tuple[int, dict[str, Any]]]:
        """The job's events after ``seq``, in order."""
        with self.lock:
            rows = self.db.execute(
                "select seq, event from job_events where job = ? and seq > ? order by seq",
                (job_id, seq),
            ).fetchall()
        return [(n, json.loads(event)) for n, event in rows]

    # --- worker side (each process runs one worker; one job runs at a time in all) ---

    def start(self) -> None:
        self.thread = threading.Thread(target=self._work, name="salience-eval-worker", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()
        if self.thread is not None:
            self.thread.join(timeout=30)
        self.store.close()

    def _requeue_orphans(self) -> None:
        """Queue again every running job whose owner is gone: a process of this host that no
        longer exists, or any owner silent for ``STALE_S``."""
        host = socket.gethostname()
        now = time.time()
        with self.lock:
            running = self.db.execute(
                "select id, owner, heartbeat from jobs where status = 'running'"
            ).fetchall()
            for job_id, owner, beat in running:
                where, _, pid = (owner or "").rpartition(":")
                dead = where == host and pid.isdigit() and not _alive(int(pid))
                silent = beat is None or now - beat > STALE_S
                if owner is None or dead or silent:
                    log.warning("eval job %s lost its worker (%s); queued again", job_id, owner)
                    self.db.execute(
                        "update jobs set status = 'queued', owner = null, updated = ? "
                        "where id = ? and status = 'running' and owner is ?",
                        (now, job_id, owner),
                    )
            self.db.commit()

    def _claim(self) -> dict[str, Any] | None:
        """The oldest queued job, now running here; None if none is queued or one is running
        anywhere (one transaction: two processes never claim the same job)."""
        with self.lock:
            self.db.execute("begin immediate")
            try:
                busy = self.db.execute("select 1 from jobs where status = 'running'").fetchone()
                row = (
                    None
                    if busy
                    else self.db.execute(
                        "select id from jobs where status = 'queued' order by created limit 1"
                    ).fetchone()
                )
                if row is not None:
                    now = time.time()
                    self.db.execute(
                        "update jobs set status = 'running', owner = ?, heartbeat = ?, "
                        "updated = ? where id = ?",
                        (self.owner, now, now, row[0]),
                    )
            except BaseException:
                self.db.rollback()
                raise
            self.db.commit()
        return self.get(row[0]) if row else None

    def _work(self) -> None:
        while not self.stopping.is_set():
            try:
                self._requeue_orphans()
                job = self._claim()
            except sqlite3.OperationalError as error:  # another process held the file too long
                log.warning("eval worker: %s; trying again", error)
                job = None
            if job is None:
                self.wake.wait(timeout=1.0)
                self.wake.clear()
                continue
            self._run(job)

    def _run(self, job: dict[str, Any]) -> None:
        job_id = job["id"]
        beating = threading.Event()
        heart = threading.Thread(
            target=self._beat, args=(job_id, beating), name="salience-eval-heartbeat", daemon=True
        )
        heart.start()
        try:
            if self._backend is None:
                self._backend = self.backend_factory()
            grid = Grid(**job["grid"])

            self._publish(job_id, {"event": "status", "status": "running"})

            def progress(stats: RunStats) -> None:
                self._set(job_id, done=stats.done, skipped=stats.skipped)
                self._publish(
                    job_id,
                    {
                        "event": "progress",
                        "done": stats.done,
                        "skipped": stats.skipped,
                        "total": stats.total,
                    },
                )
                if self._cancel_requested(job_id) or self.stopping.is_set():
                    raise Cancelled()

            store: Any = _LockedStore(self)
            stats = run_grid(grid, self._backend, store, run_name(job_id), progress)
            self._set(job_id, status="done", done=stats.done, skipped=stats.skipped, owner=None)
            self._publish(job_id, {"event": "status", "status": "done"})
        except Cancelled:
            if self.stopping.is_set() and not self._cancel_requested(job_id):
                self._set(job_id, status="queued", owner=None)  # shutting down: resume later
                return
            self._set(job_id, status="cancelled", owner=None)
            self._publish(job_id, {"event": "status", "status": "cancelled"})
        except Exception as error:  # a job's failure must not kill the worker
            log.exception("eval job %s failed", job_id)
            self._set(job_id, status="failed", error=f"{type(error).__name__}: {error}", owner=None)
            self._publish(job_id, {"event": "status", "status": "failed", "error": str(error)})
        finally:
            beating.set()
            heart.join(timeout=HEARTBEAT_S * 2)

    def _beat(self, job_id: str, done: threading.Event) -> None:
        """Say this process still runs the job, every ``HEARTBEAT_S``, until ``done``."""
        while not done.wait(HEARTBEAT_S):
            try:
                with self.lock:
                    self.db.execute(
                        "update jobs set heartbeat = ? where id = ? and owner = ?",
                        (time.time(), job_id, self.owner),
                    )
                    self.db.commit()
            except sqlite3.Error as error:
                log.warning("eval job %s: heartbeat not written (%s)", job_id, error)

    def _cancel_requested(self, job_id: str) -> bool:
        with self.lock:
            row = self.db.execute("select cancel from jobs where id = ?", (job_id,)).fetchone()
        return bool(row and row[0])

    def _publish(self, job_id: str, event: dict[str, Any]) -> None:
        with self.lock:
            self._append(job_id, event)
            self.db.commit()

    def _append(self, job_id: str, event: dict[str, Any]) -> None:
        """Append to the job's event log (the caller holds the lock and commits); one statement,
        so two processes never take the same sequence number."""
        self.db.execute(
            "insert into job_events (job, seq, event) select ?, coalesce(max(seq), 0) + 1, ?"
            " from job_events where job = ?",
            (job_id, json.dumps(event), job_id),
        )

    def _set(self, job_id: str, **fields: Any) -> None:
        fields["updated"] = time.time()
        columns = ", ".join(f"{k} = ?" for k in fields)
        with self.lock:
            self.db.execute(f"update jobs set {columns} where id = ?", (*fields.values(), job_id))
            self.db.commit()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


class _LockedStore:
    """The runner's view of the store, sharing the manager's lock."""

    def __init__(self, manager: JobManager) -> None:
        self.manager = manager

    def done(self, run: str) -> set[str]:
        with self.manager.lock:
            return self.manager.store.done(run)

    def claim(self, run: str, settings: dict[str, Any], cells: dict[str, Any]) -> None:
        with self.manager.lock:
            self.manager.store.claim(run, settings, cells)

    def add(self, key: str, run: str, factors: dict[str, Any], result: dict[str, Any]) -> bool:
        with self.manager.lock:
            return self.manager.store.add(key, run, factors, result)

    def reference(self, model: str, item: str, max_new: int) -> dict[str, Any] | None:
        with self.manager.lock:
            return self.manager.store.reference(model, item, max_new)

    def add_reference(self, model: str, item: str, max_new: int, data: dict[str, Any]) -> None:
        with self.manager.lock:
            self.manager.store.add_reference(model, item, max_new, data)


def run_name(job_id: str) -> str:
    return f"job-{job_id}"
