"""``/eval``: evaluation jobs on the local model — submit, watch (SSE), read, report, cancel."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt

from salience.evals.grid import Grid
from salience.evals.metrics import Estimate, estimates, table
from salience.evals.report import markdown
from salience.model.methods import METHODS

from ...core.guard import GuardedRoute
from ...core.problems import ProblemError
from ...jobs import FINAL, JobManager
from ..deps import JobsDep, MaybeJobsDep, eval_enabled
from ..schemas import PROBLEM_RESPONSES, Problem

router = APIRouter(route_class=GuardedRoute, tags=["eval"])
_PROBLEM = {"model": Problem, "content": {"application/problem+json": {}}}
EVAL_RESPONSES: dict[int | str, dict[str, Any]] = {
    **PROBLEM_RESPONSES,
    404: {**_PROBLEM, "description": "no such job"},
    429: {**_PROBLEM, "description": "too many jobs queued"},
    503: {**_PROBLEM, "description": "this server runs no eval worker"},
}

Kind = Literal["prose", "similar", "conflicting", "noise"]
Position = Literal["system", "before", "after", "both", "user"]
MAX_LENGTH = 8192  # distractor tokens a job may ask for (the CLI takes any the model fits)
WATCH_S = 0.1  # how often a watcher reads its job's row (one primary-key read)
KEEP_ALIVE_S = 15.0
MethodName = Literal[METHODS]  # type: ignore[valid-type]  # model.methods: the one list


class EvalRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"items": 2, "lengths": [0, 256], "methods": ["none", "uniform"]}]
        },
    )
    split: Literal["test", "train"] = "test"
    items: StrictInt = Field(4, ge=1, le=200)
    kinds: list[Kind] = Field(default_factory=lambda: list[Kind](["prose"]), min_length=1)
    lengths: list[Annotated[int, Field(ge=0, le=MAX_LENGTH)]] = Field(
        default_factory=lambda: [0, 256], min_length=1, description="distractor tokens"
    )
    positions: list[Position] = Field(
        default_factory=lambda: list[Position](["before"]), min_length=1
    )
    methods: list[MethodName] = Field(
        default_factory=lambda: list[MethodName](["none", "uniform"]), min_length=1
    )
    seed: StrictInt = Field(0, ge=0, le=2**31)
    max_new_tokens: StrictInt = Field(64, ge=1, le=512)
    margin: StrictBool = Field(
        False,
        description="measure (c): log p(compliant) − log p(violating) of the model's own "
        "answer to the task alone and its compliant transform",
    )
    samples: StrictInt = Field(
        0, ge=0, le=16, description="measure (b): sampled answers per prompt (0: greedy only)"
    )
    temperature: StrictFloat = Field(0.7, ge=0, le=2, description="of the sampled answers")
    families: list[str] | None = Field(
        None, min_length=1, description="only items of these rule families"
    )
    design: Literal["crossed", "rotated"] = Field(
        "crossed",
        description="crossed: every item gets every (kind, position); "
        "rotated: one pair per item, in turn (more items for the same budget)",
    )


class Job(BaseModel):
    id: str
    status: Literal["queued", "running", "done", "failed", "cancelled"]
    grid: dict[str, Any]
    created: float
    updated: float
    done: int
    skipped: int
    total: int
    error: str | None = None
    cancel_requested: bool = False  # a running job asked to stop (it stops between samples)
    results: list[dict[str, Any]] | None = None


def _job_or_404(jobs: JobManager, job_id: str) -> dict[str, Any]:
    job = jobs.get(job_id)
    if job is None:
        raise ProblemError(404, "job-not-found", "No such job", f"no eval job {job_id!r}")
    return job


def _holding(job_id: str, jobs: JobsDep) -> JobManager:
    """The job manager, once it is known to hold the job the path names (404 if not)."""
    _job_or_404(jobs, job_id)
    return jobs


Holding = Annotated[JobManager, Depends(_holding)]
A_JOB: dict[str, Any] = {"response_model": Job, "responses": EVAL_RESPONSES}  # routes answering one


# What a client can do with the job it just made: OpenAPI links, which tools that chain calls
# (schemathesis's stateful phase, client generators) follow
_JOB_ID = {"job_id": "$response.body#/id"}
JOB_LINKS = {
    name: {"operationId": operation, "parameters": _JOB_ID}
    for name, operation in (
        ("GetJob", "getJob"),
        ("JobEvents", "jobEvents"),
        ("JobReport", "jobReport"),
        ("CancelJob", "cancelJob"),
    )
}


@router.post(
    "/eval",
    status_code=202,
    summary="Start an eval job on the local model (a grid of items × lengths × methods)",
    operation_id="submitJob",
    response_model=Job,
    responses={
        **EVAL_RESPONSES,
        202: {"description": "the job, queued; Location names it", "links": JOB_LINKS},
    },
)
async def submit(body: EvalRequest, maybe_jobs: MaybeJobsDep) -> Any:
    from salience.evals import split

    grid = Grid(**body.model_dump())  # a GridError (bad-grid, bad-family) is a 422 problem
    split.items(grid.split, 1, grid.seed, grid.families)  # type: ignore[arg-type]
    job = eval_enabled(maybe_jobs).submit(grid)  # TooManyJobsError 429, GridTooLargeError 422
    return Response(
        json.dumps(job), status_code=202, media_type="application/json",
        headers={"Location": f"/eval/{job['id']}"},
    )  # fmt: skip


@router.get(
    "/eval", response_model=list[Job], responses=EVAL_RESPONSES, summary="Recent jobs, newest first"
)
async def list_jobs(jobs: JobsDep) -> Any:
    return jobs.recent()


@router.get(
    "/eval/{job_id}",
    summary="A job's state, progress and, when done, results",
    operation_id="getJob",
    **A_JOB,
)
async def get_job(job_id: str, jobs: JobsDep) -> Any:
    job = _job_or_404(jobs, job_id)  # the job itself, where the others need only its manager
    records = jobs.records(job_id)
    if records:
        sampled = estimates(records, ("method", "length"), "sampled")
        margin = estimates(records, ("method", "length"), "margin")
        job["results"] = [
            {"method": m, "length": n, "n": cells["strict"].n,
             **{k: {"rate": c.rate, "low": c.low, "high": c.high} for k, c in cells.items()},
             "sampled": _estimate(sampled.get((m, n))),
             "margin": _estimate(margin.get((m, n)))}
            for (m, n), cells in table(records, ("method", "length")).items()
        ]  # fmt: skip
    return job


def _estimate(e: Estimate | None) -> dict[str, float] | None:
    """A measure's mean and 95 % interval over the prompts that hold it (None: not measured)."""
    return None if e is None else {"mean": e.mean, "low": e.low, "high": e.high, "n": e.n}


