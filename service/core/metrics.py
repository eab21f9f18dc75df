"""Prometheus metrics: request counts and latencies by route and status, and what was annotated.

Each app owns its registry (tests start several apps in one process). ``MetricsMiddleware`` is a
plain ASGI wrapper, outermost, so it also counts what the body guard refuses. Routes are labelled
by their template (``/annotate``), never by the raw path, so that the label set stays bounded.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "salience_http_requests",
            "HTTP requests answered, by route template, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "salience_http_request_duration_seconds",
            "Time from request start to the last byte of the response, by route and method.",
            ["route", "method"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.tokens = self._counter(
            "salience_tokens_annotated", "Tokens produced by annotation, markers included."
        )
        self.spans = self._counter(
            "salience_spans_annotated", "Importance spans found, by level.", "level"
        )
        self.prompts = self._counter(
            "salience_prompts_annotated", "Prompts (texts or chat requests) annotated."
        )
        self.model_loads = self._counter(
            "salience_model_loads",
            "Local models loaded into this process (one is shared by every user of it).",
        )

        self.local_waiting = Gauge(
            "salience_local_generations",
            "Local generations admitted and not yet given back (running or waiting their turn).",
            registry=self.registry,
        )

    def _counter(self, name: str, documentation: str, *labels: str) -> Counter:
        return Counter(name, documentation, labels, registry=self.registry)


class MetricsMiddleware:
    def __init__(self, app: ASGIApp, *, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            route = scope.get("route")
            label = getattr(route, "path", None) or "<unmatched>"
            method = scope["method"]
            self.metrics.requests.labels(label, method, str(status)).inc()
            self.metrics.latency.labels(label, method).observe(time.perf_counter() - start)
