"""Load on the real service over loopback: requests/s and latency, /annotate against /healthz.

Starts ``salience serve`` on a free 127.0.0.1 port, then, for each case, runs a bounded load at
concurrency 16 for a fixed time and reads requests/s, p50 and p99:

    healthz        GET /healthz (the floor: the framework and the loopback, no work)
    annotate-500   POST /annotate, a ~500-token marked-up prompt (tokens and offsets returned)
    annotate-5k    POST /annotate, a ~5k-token prompt

The last line reads: annotate-500: <r> req/s, p99 <x> ms, p99/p50 <y>

The load generator is wrk (Debian package ``wrk``) when it is installed, else an asyncio httpx
client (which itself costs CPU on the same two cores, so it reports lower figures).

    .venv/bin/python bench/service.py [--seconds 10] [--connections 16] [--workers 1] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
PROMPT = (ROOT / "examples" / "prompt.md").read_text(encoding="utf-8")


def prompt_of(tokens: int) -> str:
    """About ``tokens`` cl100k tokens of the example prompt, repeated (~113 tokens each)."""
    from salience.markup import load_encoding, parse

    enc = load_encoding("cl100k_base")
    out = PROMPT
    while len(enc.encoding.encode_ordinary(parse(out).text)) < tokens:
        out += "\n\n" + PROMPT
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_server(port: int, workers: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "SALIENCE_LOG_LEVEL": "warning", "SALIENCE_WORKERS": str(workers)}
    process = subprocess.Popen(
        [sys.executable, "-m", "salience", "serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("the server did not become ready")


def run_wrk(url: str, body: bytes | None, seconds: int, connections: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        args = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency"]
        if body is not None:
            (Path(tmp) / "body.json").write_bytes(body)
            script = Path(tmp) / "post.lua"
            script.write_text(
                'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                f'local f = io.open("{tmp}/body.json", "rb"); wrk.body = f:read("*a"); f:close()\n'
            )
            args += ["-s", str(script)]
        out = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _wrk_ms(re.search(r"50%\s+([\d.]+\w+)", out).group(1))  # type: ignore[union-attr]
    p99 = _wrk_ms(re.search(r"99%\s+([\d.]+\w+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise RuntimeError(f"{errors.group(1)} requests failed:\n{out}")
    return {"rps": rps, "p50_ms": p50, "p99_ms": p99}


def _wrk_ms(value: str) -> float:
    number, unit = re.match(r"([\d.]+)(\w+)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def run_httpx(url: str, body: bytes | None, seconds: int, connections: int) -> dict[str, float]:
    async def worker(client: httpx.AsyncClient, stop: float, latencies: list[float]) -> None:
        while time.perf_counter() < stop:
            start = time.perf_counter()
            if body is None:
                r = await client.get(url)
            else:
                r = await client.post(
                    url, content=body, headers={"content-type": "application/json"}
                )
            r.raise_for_status()
            latencies.append(time.perf_counter() - start)

    async def main() -> list[float]:
        latencies: list[float] = []
        limits = httpx.Limits(max_connections=connections)
        async with httpx.AsyncClient(limits=limits, timeout=30) as client:
            stop = time.perf_counter() + seconds
            await asyncio.gather(*(worker(client, stop, latencies) for _ in range(connections)))
        return latencies

    latencies = asyncio.run(main())
    cuts = statistics.quantiles(latencies, n=100)
    return {"rps": len(latencies) / seconds, "p50_ms": cuts[49] * 1e3, "p99_ms": cuts[98] * 1e3}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    load = run_wrk if shutil.which("wrk") else run_httpx
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cases: list[tuple[str, str, bytes | None]] = [
        ("healthz", f"{base}/healthz", None),
        ("annotate-500", f"{base}/annotate", json.dumps({"text": prompt_of(500)}).encode()),
        ("annotate-5k", f"{base}/annotate", json.dumps({"text": prompt_of(5000)}).encode()),
    ]
    server = start_server(port, args.workers)
    rows: list[dict[str, Any]] = []
    try:
        for name, url, body in cases:
            if body is not None:  # the prompt's size in tokens, as the server counts it
                tokens = httpx.post(
                    url, content=body, headers={"content-type": "application/json"}
                ).json()
                size = tokens["token_count"]
            else:
                size = 0
            result = load(url, body, args.seconds, args.connections)
            rows.append({"case": name, "tokens": size, **result})
    finally:
        server.terminate()
        server.wait(timeout=10)
    floor = rows[0]["rps"]
    for row in rows:
        row["rps_vs_healthz"] = row["rps"] / floor
        row["p99_over_p50"] = row["p99_ms"] / row["p50_ms"]
    headline = next(r for r in rows if r["case"] == "annotate-500")
    last = (
        f"annotate-500: {headline['rps']:.0f} req/s, p99 {headline['p99_ms']:.1f} ms, "
        f"p99/p50 {headline['p99_over_p50']:.1f}"
    )
    if args.json:
        print(json.dumps({"generator": load.__name__, "rows": rows}, indent=2))
        print(last)
        return 0
    print(
        f"load: {load.__name__[4:]}, {args.connections} connections, {args.seconds} s per case, "
        f"{args.workers} server worker(s)"
    )
    print(
        f"{'case':<14}{'tokens':>8}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'p99/p50':>9}"
        f"{'vs healthz':>12}"
    )
    for r in rows:
        print(
            f"{r['case']:<14}{r['tokens']:>8}{r['rps']:>10.0f}{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}"
            f"{r['p99_over_p50']:>9.1f}{r['rps_vs_healthz']:>12.2f}"
        )
    print(last)
    return 0


if __name__ == "__main__":
    sys.exit(main())
