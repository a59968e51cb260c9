"""``urbaneye run``: workers + API in one process on embedded defaults; SIGTERM stops it cleanly."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.streams.conftest import camera_dict
from tests.streams.helpers import free_port, write_clip


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except OSError:
        return 0, ""


def _snapshot_key(data: Path) -> str:
    with sqlite3.connect(data / "urbaneye.db") as db:
        row = db.execute("SELECT snapshot_key FROM camera_status WHERE camera_id = 'cam-1'").fetchone()
    return row[0] if row else ""


def test_run_serves_api_and_workers_then_stops_on_sigterm(
    tmp_path: Path, cameras_yaml: Callable[..., Path]
) -> None:
    clip = write_clip(tmp_path / "loop.mp4", seconds=2, fps=10)
    cams = cameras_yaml(
        camera_dict("cam-1", str(clip), source={"url": str(clip), "loop": True}),
        camera_dict("cam-2", str(tmp_path / "missing.mp4")),
    )
    port, metrics_port = free_port(), free_port()
    data = tmp_path / "var"
    env = {
        **os.environ,
        "URBANEYE_DATA_DIR": str(data),
        "URBANEYE_DATABASE_URL": "",
        "URBANEYE_BROKER_URL": "memory://",
        "URBANEYE_METRICS_PORT": str(metrics_port),
    }
    log_path = tmp_path / "run.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "urbaneye.cli", "run", "--cameras", str(cams), "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while _get(f"http://127.0.0.1:{port}/healthz")[0] != 200:
            assert proc.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, "API did not come up:\n" + log_path.read_text()
            time.sleep(0.3)

        def states() -> dict[str, tuple[str, str]]:
            with sqlite3.connect(data / "urbaneye.db") as db:
                return {
                    c: (s, e) for c, s, e in db.execute("SELECT camera_id, state, error FROM camera_status")
                }

        while states().get("cam-1", ("",))[0] != "online" or "cam-2" not in states():
            assert time.monotonic() < deadline + 30, f"statuses: {states()}\n" + log_path.read_text()
            time.sleep(0.3)
        assert states()["cam-2"][0] == "offline" and "does not exist" in states()["cam-2"][1]
        with sqlite3.connect(data / "urbaneye.db") as db:  # registered for the API, zones included
            assert sorted(db.execute("SELECT id FROM cameras")) == [("cam-1",), ("cam-2",)]
            assert list(db.execute("SELECT camera_id, zone_id FROM zones WHERE camera_id = 'cam-1'")) == [
                ("cam-1", "z1")
            ]
        while not (key := _snapshot_key(data)):
            assert time.monotonic() < deadline + 40, "no snapshot recorded"
            time.sleep(0.3)
        assert key.startswith("snapshots/cam-1/") and (data / "evidence" / key).is_file()
        status, metrics = _get(f"http://127.0.0.1:{metrics_port}/metrics")
        assert status == 200 and 'urbaneye_stream_frames_in_total{camera="cam-1"}' in metrics
        assert json.loads(_get(f"http://127.0.0.1:{port}/healthz")[1]) == {"status": "ok"}
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(60)
    output = log_path.read_text()
    assert code == 0, output
    assert "UrbanEye is running: http://" in output
    assert states()["cam-1"][0] == "offline"  # the last status written on the way out
    if "Traceback" in output:
        pytest.fail(output)
