"""Fixtures for the cases/evidence/hotline area: factories, migrated databases, a fake hotline intake,
Celery worker subprocesses and a Redis we can stop and start."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import free_port
from urbaneye.cases.spool import CaseContext, EvidenceFrame
from vision.config import LocationConfig
from vision.types import Escalation, ViolationEvent, ViolationKind

REPO = Path(__file__).resolve().parents[2]
T0 = dt.datetime(2024, 6, 1, 10, 0, 0, tzinfo=dt.UTC)


def tiny_jpeg(seed: int = 0, size_px: int = 32) -> bytes:
    rng = np.random.default_rng(seed)
    ok, buf = cv2.imencode(".jpg", rng.integers(0, 255, (size_px, size_px, 3), dtype=np.uint8))
    assert ok
    return buf.tobytes()


def make_event(
    violation_id: str = "cam-1:z1:7",
    event: str = "opened",
    kind: ViolationKind = ViolationKind.STREET_VENDING,
    ts_s: float = 400.0,
    first_seen_s: float = 40.0,
    camera_id: str = "cam-1",
) -> ViolationEvent:
    return ViolationEvent(
        event=event,
        violation_id=violation_id,
        camera_id=camera_id,
        zone_id="z1",
        kind=kind,
        ts_s=ts_s,
        bbox_xyxy=(10.0, 20.0, 110.0, 220.0),
        score=0.81,
        gbt_code={"street_vending": "0501", "bike_misparking": "0506", "exposed_garbage": "0102"}.get(
            str(kind), "0510"
        ),
        escalation=Escalation.BLUE,
        dwell_s=ts_s - first_seen_s,
        first_seen_s=first_seen_s,
        evidence_request=event == "opened",
    )


def make_frames(
    event: ViolationEvent, seqs: tuple[int, ...] = (1, 2), gap_s: float = 360.0
) -> list[EvidenceFrame]:
    frames = []
    for i, seq in enumerate(seqs):
        ts = T0 + dt.timedelta(seconds=gap_s * i)
        for j, variant in enumerate(("clean", "annotated", "crop")):
            frames.append(
                EvidenceFrame(seq, variant, tiny_jpeg(seq * 10 + j + hash(event.violation_id) % 97), ts)
            )
    return frames


def make_context(**changes) -> CaseContext:
    ctx = CaseContext(
        camera_id="cam-1",
        camera_name="人民路口",
        model_version="bootstrap-abc123",
        frame_wh=(1280, 720),
        zone_name="东北角",
        location=LocationConfig(address="人民路与滨河路口东北角", lon=120.1, lat=30.2, grid_code="330102001"),
        event_time=T0 + dt.timedelta(seconds=360),
    )
    return dataclasses.replace(ctx, **changes)


@pytest.fixture
def embedded(settings_env, tmp_path: Path):
    """Embedded mode: SQLite file, filesystem evidence, memory:// broker (eager tasks)."""
    from urbaneye.celery_app import reconfigure
    from urbaneye.db.migrate import upgrade

    s = settings_env(
        broker_url="memory://", evidence_backend="fs", database_url=f"sqlite:///{tmp_path / 'ue.db'}"
    )
    upgrade(s.db_url)
    reconfigure(s)
    yield s
    from urbaneye.settings import get_settings

    get_settings.cache_clear()
    reconfigure()


# --- fake hotline intake (an external system: a fake is allowed) -----------------------------------


@dataclass
class HotlineReceiver:
    """Records every request; answers per ``mode``: ok | fail (500) | hang (sleep ``hang_s``, then 500) |
    slow (sleep ``hang_s``, then accept) | refuse (422).

    Honours ``Idempotency-Key`` like a real intake: ``accepted`` holds each case id once.
    """

    url: str = ""
    mode: str = "ok"
    hang_s: float = 5.0
    requests: list[dict] = field(default_factory=list)
    accepted: dict[str, dict] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def keys(self) -> list[str]:
        with self.lock:
            return [r["headers"].get("Idempotency-Key", "") for r in self.requests]


