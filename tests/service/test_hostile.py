"""The service against a hostile client (issue 32's numbered items), each request sent to a real
server: files a client cannot name, slots that always come back, slow clients closed, numbers
bounded, every error in its route's dialect, no 500 and no dropped connection."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from salience.model.methods import default_file
from salience.service.app import create_app
from salience.service.core.config import Settings
from salience.service.engine import LocalEngine
from salience.service.shared_model import SharedModel

from .helpers import problem
from .server import ROOT, TEST_SETTINGS, Server, free_port, running_server

TIMEOUT = httpx.Timeout(120.0)  # a hang fails through this, never a wall-clock assert
MESSAGES = [
    {"role": "system", "content": "<rule>Answer in French.</rule>"},
    {"role": "user", "content": "Hello"},
]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A real bias file outside the package, one that is JSON but no bias, and a path that
    does not exist."""
    where = tmp_path_factory.mktemp("bias")
    real = where / "Real-Bias.json"
    shutil.copy(default_file("learned"), real)
    broken = where / "broken.json"
    broken.write_text("[1, 2, 3]")
    return {"real": real, "broken": broken, "missing": where / "missing.json"}


@pytest.fixture(scope="module")
def server(files: dict[str, Path]) -> Iterator[Server]:
    catalogue = {"mine": str(files["real"]), "broken": str(files["broken"])}
    with running_server(
        SALIENCE_EVAL_WORKER="false",
        SALIENCE_BIAS_FILES=json.dumps(catalogue),
        SALIENCE_LOCAL_MAX_WAITING="2",
        SALIENCE_LOCAL_MAX_TOKENS="3",
        SALIENCE_HEADER_TIMEOUT_S="1",
        SALIENCE_MAX_BATCH_TOKENS="5000",
        SALIENCE_MAX_BODY_BYTES="262144",  # room for a prompt over /model/bias's own limit
    ) as s:
        yield s


def chat(client: httpx.Client, model: str, **extra: Any) -> httpx.Response:
    body = {"model": model, "messages": MESSAGES, "max_tokens": 2, **extra}
    return client.post("/v1/chat/completions", json=body)


# ---- 1. a client names no file ----------------------------------------------------------------


def test_a_client_cannot_make_the_server_open_a_file(
    server: Server, files: dict[str, Path]
) -> None:
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        details = []
        for path in (files["real"], files["missing"], Path("/etc/passwd")):
            for method in (f"learned@{path}", f"pasta@{path}", f"distance@{path}"):
                body = {"messages": MESSAGES, "method": method}
                found = problem(client.post("/model/bias", json=body), 422, "bad-method")
                details.append(found["detail"].replace(str(path), "PATH"))
                r = chat(client, f"salience-local/{method}")
                assert r.status_code == 400 and r.json()["error"]["code"] == "bad-method"
                r = chat(client, "salience-local", salience={"method": method})
                assert r.status_code == 400 and r.json()["error"]["code"] == "bad-method"
        # the answer is the same whether the file exists, is a bias file, or is nothing
        assert len({d.split(":", 1)[1] for d in details}) == 1, details
        assert "catalogue" in details[0]
        found = problem(
            client.post("/model/bias", json={"messages": MESSAGES, "method": "xml@raw"}),
            422,
            "bad-method",
        )
        assert "over HTTP" in found["detail"]


