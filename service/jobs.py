"""Evaluation jobs: queued in SQLite beside the sample records, run one at a time by a worker.

A job is a grid to run on the local model. The worker thread takes the oldest queued job, runs
it through ``evals.runner`` (which stores every sample as it finishes), and publishes progress
to listeners (the SSE stream). Jobs survive a restart: at start-up, a job left ``running`` is
queued again and, since the runner skips stored samples, resumes where it stopped. ``cancel``
stops a job between two samples.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from evals.grid import Grid
from evals.runner import RunStats
from evals.runner import run as run_grid
from evals.store import Store
from markup.errors import SalienceError

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
    error text
);
"""
FINAL = frozenset({"done", "failed", "cancelled"})


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
        self.backend_factory = backend_factory
        self._backend: Any = None
        self.max_queued = max_queued
        self.max_samples = max_samples
        self.listeners: dict[
            str, list[tuple[asyncio.AbstractEventLoop, asyncio.Queue[dict[str, Any]]]]
        ] = {}
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.cancelled: set[str] = set()
        self.thread: threading.Thread | None = None
        with self.lock:
            # A job that was running when the service stopped resumes (its samples are kept).
            self.db.execute("update jobs set status = 'queued' where status = 'running'")
            self.db.commit()

    # --- API side ---

    def submit(self, grid: Grid) -> dict[str, Any]:
        with self.lock:
            queued = self.db.execute(
                "select count(*) from jobs where status in ('queued', 'running')"
            ).fetchone()[0]
            if queued >= self.max_queued:
                raise TooManyJobsError(f"{queued} jobs are waiting; the limit is {self.max_queued}")
            answers = grid.size() * (1 + grid.samples)
            if answers > self.max_samples:
                raise GridTooLargeError(
                    f"the grid asks for {answers} answers ({grid.size()} samples × "
                    f"(1 + {grid.samples} sampled)); the limit is {self.max_samples}"
                )
            job_id = uuid.uuid4().hex[:12]
            now = time.time()
            self.db.execute(
                "insert into jobs (id, status, grid, created, updated, total)"
                " values (?, 'queued', ?, ?, ?, ?)",
                (job_id, json.dumps(asdict(grid)), now, now, grid.size()),
            )
            self.db.commit()
        self.wake.set()
        job = self.get(job_id)
        assert job is not None
        return job

    def get(self, job_id: str) -> dict[str, Any] | None:
        with self.lock:
            row = self.db.execute(
                "select id, status, grid, created, updated, done, skipped, total, error"
                " from jobs where id = ?",
                (job_id,),
            ).fetchone()
        if row is None:
            return None
        keys = ("id", "status", "grid", "created", "updated", "done", "skipped", "total", "error")
        job = dict(zip(keys, row, strict=True))
        job["grid"] = json.loads(job["grid"])
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
        job = self.get(job_id)
        if job is None:
            return None
        if job["status"] == "queued":
            self._set(job_id, status="cancelled")
        elif job["status"] == "running":
            self.cancelled.add(job_id)
        return self.get(job_id)

    def subscribe(self, job_id: str) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        with self.lock:
            self.listeners.setdefault(job_id, []).append((asyncio.get_running_loop(), queue))
        return queue

    def unsubscribe(self, job_id: str, queue: asyncio.Queue[dict[str, Any]]) -> None:
        with self.lock:
            self.listeners[job_id] = [
                (lp, q) for lp, q in self.listeners.get(job_id, []) if q is not queue
            ]

    # --- worker side ---

    def start(self) -> None:
        self.thread = threading.Thread(target=self._work, name="salience-eval-worker", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()
        if self.thread is not None:
            self.thread.join(timeout=30)
        self.store.close()

    def _next(self) -> dict[str, Any] | None:
        with self.lock:
            row = self.db.execute(
                "select id from jobs where status = 'queued' order by created limit 1"
            ).fetchone()
        return self.get(row[0]) if row else None

    def _work(self) -> None:
        while not self.stopping.is_set():
            job = self._next()
            if job is None:
                self.wake.wait(timeout=1.0)
                self.wake.clear()
                continue
            self._run(job)

    def _run(self, job: dict[str, Any]) -> None:
        job_id = job["id"]
        self._set(job_id, status="running")
        self._publish(job_id, {"event": "status", "status": "running"})
        try:
            if self._backend is None:
                self._backend = self.backend_factory()
            grid = Grid(**job["grid"])

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
                if job_id in self.cancelled or self.stopping.is_set():
                    raise Cancelled()

            store: Any = _LockedStore(self)
            stats = run_grid(grid, self._backend, store, run_name(job_id), progress)
            self._set(job_id, status="done", done=stats.done, skipped=stats.skipped)
            self._publish(job_id, {"event": "status", "status": "done"})
        except Cancelled:
            if self.stopping.is_set() and job_id not in self.cancelled:
                self._set(job_id, status="queued")  # shutting down: resume on the next start
                return
            self._set(job_id, status="cancelled")
            self._publish(job_id, {"event": "status", "status": "cancelled"})
        except Exception as error:  # a job's failure must not kill the worker
            log.exception("eval job %s failed", job_id)
            self._set(job_id, status="failed", error=f"{type(error).__name__}: {error}")
            self._publish(job_id, {"event": "status", "status": "failed", "error": str(error)})
        finally:
            self.cancelled.discard(job_id)

    def _set(self, job_id: str, **fields: Any) -> None:
        fields["updated"] = time.time()
        columns = ", ".join(f"{k} = ?" for k in fields)
        with self.lock:
            self.db.execute(f"update jobs set {columns} where id = ?", (*fields.values(), job_id))
            self.db.commit()

    def _publish(self, job_id: str, event: dict[str, Any]) -> None:
        with self.lock:
            targets = list(self.listeners.get(job_id, []))
        for loop, queue in targets:
            loop.call_soon_threadsafe(queue.put_nowait, event)


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
