"""The in-process transports against a real local upstream (tests/fakes): what leaves, what
passes untouched, fail-open and strict."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import openai
import pytest

from salience.service.proxy import AsyncSalienceTransport, SalienceTransport
from tests.fakes.openai_server import Behaviour, fake_openai

MESSAGES = [
    {"role": "developer", "content": "**Never** reveal the key. <rule>Reply in JSON.</rule>"},
    {"role": "user", "content": "What is the key?"},
]


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[str, Behaviour]]:
    behaviour = Behaviour()
    with fake_openai(behaviour) as url:
        yield url, behaviour


def client(url: str, **options: object) -> openai.OpenAI:
    http = httpx.Client(transport=SalienceTransport(**options))
    return openai.OpenAI(base_url=url, api_key="sk-test", http_client=http, max_retries=0)


def test_the_rendering_leaves_and_the_answer_says_so(upstream: tuple[str, Behaviour]) -> None:
    url, seen = upstream
    raw = client(url).chat.completions.with_raw_response.create(
        model="m",
        messages=MESSAGES,
    )
    assert raw.headers["x-salience"] == "applied; method=xml; spans=2; rules=1"
    assert seen.received[-1]["messages"][0]["content"] == (
        "<important>Never</important> reveal the key. <rule>Reply in JSON.</rule>"
    )
    assert seen.received[-1]["messages"][1] == MESSAGES[1]
    assert seen.headers[-1]["authorization"] == "Bearer sk-test"
    # the length header was recomputed for the new body (a stale one would cut it short)
    assert int(seen.headers[-1]["content-length"]) > len(str(MESSAGES[0]["content"]))
    echo = client(url, method="echo").chat.completions.create(
        model="m",
        messages=MESSAGES,
    )
    assert echo.choices[0].message.content == (
        "echo: What is the key?\n\nRemember, these rules must be followed:\n- Reply in JSON."
    )


def test_other_requests_pass_untouched(upstream: tuple[str, Behaviour]) -> None:
    url, _ = upstream
    models = client(url).models.list()
    assert [m.id for m in models] == ["fake-model"]
    with httpx.Client(transport=SalienceTransport()) as http:
        r = http.post(
            f"{url}/chat/completions", content=b"not json", headers={"content-type": "text/plain"}
        )
        assert r.status_code != 200 and "x-salience" not in r.headers


def test_fail_open_and_strict(upstream: tuple[str, Behaviour]) -> None:
    url, seen = upstream
    broken = [{"role": "system", "content": "<rule>open"}, MESSAGES[1]]
    raw = client(url).chat.completions.with_raw_response.create(
        model="m",
        messages=broken,
    )
    assert raw.headers["x-salience"] == "fail-open; error=unclosed-tag; offset=0; message=0"
    assert seen.received[-1]["messages"] == broken
    count = len(seen.received)
    with pytest.raises(openai.UnprocessableEntityError) as caught:
        client(url, strict=True).chat.completions.create(
            model="m",
            messages=broken,
        )
    assert caught.value.body["code"] == "unclosed-tag"
    assert caught.value.body["offset"] == 0
    assert len(seen.received) == count  # nothing was sent
    # strict asked for in the body is kept even when another option in it is bad
    with pytest.raises(openai.UnprocessableEntityError) as caught:
        client(url).chat.completions.create(
            model="m",
            messages=MESSAGES,
            extra_body={"salience": {"method": "uniform", "strict": True}},
        )
    assert caught.value.body["code"] == "bad-method"
    assert len(seen.received) == count


def test_the_async_transport(upstream: tuple[str, Behaviour]) -> None:
    url, seen = upstream

    async def run() -> str:
        http = httpx.AsyncClient(transport=AsyncSalienceTransport(method="caps"))
        async with openai.AsyncOpenAI(
            base_url=url, api_key="x", http_client=http, max_retries=0
        ) as c:
            raw = await c.chat.completions.with_raw_response.create(
                model="m",
                messages=MESSAGES,
            )
            return raw.headers["x-salience"]

    assert asyncio.run(run()) == "applied; method=caps; spans=2; rules=1"
    assert seen.received[-1]["messages"][0]["content"] == (
        "Never reveal the key. IMPORTANT: Reply in JSON."
    )


def test_openai_3_clients_on_httpx2(upstream: tuple[str, Behaviour]) -> None:
    import httpx2

    url, seen = upstream
    http = httpx2.Client(transport=SalienceTransport(httpx2.HTTPTransport(), method="caps"))
    c = openai.OpenAI(base_url=url, api_key="x", http_client=http, max_retries=0)
    raw = c.chat.completions.with_raw_response.create(model="m", messages=MESSAGES)
    assert raw.headers["x-salience"] == "applied; method=caps; spans=2; rules=1"
    assert seen.received[-1]["messages"][0]["content"].endswith("IMPORTANT: Reply in JSON.")
    broken = [{"role": "system", "content": "<rule>open"}, MESSAGES[1]]
    strict = httpx2.Client(transport=SalienceTransport(httpx2.HTTPTransport(), strict=True))
    c = openai.OpenAI(base_url=url, api_key="x", http_client=strict, max_retries=0)
    with pytest.raises(openai.UnprocessableEntityError):
        c.chat.completions.create(model="m", messages=broken)
