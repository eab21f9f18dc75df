"""Readiness that means ready (the preloaded model, the upstream), one local model per process,
and an event loop that a big annotate cannot block."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx

from .helpers import problem
from .server import free_port, running_server
from .test_eval import wait_final
from .test_health_metrics import samples


def wait_ready(url: str, timeout: float = 180) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Poll /readyz until it is 200; the body, and every 503 body seen before it."""
    not_ready: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while True:
        r = httpx.get(f"{url}/readyz", timeout=10)
        if r.status_code == 200:
            return r.json(), not_ready
        not_ready.append(problem(r, 503, "not-ready"))
        assert time.monotonic() < deadline, not_ready[-1]
        time.sleep(0.2)


def test_readyz_waits_for_the_model_and_one_model_serves_everyone() -> None:
    with running_server(SALIENCE_PRELOAD_MODEL="true", SALIENCE_MAX_EVAL_SAMPLES="4") as server:
        ready, before = wait_ready(server.url)
        # While it was not ready, the model was the reason, and said so.
        for body in before:
            assert "model" in body["detail"], body
            assert body["checks"]["model"].endswith(("loading", "not loaded yet")), body
        assert "loaded (float32" in ready["checks"]["model"]
        with httpx.Client(base_url=server.url, timeout=300) as client:
            messages = [
                {"role": "system", "content": "<rule>Answer in French.</rule>"},
                {"role": "user", "content": "Say hello."},
            ]
            bias = client.post("/model/bias", json={"messages": messages, "method": "uniform"})
            assert bias.status_code == 200, bias.text
            chat = client.post(
                "/v1/chat/completions",
                json={"model": "salience-local/none", "messages": messages, "max_tokens": 2},
            )
            assert chat.status_code == 200, chat.text
            job = client.post(
                "/eval",
                json={"items": 1, "lengths": [0], "methods": ["none"], "max_new_tokens": 2},
            )
            assert job.status_code == 202, job.text
            assert wait_final(client, job.json()["id"])["status"] == "done"
            # The proxy's engine, /model/bias and the eval worker used one model, loaded once.
            metrics = samples(client.get("/metrics").text)
            assert metrics["salience_model_loads_total"] == 1.0


def test_readyz_is_503_when_the_upstream_refuses_and_200_when_it_answers() -> None:
    closed = free_port()  # nothing listens here
    with running_server(SALIENCE_UPSTREAM_URL=f"http://127.0.0.1:{closed}/v1") as server:
        body = problem(httpx.get(f"{server.url}/readyz", timeout=10), 503, "not-ready")
        assert body["detail"] == "failed: upstream"
        assert body["checks"]["upstream"].startswith(f"127.0.0.1:{closed}: ")
        assert "accepts" not in body["checks"]["upstream"]
        # A real server that listens: a second salience.
        with running_server(SALIENCE_UPSTREAM_URL=f"{server.url}/v1") as proxy:
            ready = httpx.get(f"{proxy.url}/readyz", timeout=10)
            assert ready.status_code == 200, ready.text
            assert ready.json()["checks"]["upstream"] == (
                f"127.0.0.1:{server.port}: accepts connections"
            )


def test_health_answers_while_a_big_annotate_runs() -> None:
    # About 2 M tokens of marked prose: long enough to be in flight for a while.
    prose = "The report covers the quarter. <rule>Cite the figures.</rule> " * 130_000
    with running_server(
        SALIENCE_MAX_BODY_BYTES=str(16 << 20),
        SALIENCE_MAX_PROMPT_TOKENS="10000000",
        SALIENCE_MAX_MARKUP_ELEMENTS="1000000",
        SALIENCE_BODY_TIMEOUT_S="60",
    ) as server:
        result: dict[str, Any] = {}

        def big() -> None:
            r = httpx.post(
                f"{server.url}/annotate", json={"text": prose, "tokens": False}, timeout=300
            )
            result["status"] = r.status_code

        worker = threading.Thread(target=big)
        worker.start()
        answered_during = 0
        while worker.is_alive():
            r = httpx.get(f"{server.url}/healthz", timeout=30)
            assert r.status_code == 200
            if worker.is_alive():  # the answer came back before the annotate did
                answered_during += 1
        worker.join()
        assert result["status"] == 200
        assert answered_during >= 3, "the event loop was blocked while the annotate ran"
