"""Eval jobs under `salience serve --workers 2`: requests spread over two processes, and every
watcher, status read and cancel works whichever process answers (issue 32, items 10–12)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from .server import Server, running_server
from .test_eval import wait_final

SMALL = {"items": 1, "lengths": [0], "methods": ["none", "uniform"], "max_new_tokens": 8}
# two groups of 16 samples (the runner computes a group together): room to cancel in between
LONG = {"items": 8, "lengths": [0, 64], "methods": ["none", "uniform"], "max_new_tokens": 16}


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with running_server(
        SALIENCE_WORKERS="2", SALIENCE_MAX_EVAL_SAMPLES="64", SALIENCE_MAX_EVAL_JOBS="4"
    ) as s:
        yield s


def watch(url: str, job_id: str, into: list[tuple[str, dict[str, Any]]]) -> None:
    """Read a job's event stream to its end, each watcher on its own connection."""
    with httpx.stream("GET", f"{url}/eval/{job_id}/events", timeout=600) as r:
        assert r.status_code == 200
        name = None
        for line in r.iter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: ") and name:
                into.append((name, json.loads(line[6:])))


def watchers(url: str, job_id: str, n: int) -> tuple[list[threading.Thread], list[list[Any]]]:
    seen: list[list[tuple[str, dict[str, Any]]]] = [[] for _ in range(n)]
    threads = [threading.Thread(target=watch, args=(url, job_id, s)) for s in seen]
    for t in threads:
        t.start()
    return threads, seen


def test_every_watcher_of_a_job_sees_every_event_to_the_end(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=60) as client:
        job = client.post("/eval", json=SMALL).json()
        threads, seen = watchers(server.url, job["id"], 3)
        for t in threads:
            t.join(timeout=600)
            assert not t.is_alive()
        for events in seen:
            assert events[-1] == ("status", {"status": "done"}), events
            first = events[0][1]["done"] or 0
            progress = [e["done"] for name, e in events if name == "progress"]
            assert progress == list(range(first + 1, 3)), events


def test_cancelling_a_queued_job_ends_its_streams(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=60) as client:
        running = client.post("/eval", json={**SMALL, "seed": 11}).json()
        queued = client.post("/eval", json={**SMALL, "seed": 12}).json()
        threads, seen = watchers(server.url, queued["id"], 2)
        for _ in range(3):  # new connections, answered by either process
            with httpx.Client(base_url=server.url, timeout=60) as fresh:
                r = fresh.delete(f"/eval/{queued['id']}")
                assert r.status_code == 200 and r.json()["status"] in ("cancelled", "running")
        for t in threads:
            t.join(timeout=600)
            assert not t.is_alive()
        for events in seen:
            assert events[-1][1]["status"] == "cancelled", events
        assert wait_final(client, queued["id"])["status"] == "cancelled"
        assert wait_final(client, running["id"])["status"] == "done"


def test_cancelling_a_running_job_stops_it_whichever_process_answers(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=60) as client:
        job = client.post("/eval", json=LONG).json()
        threads, seen = watchers(server.url, job["id"], 1)
        # wait, through the job's own stream, until it has recorded its first sample
        while not any(name == "progress" for name, _ in seen[0]):
            threads[0].join(timeout=0.1)
            assert threads[0].is_alive(), f"the stream ended before any progress: {seen[0]}"
        for _ in range(3):
            with httpx.Client(base_url=server.url, timeout=60) as fresh:
                answer = fresh.delete(f"/eval/{job['id']}").json()
                assert answer["status"] in ("running", "cancelled"), answer
        final = wait_final(client, job["id"], timeout=600)
        assert final["status"] == "cancelled", final
        assert 0 < final["done"] < final["total"], final
        threads[0].join(timeout=600)
        assert seen[0][-1] == ("status", {"status": "cancelled"})