def test_the_operators_catalogue_names_the_files_a_client_may_choose(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        mine = client.post("/model/bias", json={"messages": MESSAGES, "method": "learned@mine"})
        assert mine.status_code == 200, mine.text
        assert mine.json()["method"] == "learned@mine"  # never the path
        shipped = client.post("/model/bias", json={"messages": MESSAGES, "method": "learned"})
        assert [t["bias_mean"] for t in mine.json()["tokens"]] == [
            t["bias_mean"] for t in shipped.json()["tokens"]
        ]
        found = problem(
            client.post("/model/bias", json={"messages": MESSAGES, "method": "learned@other"}),
            422,
            "bad-method",
        )
        assert "broken, mine" in found["detail"]
        found = problem(
            client.post("/model/bias", json={"messages": MESSAGES, "method": "learned@broken"}),
            422,
            "bad-method",
        )
        assert "'broken' is not a bias file" in found["detail"] and "/" not in found["detail"]


def test_a_catalogue_entry_that_is_no_file_stops_the_server_at_start_up(tmp_path: Path) -> None:
    env = {**os.environ, **TEST_SETTINGS, "SALIENCE_BIAS_FILES": f"x={tmp_path / 'nope.json'}"}
    done = subprocess.run(
        [sys.executable, "-m", "salience", "serve", "--port", str(free_port())],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert "SALIENCE_BIAS_FILES" in done.stderr and "nope.json" in done.stderr


# ---- 2. every slot comes back ----------------------------------------------------------------


@pytest.mark.parametrize("error", [KeyError, RuntimeError, MemoryError, KeyboardInterrupt])
def test_an_engine_slot_is_given_back_on_every_way_out(error: type[BaseException]) -> None:
    engine = LocalEngine(SharedModel(None), max_waiting=1, max_tokens=4)
    with pytest.raises(error), engine.slot():
        raise error("inside")
    assert engine.waiting == 0
    with engine.slot() as slot:
        release = slot.hand_off()
    assert engine.waiting == 1  # a stream holds it past the block
    release()
    release()  # twice is harmless
    assert engine.waiting == 0


def test_failing_local_requests_never_lock_the_model_out(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        for _ in range(5):  # more than SALIENCE_LOCAL_MAX_WAITING=2, each failing in its slot
            r = chat(client, "salience-local/learned@broken")
            assert r.status_code == 400 and r.json()["error"]["code"] == "bad-method", r.text
        for _ in range(3):  # streams whose client leaves at the first event
            body = {"model": "salience-local/uniform", "messages": MESSAGES, "stream": True}
            with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=body) as r:
                assert r.status_code == 200
                next(r.iter_bytes())
            wait_for_gauge(client, "salience_local_generations", 0.0)
        ok = chat(client, "salience-local/none")
        assert ok.status_code == 200, ok.text
        assert ok.json()["choices"][0]["message"]["content"] is not None


def wait_for_gauge(client: httpx.Client, name: str, value: float) -> None:
    """Poll /metrics until the gauge reads ``value`` (the server notices a client leaving
    asynchronously); the 120 s guard fails the test instead of a hang."""
    deadline = time.monotonic() + 120
    while True:
        lines = client.get("/metrics").text.splitlines()
        found = next(float(line.split()[-1]) for line in lines if line.startswith(name + " "))
        if found == value:
            return
        assert time.monotonic() < deadline, f"{name} stayed at {found}"
        time.sleep(0.05)


# ---- 6. slow clients are closed --------------------------------------------------------------


def test_a_client_whose_headers_never_finish_is_answered_408_and_closed(server: Server) -> None:
    for sent in (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: 1\r\n", b""):
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
            s.sendall(sent)
            received = b""
            while chunk := s.recv(4096):  # until the server closes (or the 30 s guard fails)
                received += chunk
        assert received.startswith(b"HTTP/1.1 408"), received
        assert b"header-timeout" in received


def test_a_slow_but_complete_request_is_served(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\n")
        time.sleep(0.3)  # well inside the 1 s allowed
        s.sendall(b"Host: x\r\nConnection: close\r\n\r\n")
        received = b""
        while chunk := s.recv(4096):
            received += chunk
    assert received.startswith(b"HTTP/1.1 200"), received


# ---- 8. numbers are finite and in range ------------------------------------------------------


def test_out_of_range_numbers_are_clear_errors_on_a_kept_connection(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        for extra, param in (
            ({"temperature": -1}, "temperature"),
            ({"temperature": 3}, "temperature"),
            ({"temperature": "hot"}, "temperature"),
            ({"top_p": 1.5}, "top_p"),
            ({"seed": 2**70}, "seed"),
            ({"seed": True}, "seed"),
            ({"max_tokens": 0}, "max_tokens"),
            ({"max_tokens": True}, "max_tokens"),
        ):
            r = chat(client, "salience-local/none", **extra)
            assert r.status_code == 400, (extra, r.text)
            error = r.json()["error"]
            assert error["param"] == param and error["code"] == "bad-parameter", error
            assert r.headers.get("connection") != "close"
        r = client.post(
            "/v1/chat/completions",
            content=b'{"model": "salience-local/none", "messages": [{"role": "user", "content": '
            b'"hi"}], "temperature": 1e999}',
            headers={"content-type": "application/json"},
        )
        assert r.status_code == 400
        for method in ("uniform@1e308", "uniform@nan", "uniform@inf", "share@1", "spa@-1"):
            body = {"messages": MESSAGES, "method": method}
            found = problem(client.post("/model/bias", json=body), 422, "bad-method")
            assert "finite number in" in found["detail"], found
        # a temperature close to 0 samples (as greedy would): a whole stream, no 500
        tiny: dict[str, Any] = {"model": "salience-local/none", "messages": MESSAGES,
                                "stream": True, "temperature": 1e-300, "max_tokens": 3}  # fmt: skip
        with client.stream("POST", "/v1/chat/completions", json=tiny) as r:
            assert r.status_code == 200
            data = b"".join(r.iter_bytes())
        assert data.endswith(b"data: [DONE]\n\n"), data


# ---- 9. a bug is a 500 in the route's dialect, and the connection survives --------------------


@pytest.fixture(scope="module")
def buggy() -> Iterator[str]:
    """The real app with two routes that fail as a bug would, served by uvicorn in a thread."""
    app = create_app(Settings(preload_model=False, eval_worker=False))

    async def boom() -> None:
        raise RuntimeError("a bug")

    app.add_api_route("/v1/boom", boom)
    app.add_api_route("/boom", boom)
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_an_unexpected_error_is_a_500_in_the_dialect_and_keeps_the_connection(buggy: str) -> None:
    with httpx.Client(base_url=buggy, timeout=TIMEOUT) as client:
        r = client.get("/v1/boom")
        assert r.status_code == 500 and r.headers["content-type"] == "application/json"
        assert r.json()["error"]["type"] == "server_error"
        assert r.headers.get("connection") != "close"
        problem(client.get("/boom"), 500, "internal")
        assert client.get("/healthz").status_code == 200  # the same pooled connection


# ---- 14. the small things --------------------------------------------------------------------


def test_deep_json_and_lax_values_are_clear_errors(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        json_type = {"content-type": "application/json"}
        deep = b'{"text": ' + b"[" * 1000 + b"]" * 1000 + b"}"  # JSON, but no string
        found = problem(client.post("/annotate", content=deep, headers=json_type), 422,
                        "invalid-request")  # fmt: skip
        assert found["errors"][0]["loc"] == ["body", "text"]
        deeper = b'{"text": ' + b"[" * 5000 + b"]" * 5000 + b"}"  # past the reader's limit
        found = problem(client.post("/annotate", content=deeper, headers=json_type), 400,
                        "invalid-json")  # fmt: skip
        assert 1000 < found["offset"] < 5000 and found["line"] == 1
        assert "depth" in found["detail"]
        for lax in ({"text": "x", "strict": "yes"}, {"text": "x", "encoding": ""},
                    {"text": "x", "tokens": 1}):  # fmt: skip
            problem(client.post("/annotate", json=lax), 422, "invalid-request")
        problem(client.post("/eval", json={"items": "3"}), 422, "invalid-request")


def test_uploads_that_say_one_thing_and_are_another_are_refused(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        r = client.post("/annotate", files={"file": ("rules.docx", b"<rule>plain text</rule>")})
        found = problem(r, 422, "bad-document")
        assert "not a zip archive" in found["detail"]
        r = client.post(
            "/annotate",
            files={"file": ("p.txt", b"<rule>Be brief.</rule>")},
            data={"text": "something else"},
        )
        found = problem(r, 422, "conflicting-fields")
        assert "text" in found["detail"]


# ---- 13. limits proportionate to the cost ----------------------------------------------------


def test_the_costly_routes_have_limits_of_their_own(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        long = [{"role": "system", "content": "word " * 14_000}]
        found = problem(
            client.post("/model/bias", json={"messages": long, "method": "uniform"}),
            422,
            "prompt-too-long",
        )
        assert found["limit"] == 65_536
        text = "<rule>Be brief.</rule> " + "token " * 1_900  # about 1,900 tokens each
        batch = {"requests": [{"text": text}] * 3}
        found = problem(client.post("/annotate/batch", json=batch), 422, "batch-too-large")
        assert found["limit"] == 5000 and "tokens" in found["detail"]
        light = {"requests": [{"text": text, "tokens": False}] * 3}
        r = client.post("/annotate/batch", json=light)
        assert r.status_code == 200 and all(x["ok"] for x in r.json()["results"])
