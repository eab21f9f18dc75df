"""Upstreams for the proxy tests: llama.cpp's OpenAI-compatible server over the embedded GGUF
(llama-cpp-python, installed by `make test`), and the misbehaving fake in tests/fakes."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from model.loader import embedded_model_path
from tests.service.server import free_port

LLAMA_MODEL = "smollm2"


@pytest.fixture(scope="session")
def llama_upstream() -> Iterator[str]:
    """A real model server on 127.0.0.1: `python -m llama_cpp.server` with the shipped model."""
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable, "-m", "llama_cpp.server",
            "--model", str(embedded_model_path()),
            "--model_alias", LLAMA_MODEL,
            "--host", "127.0.0.1", "--port", str(port),
            "--n_ctx", "2048", "--n_threads", "2", "--verbose", "false",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                err = process.stderr.read().decode() if process.stderr else ""
                raise RuntimeError(f"llama_cpp.server exited with {process.returncode}: {err}")
            try:
                if httpx.get(f"{url}/models", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("llama_cpp.server did not answer within 120 s")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
