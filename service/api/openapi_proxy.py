"""The proxy's OpenAPI documents: what ``/v1/chat/completions`` takes and what both ``/v1``
routes answer (the routes take raw JSON, so the schema is written out here)."""

from __future__ import annotations

from typing import Any

from ..proxy.streaming import SSE

_ERROR = {
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["error"],
                "properties": {"error": {"type": "object", "required": ["message"]}},
            }
        }
    }
}
PROXY_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "the completion; a text/event-stream of chunks when `stream` is true",
        "content": {"application/json": {"schema": {"type": "object"}}, SSE: {}},
    },
    **{
        status: {"description": description, **_ERROR}
        for status, description in {
            400: "invalid JSON, or a request the local model cannot take",
            404: "neither the local model nor an upstream serves this model",
            408: "the body did not arrive in time",
            413: "body over the limit",
            415: "not application/json",
            422: "strict: the markup does not parse (offset, line, column, message_index)",
            429: "too many local generations waiting (or the upstream's own 429)",
            502: "the upstream refused or broke the connection",
            503: "the upstream pool is exhausted, or the local model is unavailable",
            504: "the upstream did not answer in time",
        }.items()
    },
    "default": {"description": "the upstream's own error, passed through", **_ERROR},
}
# A proxy passes on what its upstream may take: beyond a string ``model``, nothing in the body is
# refused here (a body salience cannot annotate fails open, or is refused when strict), so the
# schema documents the fields salience reads without constraining them.
CHAT_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["model"],
                "additionalProperties": True,
                "properties": {
                    "model": {"type": "string", "examples": ["salience-local/uniform"]},
                    "messages": {
                        "description": "OpenAI-style chat messages (the local model needs a "
                        "non-empty array of them; the upstream decides for itself)",
                        "examples": [[{"role": "system", "content": "<rule>Be brief.</rule>"}]],
                    },
                    "stream": {"description": "true: server-sent events", "examples": [True]},
                    "salience": {
                        "description": "salience's options, removed before the body goes "
                        "upstream: an object with method (or render), strict and detect_rules; "
                        "anything else fails open (or, with strict, is refused with 422)",
                        "examples": [{"method": "xml", "strict": False}],
                    },
                },
            }
        }
    },
}

MODELS_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "the model list", "content": {"application/json": {}}},
    502: {"description": "the upstream refused or broke the connection", **_ERROR},
    503: {"description": "the upstream pool is exhausted", **_ERROR},
    504: {"description": "the upstream did not answer in time", **_ERROR},
    "default": {"description": "the upstream's own error, passed through", **_ERROR},
}
