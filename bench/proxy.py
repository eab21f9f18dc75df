"""What the proxy adds to a call: the same chat request sent directly to a fast local upstream
and through `salience serve` (/v1/chat/completions), interleaved in one run.

    .venv/bin/python bench/proxy.py [--requests 2000] [--method xml]

The upstream is a minimal OpenAI-compatible ASGI app under uvicorn in its own process that
answers at once (a canned completion, or a 4-event stream), so the difference is the proxy's
own cost: one more HTTP hop through uvicorn + FastAPI, parsing and rendering the messages, and
relaying the answer. Reported: p50/p99 of whole requests, and the time to the first streamed
event, with the added milliseconds and the ratio proxy/direct.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
BODY = {
    "model": "bench",
    "max_tokens": 16,
    "messages": [
        {
            "role": "system",
            "content": "You are a support assistant for a bank. <rule>Never ask for a password or "
            "a PIN.</rule> **Answer in at most three sentences.** Use plain words.",
        },
        {"role": "user", "content": "How do I reset my online banking access? " * 8},
    ],
}
UPSTREAM = textwrap.dedent(
    """
    import json
    COMPLETION = json.dumps({"id": "c", "object": "chat.completion", "model": "bench",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello there."},
                     "finish_reason": "stop"}]}).encode()
    EVENT = (b'data: {"id":"c","object":"chat.completion.chunk",'
             b'"choices":[{"index":0,"delta":{"content":"Hi"}}]}\\n\\n')

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        stream = b'"stream":true' in body.replace(b" ", b"")
        if stream:
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"text/event-stream")]})
            for _ in range(4):
                await send({"type": "http.response.body", "body": EVENT, "more_body": True})
            await send({"type": "http.response.body", "body": b"data: [DONE]\\n\\n"})
        else:
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": COMPLETION})
    """
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait(url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def timed_post(client: httpx.Client, url: str, body: dict[str, object]) -> float:
    start = time.perf_counter()
    r = client.post(url, json=body)
    r.raise_for_status()
    return time.perf_counter() - start


def first_event(client: httpx.Client, url: str, body: dict[str, object]) -> float:
    start = time.perf_counter()
    with client.stream("POST", url, json={**body, "stream": True}) as r:
        r.raise_for_status()
        elapsed = 0.0
        for _ in r.iter_raw():
            if not elapsed:
                elapsed = time.perf_counter() - start
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="per path (direct, proxy)")
    parser.add_argument("--streams", type=int, default=500, help="streamed requests per path")
    parser.add_argument("--method", default="xml", help="the proxy's text method")
    args = parser.parse_args()

    up_port, proxy_port = free_port(), free_port()
    scratch = Path(os.environ.get("TMPDIR", "/tmp")) / f"salience-bench-upstream-{up_port}.py"
    scratch.write_text(UPSTREAM, encoding="utf-8")
    upstream = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--app-dir", str(scratch.parent), scratch.stem + ":app",
         "--host", "127.0.0.1", "--port", str(up_port), "--log-level", "warning",
         "--no-access-log"],
    )  # fmt: skip
    env = {
        **os.environ,
        "SALIENCE_UPSTREAM_URL": f"http://127.0.0.1:{up_port}/v1",
        "SALIENCE_PROXY_METHOD": args.method,
        "SALIENCE_EVAL_WORKER": "false",
        "SALIENCE_LOG_LEVEL": "warning",
    }
    proxy = subprocess.Popen(
        [sys.executable, "-m", "salience", "serve", "--host", "127.0.0.1",
         "--port", str(proxy_port)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        direct_url = f"http://127.0.0.1:{up_port}/v1/chat/completions"
        proxy_url = f"http://127.0.0.1:{proxy_port}/v1/chat/completions"
        wait(f"http://127.0.0.1:{up_port}/")
        wait(f"http://127.0.0.1:{proxy_port}/healthz")
        with httpx.Client(timeout=30) as direct_client, httpx.Client(timeout=30) as proxy_client:
            check = proxy_client.post(proxy_url, json=BODY)
            print(f"proxy: X-Salience: {check.headers['x-salience']}")
            for _ in range(200):  # warm both paths (connections, caches, the JIT-less bits)
                timed_post(direct_client, direct_url, BODY)
                timed_post(proxy_client, proxy_url, BODY)
            direct: list[float] = []
            through: list[float] = []
            for i in range(args.requests):  # interleaved, alternating which goes first
                pair = [(direct, direct_client, direct_url), (through, proxy_client, proxy_url)]
                for out, client, url in pair if i % 2 == 0 else pair[::-1]:
                    out.append(timed_post(client, url, BODY))
            direct_first: list[float] = []
            through_first: list[float] = []
            for i in range(args.streams):
                pair = [
                    (direct_first, direct_client, direct_url),
                    (through_first, proxy_client, proxy_url),
                ]
                for out, client, url in pair if i % 2 == 0 else pair[::-1]:
                    out.append(first_event(client, url, BODY))
    finally:
        proxy.terminate()
        upstream.terminate()
        proxy.wait(10)
        upstream.wait(10)
        scratch.unlink(missing_ok=True)

    print(f"{args.requests} requests per path, method {args.method}; milliseconds")
    print(f"{'':22}{'direct':>10}{'proxy':>10}{'added':>10}{'ratio':>8}")
    for name, d, p in (
        ("request p50", pct(direct, 50), pct(through, 50)),
        ("request p99", pct(direct, 99), pct(through, 99)),
        ("request mean", statistics.fmean(direct), statistics.fmean(through)),
        ("first event p50", pct(direct_first, 50), pct(through_first, 50)),
        ("first event p99", pct(direct_first, 99), pct(through_first, 99)),
    ):
        print(f"{name:22}{d * 1e3:10.2f}{p * 1e3:10.2f}{(p - d) * 1e3:10.2f}{p / d:8.2f}")
    for label, d_all, p_all in (("request", direct, through), ("first event", direct_first,
                                                                through_first)):  # fmt: skip
        tails = [pct(xs, 99) / pct(xs, 50) for xs in (d_all, p_all)]
        print(f"{label} p99/p50: direct {tails[0]:.1f}, proxy {tails[1]:.1f}")
    added_p50 = (pct(through, 50) - pct(direct, 50)) * 1e3
    added_p99 = (pct(through, 99) - pct(direct, 99)) * 1e3
    print(f"proxy added: p50 {added_p50:.2f} ms, p99 {added_p99:.2f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
