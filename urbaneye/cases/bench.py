"""Benchmark: violation event -> case row with all evidence uploaded (``urbaneye bench cases``).

Uses the configured services (``URBANEYE_DATABASE_URL``, ``URBANEYE_BROKER_URL``, S3). ``moto=True`` starts
an S3 server in this process; ``spawn_worker=True`` starts a Celery worker subprocess sharing a temporary
data dir (spool) with this process, which plays the stream worker.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import cv2
import numpy as np


def _scene_jpeg(seed: int, w: int, h: int) -> bytes:
    """A smooth synthetic street-ish frame: JPEG sizes close to real evidence (~50-150 KB at 720p)."""
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 3), np.uint8)
    img[:] = np.linspace(60, 200, w, dtype=np.uint8)[None, :, None]
    for _ in range(25):
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        cv2.rectangle(img, (x, y), (x + int(rng.integers(20, 200)), y + int(rng.integers(20, 120))),
                      tuple(int(c) for c in rng.integers(0, 255, 3)), -1)  # fmt: skip
    noise = rng.normal(0, 6, img.shape)
    img = np.clip(img + noise, 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 85])
    assert ok
    return buf.tobytes()


class TcpProxy:
    """A TCP forwarder in a process of its own, to put faults between us and a service (S3 here).

    ``freeze()`` stops the process (SIGSTOP): the kernel still accepts connections, nothing is ever
    answered, which is what a hung MinIO looks like. ``thaw()`` resumes it; ``kill()`` makes the
    endpoint refuse connections; ``start()`` again brings it back on the same port.
    """

    def __init__(self, target: str, port: int | None = None) -> None:
        self.target = target
        self.port = port or _free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 15.0) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "urbaneye.cases.bench", "proxy", str(self.port), self.target],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(
                        f"TCP proxy to {self.target} exited with {self.proc.returncode}"
                    ) from None
                time.sleep(0.05)
        raise RuntimeError(f"TCP proxy on port {self.port} not listening within {timeout_s}s")

    def freeze(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)

    def kill(self) -> None:
        if self.proc is not None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
            self.proc = None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve_proxy(port: int, target: str) -> None:
    """Forward every connection on 127.0.0.1:``port`` to ``target`` (host:port), one thread per direction."""
    host, _, target_port = target.rpartition(":")

    def pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    listener = socket.create_server(("127.0.0.1", port), backlog=128)
    while True:
        client, _ = listener.accept()
        try:
            upstream = socket.create_connection((host, int(target_port)), timeout=5)
            upstream.settimeout(None)
        except OSError:
            client.close()
            continue
        for a, b in ((client, upstream), (upstream, client)):
            threading.Thread(target=pump, args=(a, b), daemon=True).start()


def _set_env(values: dict[str, str]) -> None:
    from urbaneye.celery_app import reconfigure
    from urbaneye.settings import get_settings

    os.environ.update(values)
    get_settings.cache_clear()
    reconfigure()


def _start_worker(log_path: Path, concurrency: int = 2) -> subprocess.Popen:
    log = open(log_path, "ab")  # noqa: SIM115 - lives with the worker
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "urbaneye.celery_app", "worker", "-Q", "cases,hotline",
         "-c", str(concurrency), "--loglevel", "WARNING", "--without-gossip", "--without-mingle"],
        stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ), start_new_session=True,
    )  # fmt: skip
    from urbaneye.celery_app import app

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"benchmark worker exited: {log_path.read_text()[-2000:]}")
        try:
            if app.control.ping(timeout=0.5):
                return proc
        except Exception:
            pass
        time.sleep(0.3)
    proc.kill()
    raise RuntimeError("benchmark worker did not answer ping within 60 s")


def run_bench(
    n: int = 40, interval_s: float = 0.25, spawn_worker: bool = False, moto: bool = False
) -> dict[str, Any]:
    from sqlalchemy import select

    from urbaneye.cases.handoff import EvidenceFrame, Handoff
    from urbaneye.db.migrate import upgrade
    from urbaneye.db.models import Case
    from urbaneye.db.session import session_scope
    from urbaneye.settings import get_settings
    from vision.types import Escalation, ViolationEvent, ViolationKind

    workdir = Path(tempfile.mkdtemp(prefix="urbaneye-bench-"))
    server = None
    worker = None
    try:
        overrides: dict[str, str] = {}
        if moto:
            import socket

            from moto.server import ThreadedMotoServer

            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                port = sock.getsockname()[1]
            server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
            server.start()
            overrides.update(
                URBANEYE_EVIDENCE_BACKEND="s3",
                URBANEYE_S3_ENDPOINT=f"127.0.0.1:{port}",
                URBANEYE_S3_ACCESS_KEY="bench",
                URBANEYE_S3_SECRET_KEY="bench",
                URBANEYE_S3_OBJECT_LOCK="true",
            )
        if spawn_worker:
            overrides["URBANEYE_DATA_DIR"] = str(workdir / "var")
        _set_env(overrides)
        s = get_settings()
        upgrade(s.db_url)
        if spawn_worker:
            worker = _start_worker(workdir / "worker.log")

        frames_px = {"clean": (1280, 720), "annotated": (1280, 720), "crop": (320, 320)}
        images = {v: _scene_jpeg(i, *wh) for i, (v, wh) in enumerate(frames_px.items())}
        run_id = uuid.uuid4().hex[:8]
        handoff = Handoff()
        submitted: dict[str, float] = {}
        finished: dict[str, float] = {}
        lock = threading.Lock()
        stop = threading.Event()

        def poll() -> None:
            while not stop.is_set():
                with lock:
                    waiting = [v for v in submitted if v not in finished]
                if waiting:
                    with session_scope(s.db_url) as session:
                        for case in session.scalars(select(Case).where(Case.violation_id.in_(waiting))):
                            if case.evidence and all(e.uploaded for e in case.evidence):
                                with lock:
                                    finished.setdefault(case.violation_id, time.perf_counter())
                time.sleep(0.01)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        now = dt.datetime.now(dt.UTC)
        for i in range(n):
            vid = f"bench-{run_id}-{i}"
            ev = ViolationEvent(
                event="opened", violation_id=vid, camera_id="bench-cam", zone_id="z1",
                kind=ViolationKind.STREET_VENDING, ts_s=400.0, bbox_xyxy=(100, 100, 300, 400), score=0.8,
                gbt_code="0501", escalation=Escalation.BLUE, dwell_s=360, first_seen_s=40, evidence_request=True,
            )  # fmt: skip
            frames = [
                EvidenceFrame(seq, variant, jpeg, now + dt.timedelta(seconds=360 * (seq - 1)))
                for seq in (1, 2)
                for variant, jpeg in images.items()
            ]
            t0 = time.perf_counter()
            with lock:
                submitted[vid] = t0
            handoff.submit(ev, frames, {"camera_id": "bench-cam", "location": {"address": "基准测试路口"}})
            time.sleep(interval_s)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with lock:
                if len(finished) == n:
                    break
            time.sleep(0.05)
        stop.set()
        poller.join(5)
        with session_scope(s.db_url) as session:
            vids = session.scalars(
                select(Case.violation_id).where(Case.violation_id.like(f"bench-{run_id}-%"))
            ).all()
        latencies = sorted(finished[v] - submitted[v] for v in finished)
        q = (
            statistics.quantiles(latencies, n=20, method="inclusive")
            if len(latencies) >= 2
            else latencies * 19
        )
        return {
            "n": n,
            "interval_s": interval_s,
            "completed": len(latencies),
            "lost": n - len(latencies),
            "duplicated": len(vids) - len(set(vids)),
            "p50_s": round(statistics.median(latencies), 4) if latencies else None,
            "p95_s": round(q[18], 4) if latencies else None,
            "max_s": round(latencies[-1], 4) if latencies else None,
            "mean_s": round(statistics.fmean(latencies), 4) if latencies else None,
            "evidence_bytes_per_case": 2 * sum(len(b) for b in images.values()),
            "database": s.db_url.split("@")[-1].split("?")[0] if "@" in s.db_url else s.db_url.split(":")[0],
            "broker": s.broker_url.split("://")[0],
            "evidence_backend": s.evidence_backend,
            "worker": "spawned celery worker (prefork, 2 processes)" if spawn_worker else "external or eager",
        }
    finally:
        if worker is not None:
            worker.terminate()
            try:
                worker.wait(20)
            except subprocess.TimeoutExpired:
                worker.kill()
        if server is not None:
            server.stop()


if __name__ == "__main__":  # python -m urbaneye.cases.bench proxy PORT HOST:PORT (used by TcpProxy)
    if len(sys.argv) != 4 or sys.argv[1] != "proxy":
        sys.exit("usage: python -m urbaneye.cases.bench proxy LISTEN_PORT TARGET_HOST:PORT")
    serve_proxy(int(sys.argv[2]), sys.argv[3])
