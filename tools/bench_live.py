"""``urbaneye bench --sections live_queue``: how fast a new pending case reaches an open review queue
through the live feed (issue 18: "a new case appears in an open queue within 3 s without reload").

The real API (``urbaneye serve``) runs in a process of its own on a free loopback port against the bench
database; a reviewer logs in, takes a ticket and holds the ``/live/events`` stream open in a thread, as an
open review screen does. Cases then become pending one at a time at irregular, seeded spacing, the way
workers raise them, and each case's latency is the time from its commit to the first ``queue`` event whose
``pending`` count includes it. The feed polls the database every ``POLL_S`` (1 s), so the latency is that
poll's phase plus the read and the send: about 0.5 s typical, 1 s worst on an idle machine.

The figure belongs here and not in a test: a loaded CI machine may take longer, and that is a measurement,
not a failure.

Example:
    >>> bench_live_queue("sqlite:////tmp/live.db", cases=3)  # doctest: +SKIP
    {'cases': 3, 'seen': 3, 'latency_s': {'p50': 0.52, 'p95': 0.91, 'max': 0.91}, 'target_s': 3.0, ...}
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import random
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import delete
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from api.auth import create_user
from api.routes.live import POLL_S, STREAM_MAX_S
from urbaneye.db.migrate import upgrade
from urbaneye.db.models import Case, CaseStatus, User
from urbaneye.db.session import get_engine, session_factory

REPO_ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 3.0
#: How long the last case may take to show before the run gives up on the cases not yet seen.
SETTLE_S = 30.0
SERVER_START_S = 60.0


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank ``q`` percentile (0 < q <= 100) of a non-empty sequence: a value that was measured."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def match_latencies(
    commits_s: Sequence[float], events: Sequence[tuple[float, int]], base: int
) -> list[float]:
    """Seconds from each case's commit to the first event that counts it.

    Args:
        commits_s: ``(n,)`` clock readings just before case ``k`` was committed, in commit order.
        events: ``(arrived_s, pending)`` of each ``queue`` event, in arrival order (same clock).
        base: pending cases before the first commit.

    Returns:
        One latency per case counted by some event, in commit order; cases never counted are left out.

    Example:
        >>> match_latencies([10.0, 10.4], [(9.0, 0), (10.9, 2)], base=0)
        [0.9, 0.5]
    """
    latencies: list[float] = []
    for arrived_s, pending in events:
        while len(latencies) < min(pending - base, len(commits_s)):
            latencies.append(round(arrived_s - commits_s[len(latencies)], 6))
    return latencies


class QueueStream:
    """An open review screen's side of the live feed: reads ``queue`` events in a thread and notes, on
    ``time.perf_counter``'s clock, when each arrived. It stops by itself once an event counts ``goal``
    pending cases, when the stream ends, or when the server goes away."""

    def __init__(self, base_url: str, ticket: str, read_timeout_s: float = 30.0) -> None:
        self.events: list[tuple[float, int]] = []
        self.goal: int | None = None
        self.first = threading.Event()
        self.error: str = ""
        self._url = f"{base_url}/api/v1/live/events"
        self._ticket = ticket
        # longer than the feed's 15 s keep-alive: a quiet stream is not a dead one
        self._timeout = httpx.Timeout(10.0, read=read_timeout_s)
        self._thread = threading.Thread(target=self._run, name="bench-live-stream", daemon=True)

    def start(self) -> QueueStream:
        self._thread.start()
        return self

    def join(self, timeout_s: float) -> bool:
        """Wait for the reader to end; whether it did."""
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def _run(self) -> None:
        try:
            with (
                httpx.Client(timeout=self._timeout) as client,
                client.stream("GET", self._url, params={"token": self._ticket}) as response,
            ):
                response.raise_for_status()
                name = ""
                for line in response.iter_lines():
                    if line.startswith("event:"):
                        name = line.removeprefix("event:").strip()
                    elif line.startswith("data:") and name == "queue":
                        arrived_s = time.perf_counter()
                        pending = int(json.loads(line.removeprefix("data:"))["pending"])
                        self.events.append((arrived_s, pending))
                        self.first.set()
                        if self.goal is not None and pending >= self.goal:
                            return
                    elif not line:
                        name = ""
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self.first.set()  # a waiter for the first event must not wait out its timeout on a dead stream


# ------------------------------------------------------------------------------------------ the server
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _log_tail(path: Path, chars: int = 2000) -> str:
    return path.read_text(encoding="utf-8", errors="replace")[-chars:] if path.is_file() else ""


def _start_server(db_url: str, secret: str, data_dir: Path, log_path: Path) -> tuple[subprocess.Popen, str]:
    """``urbaneye serve`` on a free loopback port in a process of its own; (process, base URL) once healthy."""
    port = _free_port()
    env = {  # hermetic: none of this machine's URBANEYE_* settings (its broker, its store) reach the server
        **{k: v for k, v in os.environ.items() if not k.startswith("URBANEYE_")},
        "URBANEYE_BROKER_URL": "memory://",
        "URBANEYE_EVIDENCE_BACKEND": "fs",
        "URBANEYE_DATABASE_URL": db_url,
        "URBANEYE_SECRET_KEY": secret,
        "URBANEYE_AUDIT_KEY": secret,
        "URBANEYE_ENVIRONMENT": "test",
        "URBANEYE_DATA_DIR": str(data_dir),
    }
    cmd = [sys.executable, "-m", "urbaneye.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"live_queue: urbaneye serve exited with {proc.returncode} while starting; its log:\n"
                f"{_log_tail(log_path)}"
            )
        try:
            if httpx.get(f"{base_url}/healthz", timeout=2).status_code == 200:
                return proc, base_url
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    _stop_server(proc)
    raise RuntimeError(
        f"live_queue: urbaneye serve was not healthy within {SERVER_START_S:.0f} s; its log:\n"
        f"{_log_tail(log_path)}"
    )


def _ticket(base_url: str, username: str, password: str) -> str:
    """Log in as the reviewer and take a live-feed ticket, as the review screen does."""
    login = httpx.post(
        f"{base_url}/api/v1/auth/login", data={"username": username, "password": password}, timeout=30
    )
    login.raise_for_status()
    ticket = httpx.post(
        f"{base_url}/api/v1/live/ticket",
        headers={"Authorization": f"Bearer {login.json()['access_token']}"},
        timeout=30,
    )
    ticket.raise_for_status()
    return ticket.json()["token"]


def _stop_server(proc: subprocess.Popen) -> None:
    """SIGTERM (uvicorn's graceful shutdown, at most 5 s for open streams), then SIGKILL; always reaped."""
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


# ------------------------------------------------------------------------------------------ the bench
def _pending_case(run_id: str, k: int) -> Case:
    now = dt.datetime.now(dt.UTC)
    return Case(
        violation_id=f"bench-live-{run_id}-{k}",
        camera_id="bench-live",
        zone_id="z1",
        place_key="bench-live/z1",
        kind="street_vending",
        gbt_code="0501",
        gbt_name="无照经营游商",
        started_at=now - dt.timedelta(minutes=5),
        duration_s=300.0,
        confidence=0.8,
        model_version="bench",
        bbox_xyxy=[100.0, 100.0, 200.0, 200.0],
        frame_wh=[1920, 1080],
        description="live_queue bench",
        status=CaseStatus.PENDING_REVIEW.value,
    )


def _remove_run(sessions: sessionmaker[Session], run_id: str, username: str) -> None:
    """Delete the run's cases and reviewer: a database named by URBANEYE_BENCH_DATABASE_URL is left as found."""
    with sessions() as session:
        session.execute(delete(Case).where(Case.violation_id.like(f"bench-live-{run_id}-%")))
        session.execute(delete(User).where(User.username == username))
        session.commit()


def bench_live_queue(
    db_url: str,
    cases: int = 20,
    gap_s: tuple[float, float] = (0.3, 1.5),
    seed: int = 0,
) -> dict[str, Any]:
    """Latency from a case's commit to the open queue's ``queue`` event that counts it, over ``cases`` cases
    committed ``gap_s`` apart (uniform, seeded). ``db_url`` is migrated first; what the run adds is removed
    afterwards. Returns a JSON-ready dict (``latency_s`` p50/p95/max against ``target_s``)."""
    if cases < 1:
        raise ValueError(f"live_queue: cases must be at least 1; got {cases}")
    if not 0 <= gap_s[0] <= gap_s[1]:
        raise ValueError(f"live_queue: gap_s must be (low, high) with 0 <= low <= high; got {gap_s}")
    if cases * gap_s[1] + SETTLE_S > STREAM_MAX_S:
        most = int((STREAM_MAX_S - SETTLE_S) // max(gap_s[1], 1e-9))
        raise ValueError(
            f"live_queue: {cases} cases up to {gap_s[1]} s apart outlast one live stream ({STREAM_MAX_S:.0f} s); "
            f"use at most {most} cases or shorter gaps"
        )
    upgrade(db_url)
    sessions = session_factory(db_url)
    run_id = secrets.token_hex(4)
    username, password = f"bench-live-{run_id}", secrets.token_urlsafe(16)
    with sessions() as session:  # as `urbaneye users create` does, without its audit row
        create_user(session, username, password, "reviewer", "live_queue bench")
        session.commit()
    rng = random.Random(seed)
    commits_s: list[float] = []
    stream: QueueStream | None = None
    try:
        with tempfile.TemporaryDirectory(prefix="ue-bench-live-") as tmp:
            log_path = Path(tmp) / "serve.log"
            proc, base_url = _start_server(db_url, secrets.token_hex(32), Path(tmp) / "var", log_path)
            try:
                stream = QueueStream(base_url, _ticket(base_url, username, password)).start()
                if not stream.first.wait(SETTLE_S) or not stream.events:
                    raise RuntimeError(
                        f"live_queue: the live stream sent no queue event within {SETTLE_S:.0f} s "
                        f"({stream.error or 'no error'}); server log:\n{_log_tail(log_path)}"
                    )
                base = stream.events[0][1]
                stream.goal = base + cases
                with sessions() as session:
                    for k in range(cases):
                        time.sleep(rng.uniform(*gap_s))
                        session.add(_pending_case(run_id, k))
                        session.flush()  # the INSERT is done; only the commit makes the case visible
                        commits_s.append(time.perf_counter())
                        session.commit()
                stream.join(SETTLE_S)  # the reader ends once an event counts the last case
            finally:
                _stop_server(proc)  # ends the stream too, had the last case never shown
                if stream is not None:
                    stream.join(10.0)
    finally:
        _remove_run(sessions, run_id, username)
        get_engine(db_url).dispose()
    if not stream.join(0):
        raise RuntimeError("live_queue: the stream reader did not end after the server stopped")
    latencies = match_latencies(commits_s, stream.events, base)
    seen = len(latencies)
    stats = (
        {f"p{q}": round(percentile(latencies, q), 3) for q in (50, 95)} | {"max": round(max(latencies), 3)}
        if latencies
        else {"p50": None, "p95": None, "max": None}
    )
    return {
        "cases": cases,
        "seen": seen,
        "latency_s": stats,
        "target_s": TARGET_S,
        "meets_target": seen == cases and stats["p95"] <= TARGET_S,
        "poll_s": POLL_S,
        "database": make_url(db_url).get_backend_name(),
        "gap_s": list(gap_s),
        "seed": seed,
        "per_case_s": [round(v, 3) for v in latencies],
        "stream_error": stream.error,
    }
