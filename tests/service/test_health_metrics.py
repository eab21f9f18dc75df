"""Health, readiness, metrics, encodings, batch and the OpenAPI document."""

from __future__ import annotations

import httpx

import salience

from .helpers import problem
from .server import running_server


def test_healthz_and_readyz(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok", "version": salience.__version__}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"]["encoding"] == "cl100k_base: loaded"


def test_readyz_is_503_when_the_configured_model_is_missing() -> None:
    with running_server(SALIENCE_MODEL_PATH="/nonexistent/model.gguf") as server:
        r = httpx.get(f"{server.url}/readyz")
        body = problem(r, 503, "not-ready")
        assert body["checks"]["model"] == "/nonexistent/model.gguf: missing"
        assert httpx.get(f"{server.url}/healthz").status_code == 200


def test_readyz_is_503_when_the_default_encoding_is_not_here() -> None:
    with running_server(
        SALIENCE_DEFAULT_ENCODING="o200k_base", TIKTOKEN_CACHE_DIR="/nonexistent"
    ) as server:
        body = problem(httpx.get(f"{server.url}/readyz"), 503, "not-ready")
        assert "o200k_base.tiktoken" in body["checks"]["encoding"]


def samples(exposition: str) -> dict[str, float]:
    """Prometheus text exposition as {"name{labels}": value}."""
    out = {}
    for line in exposition.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            out[key] = float(value)
    return out


def test_metrics_count_requests_by_route_and_status_and_what_was_annotated(
    client: httpx.Client,
) -> None:
    before = samples(client.get("/metrics").text)
    client.post("/annotate", json={"text": "<rule>a</rule> <background>b</background>"})
    client.post("/annotate", content=b"x", headers={"content-type": "text/plain"})
    response = client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    after = samples(response.text)
    ok = 'salience_http_requests_total{method="POST",route="/annotate",status="200"}'
    refused = 'salience_http_requests_total{method="POST",route="/annotate",status="415"}'
    assert after[ok] == before.get(ok, 0) + 1
    assert after[refused] == before.get(refused, 0) + 1
    assert after['salience_spans_annotated_total{level="hard"}'] >= 1
    assert after['salience_spans_annotated_total{level="low"}'] >= 1
    tokens = "salience_tokens_annotated_total"
    # "a", " ", "b" and four markers; the other test's requests do not run in between
    assert after[tokens] == before.get(tokens, 0) + 7
    bucket = (
        'salience_http_request_duration_seconds_bucket{le="+Inf",method="POST",route="/annotate"}'
    )
    assert after[bucket] >= 2


def test_encodings_lists_what_is_here_and_why_the_rest_is_not(client: httpx.Client) -> None:
    body = client.get("/encodings").json()
    assert body["default"] == "cl100k_base"
    [cl100k] = [e for e in body["encodings"] if e["name"] == "cl100k_base"]
    assert cl100k["importance_name"] == "cl100k_base_imp"
    ids = {t["token"]: t["id"] for t in cl100k["special_tokens"]}
    assert ids["<|imp:hard|>"] == 100277 and ids["<|/imp:low|>"] == 100284
    missing = {e["name"]: e["reason"] for e in body["unavailable"]}
    assert "o200k_base.tiktoken" in missing["o200k_base"]


def test_batch_answers_each_item_on_its_own(client: httpx.Client) -> None:
    items = [
        {"text": "<rule>one</rule>"},
        {"text": "<rule>two", "strict": True},
        {"messages": [{"role": "system", "content": "**three**"}]},
        {"text": "x", "encoding": "o200k_base"},
    ]
    r = client.post("/annotate/batch", json={"requests": items})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [item["ok"] for item in results] == [True, False, True, False]
    single = client.post("/annotate", json=items[0]).json()
    assert results[0]["result"] == single
    assert results[1]["error"]["type"] == "urn:salience:problem:unclosed-tag"
    assert results[1]["error"]["offset"] == 0
    assert results[2]["result"]["messages"][0]["spans"][0]["level"] == "high"
    assert results[3]["error"]["status"] == 422


def test_batch_over_the_limit_is_422(client: httpx.Client) -> None:
    body = problem(
        client.post("/annotate/batch", json={"requests": [{"text": "x"}] * 9}),
        422,
        "batch-too-large",
    )
    assert body["limit"] == 8


def test_openapi_and_docs_describe_the_api_with_examples(client: httpx.Client) -> None:
    spec = client.get("/openapi.json").json()
    for path in ("/annotate", "/annotate/batch", "/encodings", "/healthz", "/readyz", "/metrics"):
        assert path in spec["paths"], path
    annotate = spec["paths"]["/annotate"]["post"]
    assert {"200", "400", "413", "415", "422"} <= set(annotate["responses"])
    request_schema = spec["components"]["schemas"]["AnnotateRequest"]
    assert request_schema["examples"][0]["text"].startswith("Summarise")
    docs = client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


def test_every_route_summary_says_what_it_does(client: httpx.Client) -> None:
    """No FastAPI default ("Submit", "Get Job": the function's name in title case)."""
    spec = client.get("/openapi.json").json()
    for path, ops in spec["paths"].items():
        for verb, op in ops.items():
            summary = op.get("summary", "")
            assert len(summary.split()) >= 3, (verb, path, summary)
