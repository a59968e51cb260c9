"""The FastAPI application: the API under ``/api/v1``, health probes, and the reviewer UI at ``/ui/``.

``create_app(settings)`` is what ``urbaneye serve`` runs and what ``urbaneye run`` mounts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from api.metrics import ApiMetrics
from urbaneye.db.session import session_factory
from urbaneye.settings import Settings, get_settings

API_PREFIX = "/api/v1"
STATIC_DIR = Path(__file__).parent / "static"
log = logging.getLogger(__name__)


class CredentialMaskFilter(logging.Filter):
    """Masks ``scheme://user:password@`` in any log line (RTSP credentials are never logged)."""

    def filter(self, record: logging.LogRecord) -> bool:
        from api.schemas.cameras import mask_text

        # Mask inside the args rather than flattening them: formatters such as uvicorn's access log
        # read record.args by position.
        if isinstance(record.args, tuple):
            record.args = tuple(mask_text(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: mask_text(v) if isinstance(v, str) else v for k, v in record.args.items()}
        if isinstance(record.msg, str):
            record.msg = mask_text(record.msg)
        return True


def install_log_masking() -> None:
    mask = CredentialMaskFilter()
    for name in ("", "api", "uvicorn", "uvicorn.access", "uvicorn.error", "urbaneye", "streams"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, CredentialMaskFilter) for f in logger.filters):
            logger.addFilter(mask)
        for handler in logger.handlers:
            if not any(isinstance(f, CredentialMaskFilter) for f in handler.filters):
                handler.addFilter(mask)


class MetricsMiddleware:
    """Counts requests and their latency per route template (not per URL, so ids don't explode labels)."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = {"code": 500}

        async def send_wrapper(message: dict) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self.metrics.requests.labels(scope["method"], _route_template(scope), str(status["code"])).inc()
            self.metrics.latency_s.labels(scope["method"], _route_template(scope)).observe(
                time.perf_counter() - t0
            )


def _route_template(scope: Scope) -> str:
    endpoint = scope.get("endpoint")
    app = scope.get("app")
    if endpoint is not None and app is not None:
        templates = getattr(app.state, "route_templates", None)
        if templates is None:
            templates = app.state.route_templates = {r.endpoint: r.path for r in iter_api_routes(app)}
        if endpoint in templates:
            return templates[endpoint]
    return "/ui" if scope["path"].startswith("/ui") else "other"


@dataclass(frozen=True)
class RouteInfo:
    path: str  # full template, e.g. /api/v1/cases/{case_id}
    methods: frozenset[str]
    endpoint: Callable
    dependant: Any


def iter_api_routes(app: FastAPI) -> Iterator[RouteInfo]:
    """Every API route with its full path, whether FastAPI keeps included routers flattened (older
    versions) or as included-router objects with effective route contexts (newer ones)."""
    for route in app.routes:
        contexts = getattr(route, "effective_route_contexts", None)
        if contexts is not None:
            for ctx in contexts():
                yield RouteInfo(ctx.path, frozenset(ctx.methods), ctx.endpoint, ctx.dependant)
        elif isinstance(route, APIRoute):
            yield RouteInfo(route.path, frozenset(route.methods), route.endpoint, route.dependant)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app for ``settings`` (default: the environment's). Tables must exist (migrations)."""
    from api.routes import auth, cameras, cases, evidence, health, hotline, memory, models, stats, users

    settings = settings or get_settings()
    app = FastAPI(
        title="UrbanEye API",
        version="1.0",
        description="City-management video capture: cameras and zones, AI cases and their review, statistics, "
        "models. Log in at POST /api/v1/auth/login and send the token as 'Authorization: Bearer …'.",
        docs_url=None,  # Swagger UI loads from a CDN; the bureau network has none. /openapi.json stays.
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.sessionmaker = session_factory(settings.db_url)
    app.state.store = None
    app.state.metrics = ApiMetrics()

    for router in (
        auth.router,
        users.router,
        cameras.router,
        memory.router,
        cases.router,
        stats.router,
        models.router,
        hotline.router,
    ):
        app.include_router(router, prefix=API_PREFIX)
    app.include_router(health.router)
    app.include_router(evidence.router)
    app.mount("/ui", StaticFiles(directory=STATIC_DIR, html=True), name="ui")

    @app.get("/", include_in_schema=False)
    def root(request: Request) -> RedirectResponse:
        return RedirectResponse("/ui/")

    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    install_log_masking()
    return app
