"""Liveness, readiness (database, broker, evidence store) and Prometheus metrics. No auth: probes and
scrapers call these, and they expose no case data."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request, Response
from kombu import Connection
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from sqlalchemy import text

from api.deps import get_store

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str


class Check(BaseModel):
    ok: bool
    latency_ms: float
    error: str = ""


class Readiness(BaseModel):
    status: str  # ready | not_ready
    checks: dict[str, Check]


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    return Health(status="ok")


def _check(fn) -> Check:  # noqa: ANN001
    t0 = time.perf_counter()
    try:
        fn()
        return Check(ok=True, latency_ms=round((time.perf_counter() - t0) * 1000, 1))
    except Exception as exc:  # a probe reports any failure, it must not raise
        return Check(
            ok=False,
            latency_ms=round((time.perf_counter() - t0) * 1000, 1),
            error=f"{type(exc).__name__}: {exc}"[:300],
        )


def _database(request: Request) -> None:
    with request.app.state.sessionmaker() as session:
        session.execute(text("SELECT 1"))


def _broker(request: Request) -> None:
    url = request.app.state.settings.broker_url
    if url.startswith("memory://"):
        return  # embedded: tasks run in-process
    with Connection(url, connect_timeout=2) as conn:
        conn.ensure_connection(max_retries=1, timeout=2)


def _store(request: Request) -> None:
    store = get_store(request)
    store.exists("readyz-probe")


@router.get(
    "/readyz", response_model=Readiness, responses={503: {"model": Readiness, "description": "not ready"}}
)
def readyz(request: Request, response: Response) -> Readiness:
    checks = {
        "database": _check(lambda: _database(request)),
        "broker": _check(lambda: _broker(request)),
        "evidence_store": _check(lambda: _store(request)),
    }
    ready = all(c.ok for c in checks.values())
    response.status_code = 200 if ready else 503
    return Readiness(status="ready" if ready else "not_ready", checks=checks)


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
def metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
