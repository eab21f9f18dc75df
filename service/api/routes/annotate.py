"""``POST /annotate`` and ``POST /annotate/batch``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from salience.markup import SalienceError

from ...annotator import SCHEMA_VERSION
from ...core.guard import GuardedRoute
from ...core.offload import off_loop
from ...core.problems import ProblemError, problem_for
from ..deps import AnnotatorDep, SettingsDep
from ..schemas import (
    PROBLEM_RESPONSES,
    AnnotateRequest,
    AnnotateResponse,
    BatchRequest,
    BatchResponse,
)

router = APIRouter(route_class=GuardedRoute, tags=["annotate"])

# Prompts longer than this are annotated on a worker thread, so that one big prompt does not
# hold up the event loop (and every other request) for milliseconds.
_INLINE_CHARS = 20_000


@router.post(
    "/annotate",
    response_model=AnnotateResponse,
    responses=PROBLEM_RESPONSES,
    summary="Parse a prompt's importance markup into spans and importance tokens",
    description="JSON, or a multipart/form-data upload: a part named `file` (.docx, RTF or "
    "UTF-8 text) and any other field of the JSON request as a form field.",
    openapi_extra={"x-salience-documents": True},
)
async def annotate(body: AnnotateRequest, request: Request, annotator: AnnotatorDep) -> Response:
    from ...annotator import to_json

    if _size(body) <= _INLINE_CHARS:
        result = annotator.annotate(body.options())
    else:
        result = await off_loop(request, annotator.annotate, body.options())
    return Response(to_json(result), media_type="application/json")


@router.post(
    "/annotate/batch",
    response_model=BatchResponse,
    responses=PROBLEM_RESPONSES,
    summary="Annotate many prompts in one call; each result succeeds or fails on its own",
)
async def annotate_batch(
    body: BatchRequest, request: Request, annotator: AnnotatorDep, settings: SettingsDep
) -> Response:
    from ...annotator import to_json

    if len(body.requests) > settings.max_batch_size:
        raise ProblemError(
            422,
            "batch-too-large",
            "Batch too large",
            f"{len(body.requests)} requests; the limit is {settings.max_batch_size}",
            limit=settings.max_batch_size,
        )

    def one(item: AnnotateRequest) -> dict[str, Any]:
        try:
            return {"ok": True, "result": annotator.annotate(item.options())}
        except (SalienceError, ProblemError) as error:
            return {"ok": False, "error": problem_for(error)}

    results = await off_loop(request, lambda: [one(item) for item in body.requests])
    tokens = sum(
        r["result"]["token_count"]
        for item, r in zip(body.requests, results, strict=True)
        if r["ok"] and item.tokens
    )
    if tokens > settings.max_batch_tokens:  # the answer's size follows its tokens
        raise ProblemError(
            422,
            "batch-too-large",
            "Batch too large",
            f"the batch's results hold {tokens} tokens; the limit is {settings.max_batch_tokens} "
            "(send fewer prompts per batch, or ask for tokens: false)",
            limit=settings.max_batch_tokens,
        )
    answer = {"schema_version": SCHEMA_VERSION, "results": results}
    content = await off_loop(request, to_json, answer)  # megabytes: off the loop
    return Response(content, media_type="application/json")


def _size(body: AnnotateRequest) -> int:
    if body.text is not None:
        return len(body.text)
    total = 0
    for message in body.messages or ():
        if isinstance(message.content, str):
            total += len(message.content)
        elif message.content:
            total += sum(len(p.text or "") for p in message.content)
    return total