@router.get(
    "/eval/{job_id}/events",
    summary="Progress as server-sent events",
    operation_id="jobEvents",
    response_class=StreamingResponse,
    responses={**EVAL_RESPONSES, 200: {"content": {"text/event-stream": {}}}},
)
async def events(job_id: str, request: Request, jobs: Holding) -> StreamingResponse:
    """The job's state when the stream opens, then every event after it, in order (read from
    the job's event log, so every watcher sees every event, whichever server process runs the
    job)."""

    async def stream() -> AsyncIterator[bytes]:
        job, seq = jobs.snapshot(job_id)  # the state and the log's position, read together
        yield _sse(
            "status",
            {"status": job.get("status"), "done": job.get("done"), "total": job.get("total")},
        )
        if job.get("status") in FINAL:
            return
        quiet = 0.0
        while True:
            await asyncio.sleep(WATCH_S)
            if await request.is_disconnected():
                return
            found = jobs.events_after(job_id, seq)
            for number, event in found:
                seq = number
                name = event.pop("event")
                yield _sse(name, event)
                if name == "status" and event.get("status") in FINAL:
                    return
            quiet = 0.0 if found else quiet + WATCH_S
            if quiet >= KEEP_ALIVE_S:
                yield b": keep-alive\n\n"
                quiet = 0.0

    return StreamingResponse(
        stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
    )


def _sse(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()


@router.get(
    "/eval/{job_id}/report",
    summary="The job's Markdown summary",
    operation_id="jobReport",
    response_class=Response,
    responses={
        **EVAL_RESPONSES,
        409: {**_PROBLEM, "description": "nothing to plot yet"},
        200: {"content": {"text/markdown": {}, "image/png": {}, "image/svg+xml": {}}},
    },
)
async def report(
    job_id: str,
    jobs: Holding,
    format: Literal["markdown", "png", "svg"] = "markdown",
    metric: Literal["strict", "quality", "both", "measures", "margin"] = "both",
) -> Response:
    """The Markdown summary, or (``format=png|svg``) the plot of ``metric`` against length
    (``measures``: greedy, sampled and margin side by side)."""
    records = jobs.records(job_id)
    if format == "markdown":
        return Response(markdown(job_id, records), media_type="text/markdown")
    if not records:
        raise ProblemError(409, "no-results", "No results yet", "the job has no samples to plot")
    import tempfile
    from pathlib import Path

    from salience.evals.plots import plots

    with tempfile.TemporaryDirectory() as tmp:
        await asyncio.to_thread(plots, records, tmp, f"job {job_id}")
        path = Path(tmp) / f"{metric}-vs-length.{format}"
        if not path.exists():
            raise ProblemError(
                409, "not-measured", "Not measured", f"the job's grid did not measure {metric}"
            )
        data = path.read_bytes()
    return Response(data, media_type="image/png" if format == "png" else "image/svg+xml")


@router.delete(
    "/eval/{job_id}",
    summary="Cancel a job (the samples it recorded stay)",
    operation_id="cancelJob",
    **A_JOB,
)
async def cancel(job_id: str, jobs: Holding) -> Any:
    return jobs.cancel(job_id)
