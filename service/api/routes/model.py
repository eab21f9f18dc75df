"""``/model/bias``: what a steering method adds to each of the local model's prompt tokens.

The prompt is built as the model sees it (chat template, the model's own tokens, each token's
importance level). A bias method adds β[level, layer, head] to the attention logits of a key;
per token this route reports the mean and the extremes of that β over the layers and heads,
and whether the token's queries are steered (the gate). Text methods add no bias: their tokens
show the rewritten prompt instead.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from salience.markup import Format, parse_messages
from salience.model.methods import check_name

from ...core.guard import GuardedRoute
from ...core.offload import off_loop
from ...core.problems import ProblemError
from ..deps import EngineDep, SettingsDep
from ..schemas import PROBLEM_RESPONSES

router = APIRouter(route_class=GuardedRoute, tags=["model"])
MAX_MESSAGES = 64
# The route's cost is the prompt's: characters beyond this are refused before any work (a prompt
# this long is past any small model's window anyway), tokens beyond the model's window after the
# prompt is built and before a bias is computed for each of them.
MAX_CHARACTERS = 65_536
DEFAULT_METHOD = "learned"


class BiasRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    messages: list[dict[str, Any]] = Field(
        ...,
        min_length=1,
        max_length=MAX_MESSAGES,
        examples=[[{"role": "system", "content": "<rule>Answer in French.</rule>"}]],
    )
    method: str = Field("uniform", examples=["uniform", "pasta", "learned", "xml"])
    trusted_roles: list[str] | None = None
    format: Format = Format.AUTO


class BiasToken(BaseModel):
    id: int
    text: str
    level: str | None
    bias_mean: float
    bias_min: float
    bias_max: float
    steered: bool  # this position's queries get the bias


class BiasResponse(BaseModel):
    method: str
    kind: str  # the registry's: "none", "text", "bias" or "contrastive"
    tokens: list[BiasToken]
    layers: int
    heads: int


class MethodInfo(BaseModel):
    name: str
    kind: str  # "none", "text", "bias" or "contrastive"
    help: str
    parameter: str | None  # how the name carries one: "uniform@β", "xml@raw"…


class MethodsResponse(BaseModel):
    methods: list[MethodInfo]
    default: str  # the method the page offers first


@router.get(
    "/model/methods",
    response_model=MethodsResponse,
    summary="The steering methods: the registry every other list is read from",
)
async def methods() -> Any:
    from salience.model.methods import REGISTRY

    found = [
        {"name": e.name, "kind": e.kind, "help": e.help, "parameter": e.at_form}
        for e in REGISTRY.values()
    ]
    return {"methods": found, "default": DEFAULT_METHOD}


@router.post(
    "/model/bias",
    response_model=BiasResponse,
    responses={
        **PROBLEM_RESPONSES,
        503: {"description": "the local model is unavailable", **PROBLEM_RESPONSES[422]},
    },
    summary="The local model's tokens and the bias a method puts on each",
)
async def bias(
    body: BiasRequest, request: Request, settings: SettingsDep, engine: EngineDep
) -> Any:
    roles = body.trusted_roles if body.trusted_roles is not None else settings.trusted_roles
    # salience's errors (markup, message, method, model unavailable) are problems as they are;
    # a method is named as any client names one: no file paths (the operator's catalogue)
    name = check_name(body.method, settings.bias_files)
    characters = sum(_characters(m.get("content")) for m in body.messages)
    if characters > MAX_CHARACTERS:
        raise ProblemError(
            422,
            "prompt-too-long",
            "Prompt too long",
            f"the messages hold {characters} characters; /model/bias takes at most "
            f"{MAX_CHARACTERS}",
            limit=MAX_CHARACTERS,
        )
    conversation = await off_loop(
        request,
        parse_messages,
        body.messages,
        roles,
        body.format,
        max_elements=settings.max_markup_elements,
    )
    lm = await engine.model()
    method = lm.method(name, catalogue=settings.bias_files)

    def compute() -> dict[str, Any]:
        prompt = lm.prompt(conversation, method)
        window = int(getattr(lm.model.config, "max_position_embeddings", 0) or 0)
        limit = min(settings.max_prompt_tokens, window) if window else settings.max_prompt_tokens
        if len(prompt.input_ids) > limit:
            raise ProblemError(
                422,
                "token-limit",
                "Prompt too long",
                f"the prompt is {len(prompt.input_ids)} of the model's tokens; "
                f"the limit is {limit}",
                limit=limit,
            )
        tokens = [
            {
                "id": t.id,
                "text": t.text,
                "level": t.level,
                "bias_mean": round(t.mean, 4),
                "bias_min": round(t.min, 4),
                "bias_max": round(t.max, 4),
                "steered": t.steered,
            }
            for t in lm.token_biases(conversation, method, prompt)
        ]
        return {
            "method": method.name,
            "kind": method.kind,
            "tokens": tokens,
            "layers": lm.n_layers,
            "heads": lm.n_heads,
        }

    return await off_loop(request, compute)


def _characters(content: Any) -> int:
    """The characters of a message's content: a string, or the text of its parts."""
    if isinstance(content, str):
        return len(content)
    if isinstance(content, list):
        return sum(
            len(p["text"])
            for p in content
            if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    return 0
