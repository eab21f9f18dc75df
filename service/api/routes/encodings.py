"""``GET /encodings``: what can be tokenized here, and the importance special tokens."""

from __future__ import annotations

from fastapi import APIRouter

from salience.markup import EncodingUnavailableError, load_encoding
from salience.markup.encoding import known_encodings

from ..deps import SettingsDep
from ..schemas import EncodingsResponse

router = APIRouter(tags=["encodings"])


@router.get(
    "/encodings",
    response_model=EncodingsResponse,
    summary="The base encodings this server can tokenize with",
)
async def encodings(settings: SettingsDep) -> EncodingsResponse:
    found = []
    unavailable = []
    for name in known_encodings():
        try:
            encoding = load_encoding(name)
        except EncodingUnavailableError as error:
            unavailable.append({"name": name, "reason": str(error).split(". Available:")[0]})
            continue
        found.append(
            {
                "name": encoding.base_name,
                "importance_name": encoding.name,
                "n_vocab": encoding.encoding.n_vocab,
                "special_tokens": encoding.special_tokens(),
            }
        )
    return EncodingsResponse.model_validate(
        {"default": settings.default_encoding, "encodings": found, "unavailable": unavailable}
    )
