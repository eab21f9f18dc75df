"""``GET /healthz`` (the process answers), ``GET /readyz`` (it can work), ``GET /metrics``."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

import salience
from salience.markup import EncodingUnavailableError, load_encoding

from ...core.problems import problem_response
from ..deps import MetricsDep, SettingsDep, SharedModelDep

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok", "version": salience.__version__}


@router.get(
    "/readyz",
    summary="Everything configured can serve: encoding, local model, upstream",
    responses={503: {"description": "not ready; `checks` says which check failed and why"}},
)
async def readyz(settings: SettingsDep, shared: SharedModelDep) -> Any:
    """200 only when everything this server is configured to use can serve now:

    - the default encoding is loaded;
    - the local model (the proxy's ``salience-local``, eval jobs, ``/model/bias``) is loaded,
      when it is preloaded (``SALIENCE_PRELOAD_MODEL``, the default) or a
      ``SALIENCE_MODEL_PATH`` is set: 503 while it is missing, loading or failed;
    - the proxy's upstream (``SALIENCE_UPSTREAM_URL``) accepts a TCP connection.
    """
    checks: dict[str, str] = {}
    failed: list[str] = []
    try:
        load_encoding(settings.default_encoding)
        checks["encoding"] = f"{settings.default_encoding}: loaded"
    except EncodingUnavailableError as error:
        checks["encoding"] = str(error)
        failed.append("encoding")
    ready, detail = shared.status()
    if settings.preload_model or settings.model_path is not None:
        checks["model"] = detail
        if not ready:
            failed.append("model")
    else:
        checks["model"] = detail if ready else "loaded on first use (SALIENCE_PRELOAD_MODEL=0)"
    if settings.upstream_url:
        ok, checks["upstream"] = await _upstream_answers(
            settings.upstream_url, min(settings.upstream_connect_timeout_s, 2.0)
        )
        if not ok:
            failed.append("upstream")
    if failed:
        return problem_response(
            503,
            "not-ready",
            "Not ready",
            f"failed: {', '.join(failed)}",
            checks=checks,
        )
    return {"status": "ready", "checks": checks}


async def _upstream_answers(url: str, timeout: float) -> tuple[bool, str]:
    """Whether the upstream's host accepts a TCP connection (nothing is sent)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    where = f"{host}:{port}"
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except TimeoutError:
        return False, f"{where}: no answer within {timeout:g} s"
    except OSError as error:
        return False, f"{where}: {error.strerror or error}"
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True, f"{where}: accepts connections"


@router.get(
    "/metrics",
    summary="Prometheus metrics: requests, latency, prompts, tokens, model loads",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}},
)
async def metrics(metrics: MetricsDep) -> Response:
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