@pytest.fixture
def hotline() -> Iterator[HotlineReceiver]:
    receiver = HotlineReceiver()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a) -> None:  # noqa: ANN002
            pass

        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            record = {"path": self.path, "headers": dict(self.headers), "body": body, "mode": receiver.mode}
            with receiver.lock:
                receiver.requests.append(record)
                mode = receiver.mode
            if mode in ("hang", "slow"):
                time.sleep(receiver.hang_s)
            if mode == "refuse":
                self.send_response(422)
                self.end_headers()
                self.wfile.write(b"missing grid code")
                return
            if mode in ("fail", "hang"):
                self.send_response(500)
                self.end_headers()
                self.wfile.write(b"intake down")
                return
            key = self.headers.get("Idempotency-Key", "")
            with receiver.lock:
                receiver.accepted.setdefault(key, json.loads(body))
            out = json.dumps({"ref": f"12345-{key[:8]}"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    receiver.url = f"http://127.0.0.1:{port}/intake"
    yield receiver
    server.shutdown()
    server.server_close()


# --- a Redis of our own, to stop and start ---------------------------------------------------------


class OwnRedis:
    def __init__(self, port: int, workdir: Path) -> None:
        self.port = port
        self.workdir = workdir
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--bind",
                "127.0.0.1",
            ],
            cwd=self.workdir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        import redis

        client = redis.Redis(port=self.port)
        for _ in range(100):
            try:
                client.ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server on port {self.port} did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server not installed")
    r = OwnRedis(free_port(), tmp_path)
    r.start()
    yield r
    r.stop()


@pytest.fixture
def private_redis_url(own_redis: OwnRedis) -> str:
    """A Redis server of this test alone: the shared one (fixture ``redis_url``) has 14 databases for
    every engineer's tests, and a colliding test's worker or FLUSHDB would steal or drop our tasks."""
    return own_redis.url


# --- Celery worker subprocesses --------------------------------------------------------------------


class WorkerProc:
    def __init__(self, env: dict[str, str], queues: str, log_path: Path, via_cli: bool = False) -> None:
        self.env = env
        self.queues = queues
        self.log_path = log_path
        self.via_cli = via_cli  # `urbaneye worker` (our command) instead of `celery worker`
        self.proc: subprocess.Popen | None = None

    def start(self, timeout_s: float = 60.0) -> None:
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the worker
        start_offset = self.log_path.stat().st_size
        if self.via_cli:
            argv = [
                sys.executable,
                "-m",
                "urbaneye.cli",
                "worker",
                "--queues",
                self.queues,
                "--concurrency",
                "1",
            ]
        else:
            argv = [sys.executable, "-m", "celery", "-A", "urbaneye.celery_app", "worker", "-Q", self.queues]
            argv += ["-c", "1", "-P", "prefork", "--loglevel", "INFO", "--without-gossip", "--without-mingle"]
        self.proc = subprocess.Popen(
            argv,
            cwd=REPO,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            text = self.log_path.read_bytes()[start_offset:]
            if b" ready." in text:
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"celery worker exited early:\n{self.log_path.read_text()[-3000:]}")
            time.sleep(0.1)
        raise RuntimeError(f"celery worker not ready in {timeout_s}s:\n{self.log_path.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL the whole worker (main process and pool children)."""
        if self.proc is not None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
            self.proc = None


@pytest.fixture
def worker_factory(tmp_path: Path) -> Iterator[Callable[..., WorkerProc]]:
    workers: list[WorkerProc] = []

    def make(env: dict[str, str], queues: str = "cases,hotline", via_cli: bool = False) -> WorkerProc:
        full = {**os.environ, **env, "PYTHONPATH": str(REPO)}
        w = WorkerProc(full, queues, tmp_path / f"worker-{len(workers)}.log", via_cli=via_cli)
        workers.append(w)
        return w

    yield make
    for w in workers:
        w.stop()


# --- the real stack: PostgreSQL + Redis broker + moto S3 + hotline receiver ------------------------


@dataclass
class Stack:
    env: dict[str, str]
    db_url: str
    hotline: HotlineReceiver
    s3: dict

    def settings(self):  # noqa: ANN201
        from urbaneye.settings import get_settings

        return get_settings()


def stack_env(
    pg_url: str, broker_url: str, s3: dict, hotline_url: str, data_dir: Path, **extra: object
) -> dict[str, str]:
    env = {
        "environment": "test",
        "data_dir": str(data_dir),
        "database_url": pg_url,
        "broker_url": broker_url,
        "evidence_backend": "s3",
        "s3_endpoint": s3["endpoint"],
        "s3_access_key": s3["access_key"],
        "s3_secret_key": s3["secret_key"],
        "s3_region": s3["region"],
        "s3_object_lock": "true",
        "s3_timeout_s": "1",
        "hotline_url": hotline_url,
        "hotline_secret": "test-hotline-secret",
        "hotline_timeout_s": "1",
        "hotline_backoff_s": "0.2",
        "hotline_backoff_max_s": "1",
        "hotline_max_retries": "30",
        "outbox_lease_s": "3",
        "spool_resend_after_s": "2",
        "relay_interval_s": "0.2",
        "broker_visibility_timeout_s": "5",
    }
    env.update({k: str(v) for k, v in extra.items()})
    return {f"URBANEYE_{k.upper()}": v for k, v in env.items()}


@pytest.fixture
def make_stack(settings_env, pg_url, s3_server, hotline, tmp_path) -> Iterator[Callable[..., Stack]]:
    """Build the stack's settings for a broker; applies them to this process (the 'stream worker')."""
    from urbaneye.celery_app import reconfigure
    from urbaneye.db.migrate import upgrade

    upgrade(pg_url)
    # moto keeps its buckets in module state shared by every server in this process: start empty.
    import httpx

    httpx.post(f"http://{s3_server['endpoint']}/moto-api/reset", timeout=10).raise_for_status()

    def make(broker_url: str, **extra: object) -> Stack:
        env = stack_env(pg_url, broker_url, s3_server, hotline.url, tmp_path / "var", **extra)
        settings_env(**{k.removeprefix("URBANEYE_").lower(): v for k, v in env.items()})
        reconfigure()
        return Stack(env=env, db_url=pg_url, hotline=hotline, s3=s3_server)

    yield make
    from urbaneye.cases.uploads import stop_uploaders
    from urbaneye.settings import get_settings

    stop_uploaders()  # before the database is dropped: its retries would log against a missing database
    get_settings.cache_clear()
    reconfigure()


# --- S3 behind a TCP proxy we can freeze (SIGSTOP) and kill ------------------------------------------


@pytest.fixture
def s3_proxy(s3_server):  # noqa: ANN201
    """A ``TcpProxy`` in front of moto's S3: ``freeze()`` = a hung store, ``kill()`` = refused, ``start()``."""
    from urbaneye.cases.bench import TcpProxy

    proxy = TcpProxy(s3_server["endpoint"])
    proxy.start()
    yield proxy
    if proxy.proc is not None:
        proxy.thaw()  # a stopped process ignores nothing but SIGKILL; thaw anyway so it exits cleanly
    proxy.kill()


@pytest.fixture
def stream_relay() -> Iterator[Callable[..., object]]:
    """Start ``Handoff`` relays (spool + outbox) playing stream machines; ``make(spool_dir, node)``."""
    from urbaneye.cases.handoff import Handoff

    handoffs: list[Handoff] = []

    def make(spool_dir: Path | None = None, node: str | None = None, outbox: bool = True) -> Handoff:
        h = Handoff(spool_dir, node=node)
        h.start_relay(outbox=outbox)
        handoffs.append(h)
        return h

    yield make
    for h in handoffs:
        h.close()
