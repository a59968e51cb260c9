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
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.auth import AuthError, decode_token
from api.metrics import ApiMetrics
from api.routes import (
    annotations,
    auth,
    cameras,
    cases,
    evidence,
    health,
    hotline,
    kinds,
    live,
    memory,
    models,
    rechecks,
    stats,
    strip,
    users,
)
from api.routes.auth import LOGIN_MAX_BODY_BYTES
from api.routes.hotline import CALLBACK_MAX_BODY_BYTES
from urbaneye.db.session import session_factory
from urbaneye.redact import mask_text
from urbaneye.settings import Settings, get_settings

API_PREFIX = "/api/v1"
STATIC_DIR = Path(__file__).parent / "static"
log = logging.getLogger(__name__)


class CredentialMaskFilter(logging.Filter):
    """Masks credentials in any log line: ``scheme://user:password@``, secret query values, and the
    signature of evidence links (the access log never holds a usable link)."""

    def filter(self, record: logging.LogRecord) -> bool:
        # Mask inside the args rather than flattening them: formatters such as uvicorn's access log
        # read record.args by position.
        if isinstance(record.args, tuple):
            record.args = tuple(mask_text(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: mask_text(v) if isinstance(v, str) else v for k, v in record.args.items()}
        if isinstance(record.msg, str) and not record.args:
            # With args, msg is a format template ("Uvicorn running on %s://%s:%d"): masking it would
            # break the placeholders; the data is in the args, masked above.
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


def route_body_limits() -> dict[str, int]:
    """Routes whose bodies are capped below ``settings.max_body_bytes``: the two public ones."""
    return {
        f"{API_PREFIX}/auth/login": LOGIN_MAX_BODY_BYTES,
        f"{API_PREFIX}/hotline/callback": CALLBACK_MAX_BODY_BYTES,
    }


#: API routes that take a body without a user token: the login form and the HMAC-signed hotline
#: callback (each has its own small body limit). Every other request with a body needs a valid token
#: before a byte of its body is read (tests/api/test_security.py keeps this list complete).
PUBLIC_BODY_PATHS = frozenset({f"{API_PREFIX}/auth/login", f"{API_PREFIX}/hotline/callback"})


class AuthBeforeBodyMiddleware:
    """Refuses (401) a request that carries a body to a token-protected API route unless its bearer
    token verifies (signature, expiry, kind), before FastAPI reads and parses the body. The user row
    is still checked by the route's dependencies (deactivation, token version, role)."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self._needs_token(scope):
            await self.app(scope, receive, send)
            return
        auth = Headers(scope=scope).get("authorization", "")
        scheme, _, token = auth.partition(" ")
        try:
            if scheme.lower() != "bearer" or not token.strip():
                raise AuthError(
                    "not logged in; send 'Authorization: Bearer <token>' from POST /api/v1/auth/login"
                )
            decode_token(token.strip(), self.settings)
        except AuthError as exc:
            response = JSONResponse(
                {"detail": str(exc)}, status_code=exc.status, headers={"WWW-Authenticate": "Bearer"}
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    @staticmethod
    def _needs_token(scope: Scope) -> bool:
        path: str = scope["path"]
        if not path.startswith(API_PREFIX + "/") or path.rstrip("/") in PUBLIC_BODY_PATHS:
            return False
        headers = Headers(scope=scope)
        length = headers.get("content-length")
        return "transfer-encoding" in headers or (length is not None and length.strip() not in ("", "0"))


#: Sent with every response; the UI additionally gets its content security policy below.
BASE_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
#: API answers and evidence images are never documents to run or frame.
STRICT_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"


def ui_csp(settings: Settings) -> str:
    """The reviewer UI's policy: scripts and styles only from our own files (no inline script or
    handler anywhere), images also from the S3 store that presigned evidence links point at."""
    img = ["'self'", "data:", "blob:"]
    if settings.evidence_backend == "s3":
        img.append(f"{'https' if settings.s3_secure else 'http'}://{settings.s3_endpoint}")
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; "
        f"img-src {' '.join(img)}; connect-src 'self'; object-src 'none'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    )


class SecurityHeadersMiddleware:
    """Adds ``BASE_SECURITY_HEADERS`` and a content security policy to every response."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.ui_csp = ui_csp(settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        csp = self.ui_csp if path == "/" or path == "/ui" or path.startswith("/ui/") else STRICT_CSP

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in BASE_SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
                headers.setdefault("Content-Security-Policy", csp)
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BodyTooLarge(StarletteHTTPException):
    """A request body passed its route's limit (answer 413). An HTTPException, so FastAPI's body parsing
    and handlers that read the body themselves pass it on to the normal error response."""

    def __init__(self, limit_bytes: int) -> None:
        super().__init__(
            413,
            f"request body is larger than {limit_bytes} bytes, the limit of this route; send less "
            "(split a bulk request)",
        )


class BodyLimitMiddleware:
    """Caps request bodies per route (``limits`` by path, else ``default_bytes``) while they stream in:
    a ``Content-Length`` over the limit is answered 413 before a byte of the body is read, and a
    chunked (or lying) body as soon as the bytes received pass the limit. Nothing past the limit is
    ever buffered."""

    def __init__(self, app: ASGIApp, default_bytes: int, limits: dict[str, int]) -> None:
        self.app = app
        self.default_bytes = default_bytes
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limits.get(scope["path"].rstrip("/"), self.default_bytes)
        length = Headers(scope=scope).get("content-length")
        if length is not None and length.strip().isdigit() and int(length) > limit:
            await self._refuse(scope, receive, send, limit)
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if started:
                raise
            await self._refuse(scope, receive, send, limit)

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        exc = BodyTooLarge(limit)
        await JSONResponse({"detail": exc.detail}, status_code=413, headers={"Connection": "close"})(
            scope, receive, send
        )


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app for ``settings`` (default: the environment's). Tables must exist (migrations)."""
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
        live.router,
        kinds.router,
        strip.router,
        annotations.router,
        rechecks.router,
    ):
        app.include_router(router, prefix=API_PREFIX)
    app.include_router(health.router)
    app.include_router(evidence.router)
    app.mount("/ui", StaticFiles(directory=STATIC_DIR, html=True), name="ui")

    @app.get("/", include_in_schema=False)
    def root(request: Request) -> RedirectResponse:
        return RedirectResponse("/ui/")

    # innermost first: a token is checked before the body is read, and the body is capped as it streams
    app.add_middleware(AuthBeforeBodyMiddleware, settings=settings)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    app.add_middleware(BodyLimitMiddleware, default_bytes=settings.max_body_bytes, limits=route_body_limits())
    app.add_middleware(SecurityHeadersMiddleware, settings=settings)
    install_log_masking()
    return app
