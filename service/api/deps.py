"""What a route may reach of the app's shared state, each as an ``Annotated`` dependency: the one
way the routes reach it (no route reads ``request.app.state`` itself).

Each is an ``async def``: FastAPI runs a plain ``def`` dependency on its thread pool, a hop that
costs more than the attribute read it wraps."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Request

from ..annotator import Annotator
from ..core.config import Settings
from ..core.metrics import Metrics
from ..core.problems import ProblemError
from ..engine import LocalEngine
from ..jobs import JobManager
from ..proxy.upstream import Upstream
from ..shared_model import SharedModel


def _state(name: str) -> Callable[[Request], Awaitable[Any]]:
    """A dependency that reads ``app.state.<name>`` (None where it was never set)."""

    async def read(request: Request) -> Any:
        return getattr(request.app.state, name, None)

    read.__name__ = f"state_{name}"
    return read


def eval_enabled(jobs: JobManager | None) -> JobManager:
    """``jobs``, or the 503 of a server that runs no eval worker."""
    if jobs is None:
        raise ProblemError(
            503, "eval-disabled", "Evaluation disabled", "this server runs no eval worker"
        )
    return jobs


async def _jobs(request: Request) -> JobManager:
    return eval_enabled(getattr(request.app.state, "jobs", None))


SettingsDep = Annotated[Settings, Depends(_state("settings"))]
AnnotatorDep = Annotated[Annotator, Depends(_state("annotator"))]
MetricsDep = Annotated[Metrics, Depends(_state("metrics"))]
EngineDep = Annotated[LocalEngine, Depends(_state("local"))]  # the local model's queue, generation
SharedModelDep = Annotated[SharedModel, Depends(_state("model"))]
UpstreamDep = Annotated[Upstream | None, Depends(_state("upstream"))]  # None: no upstream
JobsDep = Annotated[JobManager, Depends(_jobs)]  # 503 where this server runs no eval worker
# a dependency's error comes before the body's: a route that checks its body first takes this
# and calls ``eval_enabled`` after
MaybeJobsDep = Annotated[JobManager | None, Depends(_state("jobs"))]
