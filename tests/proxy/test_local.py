"""The local model behind the proxy: generated in process under a steering method, plain and
streamed, with the openai client."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.service.server import Server, running_server

MESSAGES = [
    {"role": "system", "content": "<rule>Answer in all capital letters.</rule>"},
    {"role": "user", "content": "What is the capital of Italy?"},
]


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with running_server(SALIENCE_EVAL_WORKER="false", SALIENCE_LOCAL_MAX_TOKENS="12") as s:
        yield s


def test_local_generation_under_a_steering_method(server: Server) -> None:
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0, timeout=120)
    raw = client.chat.completions.with_raw_response.create(
        model="salience-local/uniform",
        messages=MESSAGES,
        max_tokens=50,  # capped by SALIENCE_LOCAL_MAX_TOKENS
    )
    assert raw.headers["x-salience"] == "local; method=uniform; spans=1"
    answer = raw.parse()
    assert answer.choices[0].message.content
    assert answer.usage is not None and 0 < answer.usage.completion_tokens <= 12
    plain = client.chat.completions.create(
        model="salience-local",
        messages=MESSAGES,
        max_tokens=12,
        extra_body={"salience": {"method": "none"}},
    )
    assert plain.choices[0].message.content != answer.choices[0].message.content


def test_local_streaming_matches_the_whole_answer(server: Server) -> None:
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0, timeout=120)
    whole = client.chat.completions.create(
        model="salience-local/pasta",
        messages=MESSAGES,
        max_tokens=10,
    )
    chunks = list(
        client.chat.completions.create(
            model="salience-local/pasta",
            messages=MESSAGES,
            max_tokens=10,
            stream=True,
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert chunks[-1].choices[0].finish_reason == whole.choices[0].finish_reason


def test_local_errors(server: Server) -> None:
    url = f"{server.url}/v1/chat/completions"
    r = httpx.post(url, json={"model": "salience-local/loud", "messages": MESSAGES}, timeout=60)
    assert r.status_code == 400 and "unknown method" in r.json()["error"]["message"]
    r = httpx.post(url, json={"model": "salience-local", "messages": []}, timeout=60)
    assert r.status_code == 400
    broken = [{"role": "system", "content": "<rule>open"}, MESSAGES[1]]
    body = {"model": "salience-local/uniform", "messages": broken, "max_tokens": 2}
    r = httpx.post(url, json=body, timeout=60)
    assert r.status_code == 200
    assert r.headers["x-salience"] == (
        "local; method=none; fail-open; error=unclosed-tag; offset=0; message=0"
    )
    r = httpx.post(url, json={**body, "salience": {"strict": True}}, timeout=60)
    assert r.status_code == 422 and r.json()["error"]["offset"] == 0
