"""Shared fixtures: real services on loopback (PostgreSQL, Redis, S3 over HTTP via moto)."""

from __future__ import annotations

import contextlib
import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

PG_ADMIN_URL = os.environ.get("URBANEYE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REDIS_HOST = os.environ.get("URBANEYE_TEST_REDIS_HOST", "127.0.0.1")

os.environ.setdefault("URBANEYE_ENVIRONMENT", "test")
os.environ.setdefault("YOLO_OFFLINE", "1")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def settings_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """Point settings at a temp data dir; returns a function to set more ``URBANEYE_*`` values."""
    from urbaneye.cases.uploads import stop_uploaders
    from urbaneye.settings import get_settings

    def apply(**values: object) -> object:
        for key, value in values.items():
            monkeypatch.setenv(f"URBANEYE_{key.upper()}", str(value))
        get_settings.cache_clear()
        return get_settings()

    apply(data_dir=tmp_path / "var")
    yield apply
    stop_uploaders()  # an uploader thread must not outlive its test (retrying against a dropped database)
    get_settings.cache_clear()


@contextmanager
def scratch_database() -> Iterator[str]:
    """A fresh, empty PostgreSQL database, dropped (connections terminated) afterwards."""
    from sqlalchemy import create_engine, text

    name = f"ue_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        yield url
    finally:
        from urbaneye.db.session import get_engine

        with contextlib.suppress(Exception):
            get_engine(url).dispose()
        with admin.connect() as conn:
            conn.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"), {"n": name}
            )
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test; dropped afterwards."""
    with scratch_database() as url:
        yield url


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A Redis database number of its own, flushed before and after."""
    import redis

    db = 1 + (uuid.uuid4().int % 14)
    url = f"redis://{REDIS_HOST}:6379/{db}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()


@pytest.fixture
def s3_server() -> Iterator[dict[str, str]]:
    """moto's S3 server on a loopback port: a real S3 protocol endpoint for the minio SDK."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield {
            "endpoint": f"127.0.0.1:{port}",
            "access_key": "testing",
            "secret_key": "testing",
            "region": "us-east-1",
            "server": server,
        }
    finally:
        server.stop()
