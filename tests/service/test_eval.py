"""/eval on the live server: a job runs on the shipped model, its progress streams as SSE, its
results and report read back; jobs survive a killed server; limits are problems."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx

from .helpers import problem
from .server import Server, running_server

GRID = {"items": 1, "lengths": [0], "methods": ["none", "uniform"], "max_new_tokens": 8}


def sse_events(client: httpx.Client, job_id: str) -> list[tuple[str, dict[str, Any]]]:
    events: list[tuple[str, dict[str, Any]]] = []
    with client.stream("GET", f"/eval/{job_id}/events", timeout=300) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        name = None
        for line in r.iter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: ") and name:
                events.append((name, json.loads(line[6:])))
    return events


def wait_final(client: httpx.Client, job_id: str, timeout: float = 300) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = client.get(f"/eval/{job_id}").json()
        if job["status"] in ("done", "failed", "cancelled"):
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.2)


def test_a_job_runs_streams_progress_and_reports(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=60) as client:
        r = client.post("/eval", json=GRID)
        assert r.status_code == 202, r.text
        job = r.json()
        assert r.headers["location"] == f"/eval/{job['id']}" and job["total"] == 2
        events = sse_events(client, job["id"])
        assert events[0][0] == "status"
        # The stream starts with the job's state when it connected (a fast job may already
        # have a sample done), then every later step, in order.
        first = events[0][1]["done"] or 0
        progress = [e for name, e in events if name == "progress"]
        assert [p["done"] for p in progress] == list(range(first + 1, 3))
        assert events[-1] == ("status", {"status": "done"})
        done = client.get(f"/eval/{job['id']}").json()
        assert done["status"] == "done" and done["done"] == 2
        assert {row["method"] for row in done["results"]} == {"none", "uniform"}
        assert 0 <= done["results"][0]["both"]["low"] <= done["results"][0]["both"]["high"] <= 1
        report = client.get(f"/eval/{job['id']}/report")
        assert report.headers["content-type"].startswith("text/markdown")
        assert "| uniform | 0 | 1 |" in report.text
        png = client.get(f"/eval/{job['id']}/report", params={"format": "png", "metric": "strict"})
        assert png.headers["content-type"] == "image/png" and png.content.startswith(b"\x89PNG")
        assert any(j["id"] == job["id"] for j in client.get("/eval").json())
        assert (
            sse_events(client, job["id"])[0][1]["status"] == "done"
        )  # a finished job's stream ends


def test_a_job_measures_sampled_answers_and_the_margin(server: Server) -> None:
    grid = {**GRID, "methods": ["none"], "samples": 1, "margin": True}  # 2 answers: the limit
    with httpx.Client(base_url=server.url, timeout=60) as client:
        r = client.post("/eval", json=grid)
        assert r.status_code == 202, r.text
        job = wait_final(client, r.json()["id"])
        assert job["status"] == "done", job
        (row,) = job["results"]
        assert row["sampled"]["n"] == 1 and 0 <= row["sampled"]["mean"] <= 1
        # the test split's first item is a lowercase rule, which the model's own answer breaks
        assert isinstance(row["margin"]["mean"], float) and row["margin"]["n"] == 1
        report = client.get(f"/eval/{job['id']}/report").text
        assert "## Sampled pass fraction" in report and "## Compliance margin" in report
        params = {"format": "png", "metric": "measures"}
        png = client.get(f"/eval/{job['id']}/report", params=params)
        assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
        plain = client.post("/eval", json={**GRID, "methods": ["none"]}).json()
        assert wait_final(client, plain["id"])["results"][0]["sampled"] is None
        problem(
            client.get(f"/eval/{plain['id']}/report", params={"format": "png", "metric": "margin"}),
            409,
            "not-measured",
        )


def test_eval_limits_and_unknown_jobs_are_problems(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=60) as client:
        body = problem(
            client.post("/eval", json={**GRID, "lengths": [0, 64]}), 422, "grid-too-large"
        )
        assert "limit is 2" in body["detail"]
        body = problem(client.post("/eval", json={**GRID, "samples": 1}), 422, "grid-too-large")
        assert "4 answers" in body["detail"]
        body = problem(client.post("/eval", json={**GRID, "families": ["loud"]}), 422, "bad-family")
        assert "loud" in body["detail"] and "lowercase" in body["detail"]
        problem(client.post("/eval", json={**GRID, "samples": 99}), 422, "invalid-request")
        problem(client.post("/eval", json={**GRID, "methods": ["loud"]}), 422, "invalid-request")
        problem(client.get("/eval/nope"), 404, "job-not-found")
        problem(client.delete("/eval/nope"), 404, "job-not-found")
        problem(client.get("/eval/nope/events"), 404, "job-not-found")
        problem(client.get("/eval/nope/report"), 404, "job-not-found")
        problem(client.get("/eval/nope/report?format=png"), 404, "job-not-found")


def test_a_queued_job_can_be_cancelled_and_the_queue_is_bounded(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=60) as client:
        first = client.post("/eval", json=GRID).json()
        second = client.post("/eval", json={**GRID, "seed": 1}).json()
        problem(client.post("/eval", json={**GRID, "seed": 2}), 429, "too-many-jobs")
        cancelled = client.delete(f"/eval/{second['id']}").json()
        assert cancelled["status"] in ("cancelled", "running")
        assert wait_final(client, second["id"])["status"] == "cancelled"
        assert wait_final(client, first["id"])["status"] == "done"


def test_jobs_survive_a_killed_server(tmp_path: Path) -> None:
    db = str(tmp_path / "evals.sqlite3")
    grid = {**GRID, "max_new_tokens": 24}
    with running_server(SALIENCE_EVAL_DB=db) as first:
        job = httpx.post(f"{first.url}/eval", json=grid, timeout=60).json()
        os.kill(first.process.pid, signal.SIGKILL)  # the job is queued or mid-run
        first.process.wait(timeout=30)
    with running_server(SALIENCE_EVAL_DB=db) as second, httpx.Client(base_url=second.url) as client:
        final = wait_final(client, job["id"])
        assert final["status"] == "done", final
        assert final["done"] + final["skipped"] == 2
        report = client.get(f"/eval/{job['id']}/report").text
        assert "2 samples" in report  # exactly one record per key
