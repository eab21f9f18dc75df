"""What a route may reach of the app's shared state, each as an ``Annotated`` dependency: the one
way the routes reach it (no route reads ``request.app.state`` itself).

Each is an ``async def``: FastAPI runs a plain ``def`` dependency on its thread pool, a hop that
costs more than the attribute read it wraps."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ..annotator import Annotator
from ..core.config import Settings
from ..core.metrics import Metrics
from ..core.problems import ProblemError
from ..engine import LocalEngine
from ..jobs import JobManager
from ..proxy.upstream import Upstream
from ..shared_model import SharedModel


async def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def _annotator(request: Request) -> Annotator:
    annotator: Annotator = request.app.state.annotator
    return annotator


async def _metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


async def _engine(request: Request) -> LocalEngine:
    engine: LocalEngine = request.app.state.local
    return engine


async def _shared_model(request: Request) -> SharedModel:
    shared: SharedModel = request.app.state.model
    return shared


async def _upstream(request: Request) -> Upstream | None:
    upstream: Upstream | None = request.app.state.upstream
    return upstream


async def _maybe_jobs(request: Request) -> JobManager | None:
    jobs: JobManager | None = getattr(request.app.state, "jobs", None)
    return jobs


def eval_enabled(jobs: JobManager | None) -> JobManager:
    """``jobs``, or the 503 of a server that runs no eval worker."""
    if jobs is None:
        raise ProblemError(
            503, "eval-disabled", "Evaluation disabled", "this server runs no eval worker"
        )
    return jobs


async def _jobs(request: Request) -> JobManager:
    return eval_enabled(await _maybe_jobs(request))


SettingsDep = Annotated[Settings, Depends(_settings)]
AnnotatorDep = Annotated[Annotator, Depends(_annotator)]
MetricsDep = Annotated[Metrics, Depends(_metrics)]
EngineDep = Annotated[LocalEngine, Depends(_engine)]  # the local model's queue and generation
SharedModelDep = Annotated[SharedModel, Depends(_shared_model)]
UpstreamDep = Annotated[Upstream | None, Depends(_upstream)]  # None: no upstream configured
JobsDep = Annotated[JobManager, Depends(_jobs)]  # 503 where this server runs no eval worker
# a dependency's error comes before the body's: a route that checks its body first takes this
# and calls ``eval_enabled`` after
MaybeJobsDep = Annotated[JobManager | None, Depends(_maybe_jobs)]
