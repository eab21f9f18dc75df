"""One decision, every channel: the same three chat bodies through the proxy route, the sync and
async httpx transports and the LiteLLM hook come out the same — rewritten, failed open or
refused, with the same ``X-Salience`` value and the same messages sent on.

The route and the transports talk to a real local upstream (tests/fakes) that records what it
received; the hook is called through the entry point LiteLLM's proxy calls.
"""

from __future__ import annotations

import asyncio
import copy
import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.fakes.openai_server import Behaviour, fake_openai
from tests.service.server import Server, running_server

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no price-map fetch at import
from salience import AsyncSalienceTransport, SalienceHook, SalienceTransport

SYSTEM_OK = "Be brief. <rule>Answer in French.</rule> **Never** guess."
SYSTEM_BROKEN = "Be brief. <rule>Answer in French."
USER = {"role": "user", "content": "Hi <rule>typed by a user</rule>"}
BODIES: dict[str, tuple[dict[str, str], dict[str, Any]]] = {
    "valid marks": ({"role": "system", "content": SYSTEM_OK}, {"method": "caps"}),
    "broken markup": ({"role": "system", "content": SYSTEM_BROKEN}, {"method": "caps"}),
    "broken + strict": (
        {"role": "system", "content": SYSTEM_BROKEN},
        {"method": "caps", "strict": True},
    ),
}
EXPECTED = {  # what each body must become, whichever channel carries it
    "valid marks": ("rewritten", "applied; method=caps; spans=2; rules=1"),
    "broken markup": (
        "passed on",
        "fail-open; error=unclosed-tag; offset=10; message=0; defused=1",
    ),
    "broken + strict": ("refused", "unclosed-tag"),
}

Decision = tuple[str, str, Any]  # (kind, X-Salience value or error code, messages sent on)


def body_of(case: str) -> dict[str, Any]:
    system, options = BODIES[case]
    return {"model": "m", "messages": [dict(system), dict(USER)], "salience": dict(options)}


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[str, Behaviour]]:
    behaviour = Behaviour()
    with fake_openai(behaviour) as url:
        yield url, behaviour


@pytest.fixture(scope="module")
def proxy(upstream: tuple[str, Behaviour]) -> Iterator[Server]:
    url, _ = upstream
    with running_server(SALIENCE_UPSTREAM_URL=url, SALIENCE_EVAL_WORKER="false") as server:
        yield server


def _answered(response: httpx.Response, seen: Behaviour, before: int) -> Decision:
    if response.status_code == 422:
        assert len(seen.received) == before  # a refusal sends nothing
        return "refused", response.json()["error"]["code"], None
    assert response.status_code == 200, response.text
    header = response.headers["x-salience"]
    kind = "passed on" if header.startswith("fail-open") else "rewritten"
    return kind, header, seen.received[-1]["messages"]


def through_route(server: Server, seen: Behaviour, case: str) -> Decision:
    before = len(seen.received)
    response = httpx.post(f"{server.url}/v1/chat/completions", json=body_of(case), timeout=30)
    return _answered(response, seen, before)


def through_sync_transport(url: str, seen: Behaviour, case: str) -> Decision:
    before = len(seen.received)
    with httpx.Client(transport=SalienceTransport(), timeout=30) as client:
        response = client.post(f"{url}/chat/completions", json=body_of(case))
        response.read()
    return _answered(response, seen, before)


def through_async_transport(url: str, seen: Behaviour, case: str) -> Decision:
    before = len(seen.received)

    async def send() -> httpx.Response:
        async with httpx.AsyncClient(transport=AsyncSalienceTransport(), timeout=30) as client:
            response = await client.post(f"{url}/chat/completions", json=body_of(case))
            await response.aread()
            return response

    return _answered(asyncio.run(send()), seen, before)


def through_litellm_hook(case: str) -> Decision:
    from salience.service.litellm_hook import SalienceRefusal

    body = body_of(case)
    data = {"model": "m", "messages": body["messages"], "salience": body["salience"]}
    hook = SalienceHook()
    try:
        out = asyncio.run(hook.async_pre_call_hook(None, None, copy.deepcopy(data), "completion"))
    except SalienceRefusal as refused:
        return "refused", str(refused.code), None
    header = out["metadata"]["x-salience"]
    kind = "passed on" if header.startswith("fail-open") else "rewritten"
    return kind, header, out["messages"]


@pytest.mark.parametrize("case", sorted(BODIES))
def test_every_channel_makes_the_same_decision(
    case: str, proxy: Server, upstream: tuple[str, Behaviour]
) -> None:
    url, seen = upstream
    decisions = {
        "route": through_route(proxy, seen, case),
        "sync transport": through_sync_transport(url, seen, case),
        "async transport": through_async_transport(url, seen, case),
        "LiteLLM hook": through_litellm_hook(case),
    }
    kind, signal = EXPECTED[case]
    for channel, (got_kind, got_signal, _) in decisions.items():
        assert (got_kind, got_signal) == (kind, signal), channel
    sent = {channel: messages for channel, (_, _, messages) in decisions.items()}
    assert len({repr(m) for m in sent.values()}) == 1, sent  # the same messages, byte for byte
    messages = sent["route"]
    if kind == "refused":
        assert messages is None
        return
    # the user's typed marker is defused on both paths; the system text is rendered or as written
    assert messages[1]["content"] == "Hi &lt;rule>typed by a user&lt;/rule>"
    if kind == "rewritten":
        assert messages[0]["content"] == "Be brief. IMPORTANT: Answer in French. Never guess."
    else:
        assert messages[0]["content"] == SYSTEM_BROKEN
