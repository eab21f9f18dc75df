"""Every refusal is a problem-details response: content type, size, time, JSON, UTF-8, routes."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx

import salience

from .helpers import problem
from .server import Server


def test_wrong_content_type_is_415(client: httpx.Client) -> None:
    r = client.post("/annotate", content=b'{"text": "x"}', headers={"content-type": "text/plain"})
    problem(r, 415, "unsupported-media-type")
    r = client.post("/annotate", content=b'{"text": "x"}', headers={"content-type": ""})
    problem(r, 415, "unsupported-media-type")


def test_json_with_charset_and_plus_json_are_accepted(client: httpx.Client) -> None:
    for ctype in ("application/json; charset=utf-8", "application/vnd.salience+json"):
        r = client.post("/annotate", content=b'{"text": "x"}', headers={"content-type": ctype})
        assert r.status_code == 200, r.text


def test_declared_length_over_the_limit_is_413(client: httpx.Client) -> None:
    body = b'{"text": "' + b"a" * 70_000 + b'"}'
    problem(
        client.post("/annotate", content=body, headers={"content-type": "application/json"}),
        413,
        "body-too-large",
    )


def test_chunked_body_over_the_limit_is_413_by_counting_received_bytes(
    client: httpx.Client,
) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"text": "'
        for _ in range(100):
            yield b"a" * 1000  # no Content-Length: only the count can catch this
        yield b'"}'

    r = client.post("/annotate", content=chunks(), headers={"content-type": "application/json"})
    assert "content-length" not in r.request.headers
    body = problem(r, 413, "body-too-large")
    assert body["limit"] == 65536


def test_a_body_that_never_arrives_is_408_not_a_hang(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(
            b"POST /annotate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100\r\n\r\n{"text": '
        )
        chunks = []
        while chunk := s.recv(65536):  # the server closes the connection after answering
            chunks.append(chunk)
        reply = b"".join(chunks).decode()
    # no wall-clock assert: a hang would raise socket.timeout (10 s) instead of this reply
    assert reply.startswith("HTTP/1.1 408"), reply
    assert "urn:salience:problem:body-timeout" in reply


def test_invalid_json_is_400_with_the_offset(client: httpx.Client) -> None:
    r = client.post(
        "/annotate", content=b'{"text": "x",,}', headers={"content-type": "application/json"}
    )
    body = problem(r, 400, "invalid-json")
    assert body["offset"] == 13
    assert (body["line"], body["column"]) == (1, 14)
    r = client.post(
        "/annotate",
        content=b'{\n  "text": "x",\n  oops\n}',
        headers={"content-type": "application/json"},
    )
    body = problem(r, 400, "invalid-json")
    assert (body["line"], body["column"]) == (3, 3)  # as an editor shows the "o" of oops


def test_invalid_utf8_is_400_with_the_byte_offset(client: httpx.Client) -> None:
    r = client.post(
        "/annotate", content=b'{"text": "\xc3("}', headers={"content-type": "application/json"}
    )
    body = problem(r, 400, "invalid-utf8")
    assert body["byte_offset"] == 10


def test_unknown_route_and_wrong_method_are_problems(client: httpx.Client) -> None:
    problem(client.get("/nope"), 404, "not-found")
    problem(client.get("/annotate"), 405, "method-not-allowed")


def test_server_is_healthy_after_all_of_that(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok", "version": salience.__version__}
