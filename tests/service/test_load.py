"""1,000 concurrent requests, valid and malformed mixed: each gets its own right answer."""

from __future__ import annotations

import asyncio
import random

import httpx

import salience

from .server import Server

VALID_TEXTS = [
    f"Task {i}. <rule>Answer in {i % 7 + 1} words.</rule> **Note {i}**" for i in range(50)
]
MALFORMED: list[tuple[dict[str, object], int, str]] = [
    (
        {"content": b'{"text": "x",,}', "headers": {"content-type": "application/json"}},
        400,
        "invalid-json",
    ),
    (
        {"content": b'{"text": "x"}', "headers": {"content-type": "text/plain"}},
        415,
        "unsupported-media-type",
    ),
    ({"json": {"text": "a <rule>b", "strict": True}}, 422, "unclosed-tag"),
    ({"json": {"txt": "x"}}, 422, "invalid-request"),
    (
        {"content": b'{"text": "\xff"}', "headers": {"content-type": "application/json"}},
        400,
        "invalid-utf8",
    ),
    ({"json": {"text": "x" * 70_000}}, 413, "body-too-large"),
]


async def one(client: httpx.AsyncClient, i: int, rng: random.Random) -> tuple[str, bool]:
    if rng.random() < 0.3:
        kwargs, status, code = MALFORMED[i % len(MALFORMED)]
        r = await client.post("/annotate", **kwargs)  # type: ignore[arg-type]
        ok = r.status_code == status and r.json()["type"].endswith(code)
        return f"malformed {code} -> {r.status_code}", ok
    text = VALID_TEXTS[i % len(VALID_TEXTS)]
    r = await client.post("/annotate", json={"text": text, "tokens": False})
    if r.status_code != 200:
        return f"valid -> {r.status_code}", False
    doc = r.json()["document"]
    expected_rule = f"Answer in {i % len(VALID_TEXTS) % 7 + 1} words."
    hard = [doc["text"][s["start"] : s["end"]] for s in doc["spans"] if s["level"] == "hard"]
    return "valid", hard == [expected_rule]


def test_a_thousand_concurrent_requests_mixed_with_malformed_ones(server: Server) -> None:
    async def run() -> list[tuple[str, bool]]:
        rng = random.Random(7)
        limits = httpx.Limits(max_connections=1000, max_keepalive_connections=200)
        async with httpx.AsyncClient(base_url=server.url, timeout=120, limits=limits) as client:
            return await asyncio.gather(*(one(client, i, rng) for i in range(1000)))

    results = asyncio.run(run())
    failures = [what for what, ok in results if not ok]
    assert not failures, failures[:10]
    assert not any("-> 5" in what for what, _ in results)
    assert sum(what == "valid" for what, _ in results) > 600
    assert httpx.get(f"{server.url}/healthz", timeout=10).json() == {
        "status": "ok",
        "version": salience.__version__,
    }
