"""Resident memory of one server once every user of the local model has used it.

Starts ``salience serve`` from a source tree (this one, or ``--root`` another checkout, say the
commit before the shared model), then, in order: ``/model/bias`` (uniform), one local chat
completion (``salience-local/none``, 2 tokens) and one eval job (1 item, ``none``, 2 tokens). It
prints the process's RSS after each step and its peak (VmHWM), from /proc.

    .venv/bin/python bench/model_memory.py [--root DIR]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def rss_mib(pid: int) -> dict[str, float]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) / 1024
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--root", type=Path, default=ROOT, help="source tree to serve from")
    args = parser.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    scratch = tempfile.mkdtemp(prefix="salience-mem-")
    env = {
        **os.environ,
        "SALIENCE_EVAL_DB": os.path.join(scratch, "evals.sqlite3"),
        "SALIENCE_PRELOAD_MODEL": "false",  # load on first use, as before the shared model
        "SALIENCE_LOG_LEVEL": "warning",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "salience", "serve", "--port", str(port)],
        cwd=args.root,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        print(f"serving from {args.root}")
        print(f"started: {rss_mib(process.pid)}")
        messages = [
            {"role": "system", "content": "<rule>Answer in French.</rule>"},
            {"role": "user", "content": "Say hello."},
        ]
        with httpx.Client(base_url=url, timeout=600) as client:
            r = client.post("/model/bias", json={"messages": messages, "method": "uniform"})
            r.raise_for_status()
            print(f"after /model/bias: {rss_mib(process.pid)}")
            r = client.post(
                "/v1/chat/completions",
                json={"model": "salience-local/none", "messages": messages, "max_tokens": 2},
            )
            r.raise_for_status()
            print(f"after a local completion: {rss_mib(process.pid)}")
            job = client.post(
                "/eval",
                json={"items": 1, "lengths": [0], "methods": ["none"], "max_new_tokens": 2},
            ).json()
            while client.get(f"/eval/{job['id']}").json()["status"] not in (
                "done",
                "failed",
                "cancelled",
            ):
                time.sleep(0.5)
            final = rss_mib(process.pid)
            print(f"after an eval job: {final}")
        print(f"memory: RSS {final['VmRSS']:.0f} MiB, peak {final['VmHWM']:.0f} MiB")
    finally:
        process.terminate()
        process.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
