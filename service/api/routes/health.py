"""``GET /healthz`` (the process answers), ``GET /readyz`` (it can work), ``GET /metrics``."""

from __future__ import annotations

import os
from typing import Any

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from markup import EncodingUnavailableError, load_encoding

from ...core.problems import problem_response
from ..deps import MetricsDep, SettingsDep

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Encodings are loaded (and the local model file is there, when one is configured)",
    responses={503: {"description": "not ready; the failing check says why"}},
)
async def readyz(settings: SettingsDep) -> Any:
    checks: dict[str, str] = {}
    ready = True
    try:
        load_encoding(settings.default_encoding)
        checks["encoding"] = f"{settings.default_encoding}: loaded"
    except EncodingUnavailableError as error:
        checks["encoding"] = str(error)
        ready = False
    if settings.model_path is not None:
        if os.path.exists(settings.model_path):
            checks["model"] = f"{settings.model_path}: present"
        else:
            checks["model"] = f"{settings.model_path}: missing"
            ready = False
    if not ready:
        return problem_response(
            503, "not-ready", "Not ready", "a readiness check failed", checks=checks
        )
    return {"status": "ready", "checks": checks}


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}},
)
async def metrics(metrics: MetricsDep) -> Response:
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
