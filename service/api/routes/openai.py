"""The OpenAI-compatible proxy: ``POST /v1/chat/completions`` and ``GET /v1/models``.

A request for the local model (``SALIENCE_LOCAL_MODEL``, default ``salience-local``, or
``salience-local/<method>``) is generated in process with a steering method. Any other model goes
to ``SALIENCE_UPSTREAM_URL`` with the messages annotated and rendered by a text method.

Per request: ``"salience": {"method": "xml", "strict": false}`` in the body (removed before the
body goes upstream) or the ``X-Salience-Method`` / ``X-Salience-Strict`` headers.

Every answer says what was done in ``X-Salience`` (``applied; method=xml; spans=2; rules=1``,
``unchanged; …``, ``off``, ``fail-open; error=markup-error; offset=17; message=0``, or
``local; method=learned; …``; ``defused=N`` where typed markers in untrusted channels were
defused: ``service.proxy.pipeline`` decides, once, for this route and every transport) and
carries ``Server-Timing`` (``annotate``, ``upstream`` = time to
the upstream's response headers). Errors are OpenAI-style JSON: ``{"error": {"message", "type",
"code", …}}``; upstream connection refused or dropped → 502, timeout → 504, pool exhausted → 503;
the upstream's own 4xx/5xx come back as they were. Streams pass through event by event; a client
that goes away cancels the upstream call.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request, Response

from ...core.config import Settings
from ...core.guard import read_guarded_body
from ...core.offload import off_loop
from ...proxy.errors import openai_error, refusal
from ...proxy.exact_json import dumps, loads
from ...proxy.local_chat import local_chat
from ...proxy.pipeline import Refused, Rewritten, base_options, decide
from ...proxy.relay import forward, returned_headers, upstream_error, upstream_headers
from ...proxy.upstream import UpstreamError
from ..deps import EngineDep, SettingsDep, UpstreamDep
from ..openapi_proxy import CHAT_BODY, MODELS_RESPONSES, PROXY_RESPONSES

router = APIRouter(prefix="/v1", tags=["proxy"])
# Bodies larger than this are annotated on a worker thread (the parse is linear, about 1 ms per
# 20 kB: smaller ones cost less than the hand-off)
INLINE_BYTES = 20_000


def _local_method(model: str, settings: Settings) -> str | None:
    """The steering method if ``model`` names the local model, else None."""
    name = settings.local_model
    if not name:
        return None
    if model == name:
        return settings.local_method
    if model.startswith(name + "/"):
        return model[len(name) + 1 :]
    return None


@router.post(
    "/chat/completions",
    summary="OpenAI-compatible chat completions, with importance markup heeded",
    response_model=None,
    responses=PROXY_RESPONSES,
    openapi_extra={"requestBody": CHAT_BODY},
)
async def chat_completions(
    request: Request, settings: SettingsDep, engine: EngineDep, upstream: UpstreamDep
) -> Response:
    raw = await read_guarded_body(request, settings)  # over the limit: an OpenAI-style 413
    big = len(raw) > INLINE_BYTES  # read and annotated off the event loop
    try:
        body = await off_loop(request, loads, raw) if big else loads(raw)
    except ValueError as error:
        detail = f"the body is not valid JSON: {error}"
        return openai_error(400, detail, "invalid_json", offset=getattr(error, "pos", None))
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        return openai_error(400, "the body must be an object with a string 'model'", "bad-body")
    model = body["model"]
    method = _local_method(model, settings)
    if method is not None:
        return await local_chat(request, engine, body, method, settings, big)
    if upstream is None:
        return openai_error(
            404,
            f"model {model!r} is not the local model ({settings.local_model!r}) and no upstream "
            "is configured (SALIENCE_UPSTREAM_URL)",
            "model_not_found",
        )
    base = base_options(settings)
    if big:  # off the event loop, which keeps serving everyone else meanwhile
        outcome = await off_loop(request, decide, body, base, request.headers)
    else:
        outcome = decide(body, base, request.headers)
    if isinstance(outcome, Refused):
        return refusal(outcome.error)
    content = raw if outcome.body is body else dumps(outcome.body)
    annotate_s = outcome.seconds if isinstance(outcome, Rewritten) else 0.0
    stream = body.get("stream") is True
    return await forward(request, upstream, content, outcome.header, annotate_s, stream, settings)


@router.get(
    "/models",
    summary="The local model and the upstream's models",
    response_model=None,
    responses=MODELS_RESPONSES,
)
async def models(request: Request, settings: SettingsDep, upstream: UpstreamDep) -> Response:
    data: list[dict[str, Any]] = []
    if settings.local_model:
        data.append(
            {"id": settings.local_model, "object": "model", "created": 0, "owned_by": "salience"}
        )
    if upstream is not None:
        try:
            response = await upstream.send(
                "GET", "models", None, upstream_headers(request, settings)
            )
            try:
                content = await response.read()
            finally:
                response.close()
        except UpstreamError as error:
            return upstream_error(error, upstream)
        if response.status != 200:
            return Response(content, response.status, headers=returned_headers(response.headers))
        try:
            listed = orjson.loads(content).get("data", [])
        except (orjson.JSONDecodeError, AttributeError):
            return openai_error(502, "the upstream's model list is not JSON", "bad_upstream")
        data.extend(m for m in listed if isinstance(m, dict))
    return Response(orjson.dumps({"object": "list", "data": data}), media_type="application/json")
