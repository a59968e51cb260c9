"""Two ``urbaneye stream-worker --leases`` processes on one cameras file and one database."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.streams.conftest import camera_dict
from tests.streams.helpers import free_port, write_clip
from tests.waiting import wait_for

TTL_S = 3.0


def processed(port: int) -> dict[str, float]:
    """``urbaneye_stream_frames_processed_total`` per camera from a worker's /metrics."""
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    except OSError:
        return {}
    pattern = r'^urbaneye_stream_frames_processed_total\{camera="([^"]+)"\} ([0-9.e+]+)$'
    return {m[1]: float(m[2]) for m in re.finditer(pattern, text, re.M)}


def progress(ports: dict[str, int], window_s: float = 2.0) -> dict[str, set[str]]:
    """camera → workers whose processed-frame counter for it grew during ``window_s``."""
    before = {w: processed(p) for w, p in ports.items()}
    time.sleep(window_s)
    after = {w: processed(p) for w, p in ports.items()}
    grew: dict[str, set[str]] = {}
    for w in ports:
        for cam, value in after[w].items():
            if value > before[w].get(cam, 0.0):
                grew.setdefault(cam, set()).add(w)
    return grew


@pytest.fixture
def workers(
    tmp_path: Path, pg_url: str, oracle_model: Path, cameras_yaml: Callable[..., Path]
) -> Iterator[Callable[[str], tuple[subprocess.Popen, int]]]:
    from urbaneye.db.migrate import upgrade

    upgrade(pg_url)
    clip = write_clip(tmp_path / "loop.mp4", seconds=2, fps=10)
    cams = cameras_yaml(
        *[camera_dict(f"cam-{i}", str(clip), source={"url": str(clip), "loop": True}) for i in range(5)]
    )
    procs: list[subprocess.Popen] = []

    def start(worker_id: str) -> tuple[subprocess.Popen, int]:
        port = free_port()
        env = {
            **os.environ,
            "URBANEYE_DATABASE_URL": pg_url,
            "URBANEYE_DATA_DIR": str(tmp_path / "var"),
            "URBANEYE_LEASE_TTL_S": str(TTL_S),
            "URBANEYE_METRICS_PORT": str(port),
            "URBANEYE_WORKER_ID": worker_id,
            "URBANEYE_REDIS_URL": "",
        }
        argv = [sys.executable, "-m", "urbaneye.cli", "stream-worker", "--cameras", str(cams), "--leases"]
        with open(tmp_path / f"{worker_id}.log", "wb") as log:
            proc = subprocess.Popen(argv + ["--model", str(oracle_model)], env=env, stdout=log, stderr=log)
        procs.append(proc)
        return proc, port

    yield start
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait(10)


def test_two_workers_split_cameras_and_survive_one_dying(workers: Callable, pg_url: str) -> None:
    a, port_a = workers("worker-a")
    b, port_b = workers("worker-b")
    ports = {"worker-a": port_a, "worker-b": port_b}
    cams = {f"cam-{i}" for i in range(5)}

    def split() -> bool:
        grew = progress(ports)
        return (
            set(grew) == cams
            and all(len(w) == 1 for w in grew.values())
            and len(set().union(*grew.values())) == 2
        )

    wait_for(split, 60, "both workers processing, every camera exactly once")
    for _ in range(3):  # and it stays that way: never a camera processed by both
        grew = progress(ports)  # (a camera a loaded machine left idle for the window is merely absent)
        assert all(len(w) == 1 for w in grew.values()), f"a camera was processed twice: {grew}"

    text = urllib.request.urlopen(f"http://127.0.0.1:{port_b}/metrics", timeout=5).read().decode()
    for family in (
        "urbaneye_stream_frames_in_total",
        "urbaneye_stream_frames_detected_total",
        "urbaneye_stream_dropped_frames_total",
        "urbaneye_stream_reconnects_total",
        "urbaneye_stream_inference_ms_bucket",
        'urbaneye_stream_camera_state{camera="cam-',
    ):
        assert family in text, family

    a.kill()  # no goodbye: its leases must expire
    # takeover waits for the leases to expire (test_stream_leases pins that b never takes them earlier)
    wait_for(lambda: set(progress({"worker-b": port_b}, 1.0)) == cams, 4 * TTL_S + 30, "worker-b took over")

    b.send_signal(signal.SIGTERM)  # graceful: finishes in-flight frames, releases its leases
    assert b.wait(60) == 0
    from sqlalchemy import create_engine, text

    engine = create_engine(pg_url)
    with engine.connect() as conn:
        left = conn.execute(text("SELECT camera_id FROM camera_leases WHERE worker_id = 'worker-b'")).all()
        states = dict(conn.execute(text("SELECT camera_id, state FROM camera_status")).all())
    engine.dispose()
    assert left == []
    assert set(states) == cams and set(states.values()) == {"offline"}


def test_processes_split_a_machine_shard_and_stop_together(
    tmp_path: Path, oracle_model: Path, cameras_yaml: Callable[..., Path]
) -> None:
    from urbaneye.db.migrate import upgrade

    data = tmp_path / "var"
    upgrade(f"sqlite:///{data / 'urbaneye.db'}")
    clip = write_clip(tmp_path / "loop.mp4", seconds=2, fps=10)
    cams = cameras_yaml(
        *[camera_dict(f"cam-{i}", str(clip), source={"url": str(clip), "loop": True}) for i in range(6)]
    )
    base = free_port()
    env = {
        **os.environ,
        "URBANEYE_DATA_DIR": str(data),
        "URBANEYE_DATABASE_URL": "",
        "URBANEYE_METRICS_PORT": str(base),
    }
    argv = [sys.executable, "-m", "urbaneye.cli", "stream-worker", "--cameras", str(cams), "--processes", "2"]
    with open(tmp_path / "parent.log", "wb") as log:
        parent = subprocess.Popen([*argv, "--model", str(oracle_model)], env=env, stdout=log, stderr=log)
    try:
        ports = {"p0": base, "p1": base + 1}
        wait_for(
            lambda: set(progress(ports, 1.0)) == {f"cam-{i}" for i in range(6)}, 60, "all cameras running"
        )

        def both_work() -> bool:
            grew = progress(ports)
            assert all(len(w) == 1 for w in grew.values()), grew  # each camera in exactly one process
            return {w for ws in grew.values() for w in ws} == {"p0", "p1"}  # and both processes work

        wait_for(both_work, 60, "both processes processing their shard")
    finally:
        parent.send_signal(signal.SIGTERM)
        code = parent.wait(60)
    assert code == 0, (tmp_path / "parent.log").read_text()
    assert processed(base) == {} and processed(base + 1) == {}  # the children are gone too
