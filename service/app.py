"""The FastAPI application: settings, routes, error mapping and metrics, assembled.

uvicorn service.app:create_app --factory
"""

from __future__ import annotations

import gc
import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles

import salience
from salience.markup import EncodingUnavailableError, load_encoding

from .annotator import Annotator
from .api.routes import annotate, encodings, eval, health, model, openai
from .core import problems
from .core.config import Settings
from .core.metrics import Metrics, MetricsMiddleware
from .core.offload import parse_pool
from .engine import LocalEngine
from .jobs import JobManager
from .proxy.errors import invalid
from .proxy.upstream import Upstream
from .shared_model import SharedModel

log = logging.getLogger("salience.service")
SWITCH_INTERVAL_S = 0.0005
STATIC = Path(__file__).resolve().parent / "static"

DESCRIPTION = """\
salience parses importance markup in prompts — `<rule>` tags, Markdown emphasis and callouts,
HTML rich text — into spans and importance special tokens.

Every error is `application/problem+json` with `type`, `title`, `status`, `detail`, and, where it
applies, the character `offset`, `line` and `column` of the fault and the `message_index`.
"""


def _docs_assets() -> Path:
    """Swagger UI 5 (it reads the OpenAPI 3.1 that FastAPI writes), as fastapi-offline ships it;
    only its static files are used."""
    import fastapi_offline

    return Path(fastapi_offline.__file__).parent / "static"


DOCS_ASSETS = _docs_assets()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Parses run on worker threads, which hold the GIL while they work; the event loop waits
        # for it at every step of every other request, up to the switch interval each time
        # (5 ms by default: /healthz took 100-400 ms behind a hostile batch). A shorter interval
        # gives the loop its turn sooner (bench/adversarial.py, BENCHMARKS.md).
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        try:
            load_encoding(settings.default_encoding)  # warm: the first request should not pay
        except EncodingUnavailableError as error:
            log.error("default encoding unavailable; /readyz will say so: %s", error)
        # what start-up made (modules, the app, the encodings) lives as long as the process:
        # frozen out of the collector's reach, so a full collection walks only what requests
        # make (the model, loaded later, is frozen when it is: service.shared_model)
        gc.freeze()
        pool = parse_pool(settings.parse_threads)
        if settings.preload_model:
            shared.start_loading()  # /readyz says "loading" until it is done
        jobs = None
        if settings.eval_worker:
            from salience.evals.backends import LocalBackend

            jobs = JobManager(
                settings.eval_db,
                lambda: LocalBackend(lm=shared.get()),
                settings.max_eval_jobs,
                settings.max_eval_samples,
            )
            jobs.start()
        app.state.jobs = jobs
        app.state.parse_pool = pool
        app.state.upstream = _upstream_client(settings)
        try:
            yield
        finally:
            if app.state.upstream is not None:
                await app.state.upstream.close()
            pool.shutdown(wait=False, cancel_futures=True)
            if jobs is not None:
                jobs.stop()

    app = FastAPI(
        title="salience",
        version=salience.__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served below from packaged assets: the stock page loads them from a CDN
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.annotator = Annotator(settings, metrics)
    app.state.upstream = None
    # One local model per process: the eval worker, the local proxy engine and /model/bias
    # all use this one.
    shared = SharedModel(settings.model_path, on_load=metrics.model_loads.inc)
    app.state.model = shared
    app.state.local = LocalEngine(shared, settings.local_max_waiting, settings.local_max_tokens)
    metrics.local_waiting.set_function(lambda: app.state.local.waiting)
    problems.install(app, {"/v1/": invalid})  # the proxy answers in OpenAI's dialect
    app.include_router(annotate.router)
    app.include_router(encodings.router)
    app.include_router(health.router)
    app.include_router(eval.router)
    app.include_router(openai.router)
    app.include_router(model.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.mount("/docs-assets", StaticFiles(directory=DOCS_ASSETS), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        """Swagger UI for the API, from assets this package installs (works offline)."""
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title="salience — API",
            swagger_js_url="/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url="/docs-assets/favicon.png",
        )

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        """The page: annotate a prompt, see spans, tokens and bias; watch eval jobs."""
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app


def _upstream_client(settings: Settings) -> Upstream | None:
    """The proxy's one pooled upstream: bounded connections, every phase timed."""
    if not settings.upstream_url:
        return None
    return Upstream(
        settings.upstream_url,
        settings.upstream_timeout_s,
        settings.upstream_connect_timeout_s,
        settings.upstream_max_connections,
    )
