"""Upstreams for the proxy tests: llama.cpp's OpenAI-compatible server over the embedded GGUF
(llama-cpp-python, installed by `make test`), and the misbehaving fake in tests/fakes."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from salience.model.loader import embedded_model_path
from tests.service.server import free_port, serving

LLAMA_MODEL = "smollm2"


@pytest.fixture(scope="session")
def llama_upstream() -> Iterator[str]:
    """A real model server on 127.0.0.1: `python -m llama_cpp.server` with the shipped model."""
    port = free_port()
    command = [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(embedded_model_path()),
        "--model_alias", LLAMA_MODEL,
        "--host", "127.0.0.1", "--port", str(port),
        "--n_ctx", "2048", "--n_threads", "2", "--verbose", "false",
    ]  # fmt: skip
    url = f"http://127.0.0.1:{port}/v1"
    with serving(command, f"{url}/models", within=120):
        yield url
