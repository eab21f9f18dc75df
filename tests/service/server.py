"""A real salience server for the tests: ``salience serve`` in its own process on 127.0.0.1."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]

# Small limits, so that the tests can reach them cheaply.
TEST_SETTINGS = {
    "SALIENCE_MAX_BODY_BYTES": "65536",
    "SALIENCE_MAX_PROMPT_TOKENS": "4000",
    "SALIENCE_MAX_BATCH_SIZE": "8",
    "SALIENCE_MAX_MESSAGES": "16",
    "SALIENCE_MAX_MARKUP_ELEMENTS": "1000",
    "SALIENCE_BODY_TIMEOUT_S": "1.5",
    "SALIENCE_LOG_LEVEL": "warning",
    # eval jobs: tiny grids only, so that fuzzing cannot queue real work
    "SALIENCE_MAX_EVAL_JOBS": "2",
    "SALIENCE_MAX_EVAL_SAMPLES": "2",
    # the local model loads on first use, not at start-up: most tests never need it
    "SALIENCE_PRELOAD_MODEL": "false",
}


@dataclass
class Server:
    url: str
    port: int
    process: subprocess.Popen[bytes]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def serving(
    command: list[str], ready_url: str, env: dict[str, str] | None = None, within: float = 60
) -> Iterator[subprocess.Popen[bytes]]:
    """``command`` in its own process, once ``ready_url`` answers 200 (polled; the process's
    stderr is the error if it exits first), terminated (then killed) at the end. Every real
    server the tests start comes up through here: salience's own and llama.cpp's."""
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + within
        while True:
            if process.poll() is not None:
                err = process.stderr.read().decode() if process.stderr else ""
                raise RuntimeError(f"{command[:4]} exited with {process.returncode}: {err}")
            try:
                if httpx.get(ready_url, timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{ready_url} did not answer 200 within {within:.0f} s")
            time.sleep(0.1)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def running_server(**env: str) -> Iterator[Server]:
    port = free_port()
    scratch = tempfile.mkdtemp(prefix="salience-test-")
    environment = {
        **os.environ,
        **TEST_SETTINGS,
        "SALIENCE_EVAL_DB": os.path.join(scratch, "evals.sqlite3"),
        **env,
    }
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "salience", "serve", "--host", "127.0.0.1", "--port",
               str(port)]  # fmt: skip
    with serving(command, f"{url}/healthz", environment) as process:
        yield Server(url, port, process)
