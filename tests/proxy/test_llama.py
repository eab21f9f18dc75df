"""Through the proxy and through the transports to a real model server (llama.cpp over the
shipped GGUF), driven by the official openai client: plain and streamed completions."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import openai
import pytest

from salience.service.proxy import AsyncSalienceTransport, SalienceTransport
from tests.service.server import Server, running_server

from .conftest import LLAMA_MODEL

MESSAGES = [
    {"role": "system", "content": "You are terse. <rule>Answer in one sentence.</rule>"},
    {"role": "user", "content": "What is the capital of Italy?"},
]


@pytest.fixture(scope="module")
def proxy(llama_upstream: str) -> Iterator[Server]:
    with running_server(SALIENCE_UPSTREAM_URL=llama_upstream, SALIENCE_EVAL_WORKER="false") as s:
        yield s


def _client(server: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)


def test_a_completion_through_the_proxy_reaches_the_model_rendered(proxy: Server) -> None:
    client = _client(proxy)
    raw = client.chat.completions.with_raw_response.create(
        model=LLAMA_MODEL, messages=MESSAGES, max_tokens=12, temperature=0,
        extra_body={"salience": {"method": "caps"}},
    )  # fmt: skip
    assert raw.headers["x-salience"] == "applied; method=caps; spans=1; rules=1"
    assert "annotate;dur=" in raw.headers["server-timing"]
    answer = raw.parse()
    assert answer.choices[0].message.content and answer.model == LLAMA_MODEL
    # what the model received: "IMPORTANT: " adds prompt tokens that the clean prompt lacks
    clean = [{"role": "system", "content": "You are terse. Answer in one sentence."}, MESSAGES[1]]
    off = client.chat.completions.create(
        model=LLAMA_MODEL,
        messages=clean,
        max_tokens=1,
        extra_body={"salience": {"method": "off"}},
    )
    assert answer.usage is not None and off.usage is not None
    assert answer.usage.prompt_tokens > off.usage.prompt_tokens


def test_a_streamed_completion_comes_through_chunk_by_chunk(proxy: Server) -> None:
    client = _client(proxy)
    with client.chat.completions.with_streaming_response.create(
        model=LLAMA_MODEL, messages=MESSAGES, max_tokens=16, temperature=0, stream=True
    ) as response:
        assert response.headers["x-salience"].startswith("unchanged; method=xml")
        assert response.headers["content-type"].startswith("text/event-stream")
        chunks = list(response.parse())
    pieces = [
        c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content
    ]
    assert len(pieces) >= 3 and "".join(pieces).strip()
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")


class Recording(httpx.HTTPTransport):
    """The real HTTP transport, keeping each request it sends."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request)
        return super().handle_request(request)


def test_the_sync_transport_renders_before_the_request_leaves(llama_upstream: str) -> None:
    wire = Recording()
    http = httpx.Client(transport=SalienceTransport(wire, method="system"))
    client = openai.OpenAI(
        base_url=llama_upstream, api_key="unused", http_client=http, max_retries=0
    )
    raw = client.chat.completions.with_raw_response.create(
        model=LLAMA_MODEL, messages=MESSAGES, max_tokens=8, temperature=0
    )
    assert raw.headers["x-salience"] == "applied; method=system; spans=1; rules=1"
    assert raw.parse().choices[0].message.content
    sent = wire.sent[-1].content  # what went out on the wire
    assert b"Rules you must follow" in sent and b"<rule>" not in sent
    stream = client.chat.completions.create(
        model=LLAMA_MODEL, messages=MESSAGES, max_tokens=8, temperature=0, stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text.strip() and b'"stream":true' in wire.sent[-1].content


def test_the_async_transport_streams(llama_upstream: str) -> None:
    async def run() -> tuple[str, str]:
        http = httpx.AsyncClient(transport=AsyncSalienceTransport(method="caps"))
        client = openai.AsyncOpenAI(
            base_url=llama_upstream, api_key="unused", http_client=http, max_retries=0
        )
        async with client.chat.completions.with_streaming_response.create(
            model=LLAMA_MODEL, messages=MESSAGES, max_tokens=8, temperature=0, stream=True
        ) as response:
            header = response.headers["x-salience"]
            text = ""
            async for chunk in await response.parse():
                if chunk.choices:
                    text += chunk.choices[0].delta.content or ""
        await http.aclose()
        return header, text

    header, text = asyncio.run(run())
    assert header == "applied; method=caps; spans=1; rules=1" and text.strip()
