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

from streams.run import InvalidCamera, load_cameras_lenient
from tests.streams.conftest import camera_dict
from tests.streams.helpers import free_port, write_clip
from vision.config import ConfigError

#: a bow tie: its two lobes cancel to zero signed area, but the problem is the crossing
BOW_TIE = [[0.1, 0.1], [0.3, 0.3], [0.3, 0.1], [0.1, 0.3]]


def bad_zone_camera(camera_id: str, url: str) -> dict:
    cam = camera_dict(camera_id, url)
    cam["zones"] = [{**cam["zones"][0], "id": "tie", "polygon": BOW_TIE}]
    return cam


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
        bad_zone_camera("cam-3", str(clip)),  # one typo must not stop the others
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

        def settled() -> bool:
            # the first status row of cam-2 can predate its first open attempt: wait for the error too
            now = states()
            return (
                now.get("cam-1", ("",))[0] == "online"
                and "does not exist" in now.get("cam-2", ("", ""))[1]
                and "cam-3" in now
            )

        while not settled():
            assert time.monotonic() < deadline + 30, f"statuses: {states()}\n" + log_path.read_text()
            time.sleep(0.3)
        assert states()["cam-2"][0] == "offline"
        state3, error3 = states()["cam-3"]  # not started; the status says why and where
        assert state3 == "offline"
        assert "invalid in the cameras file" in error3 and "cameras[cam-3].zones[tie]" in error3
        assert "zone 'tie' polygon self-intersects at point" in error3
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
    assert "camera cam-3 not started: " in output
    if "Traceback" in output:
        pytest.fail(output)


@pytest.mark.parametrize("command", ["run", "stream-worker"])
def test_strict_refuses_a_file_with_an_invalid_camera(
    tmp_path: Path, cameras_yaml: Callable[..., Path], command: str
) -> None:
    clip = write_clip(tmp_path / "loop.mp4", seconds=1, fps=10)
    cams = cameras_yaml(camera_dict("cam-1", str(clip)), bad_zone_camera("cam-3", str(clip)))
    env = {
        **os.environ,
        "URBANEYE_DATA_DIR": str(tmp_path / "var"),
        "URBANEYE_DATABASE_URL": "",
        "URBANEYE_BROKER_URL": "memory://",
        "URBANEYE_METRICS_PORT": "0",
    }
    out = subprocess.run(
        [sys.executable, "-m", "urbaneye.cli", command, "--cameras", str(cams), "--strict"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2, out.stdout + out.stderr
    assert f"urbaneye {command} --strict: 1 invalid camera(s), nothing started" in out.stderr
    assert "camera cam-3: " in out.stderr and "zone 'tie' polygon self-intersects at point" in out.stderr
    assert "UrbanEye is running" not in out.stdout


def test_lenient_load_sets_invalid_cameras_aside(tmp_path: Path, cameras_yaml: Callable[..., Path]) -> None:
    cams = cameras_yaml(
        camera_dict("cam-1", "a.mp4"),
        bad_zone_camera("cam-2", "b.mp4"),
        {**camera_dict("cam-3", "c.mp4"), "detect_fps": -1},
        camera_dict("cam-4", "d.mp4"),
    )
    cameras, invalid = load_cameras_lenient(cams)
    assert [c.id for c in cameras.cameras] == ["cam-1", "cam-4"]
    assert [c.camera_id for c in invalid] == ["cam-2", "cam-3"]
    assert isinstance(invalid[0], InvalidCamera)
    assert (
        "cameras[cam-2].zones[tie]" in invalid[0].error and "self-intersects at point 2" in invalid[0].error
    )
    assert "cameras[cam-3].detect_fps" in invalid[1].error
    # a problem of the whole file still refuses it
    broken = cameras_yaml(camera_dict("cam-1", "a.mp4"), rules={"escalation_red_at": 0}, name="broken.yaml")
    with pytest.raises(ConfigError, match="escalation_red_at"):
        load_cameras_lenient(broken)


def test_an_invalid_camera_the_database_knows_runs_its_database_version(
    tmp_path: Path, cameras_yaml: Callable[..., Path], settings_env: Callable[..., object]
) -> None:
    """A typo in the file after the camera was seeded: its database version keeps running, the file's error
    shows in its status; a new invalid camera is reported offline with its error, in memory and the table."""
    from streams.cameras_db import CameraRegistry
    from streams.run import WorkerOptions, WorkerStack
    from streams.status import BOARD, CameraState
    from urbaneye.db.migrate import upgrade
    from urbaneye.db.models import CameraStatus
    from urbaneye.db.session import session_factory, session_scope
    from vision.config import load_cameras

    url = f"sqlite:///{tmp_path / 'ue.db'}"
    settings_env(database_url=url, broker_url="memory://", evidence_backend="fs", metrics_port=0)
    upgrade(url)
    clip = write_clip(tmp_path / "loop.mp4", seconds=2, fps=10)
    loop = {"url": str(clip), "loop": True}
    good = cameras_yaml(camera_dict("cam-2", str(clip), source=loop), name="good.yaml")
    CameraRegistry(session_factory(url)).seed(load_cameras(good))
    cams = cameras_yaml(
        camera_dict("cam-1", str(clip), source=loop),
        bad_zone_camera("cam-2", str(clip)),
        bad_zone_camera("cam-3", str(clip)),
    )
    stack = WorkerStack(WorkerOptions(cameras_path=cams, config_poll_s=0)).start()
    try:
        assert [b.camera_id for b in stack.invalid_cameras] == ["cam-2", "cam-3"]
        assert stack.worker.running_cameras == ["cam-1", "cam-2"]

        def shown() -> bool:
            two, three = BOARD.get("cam-2"), BOARD.get("cam-3")
            return bool(two and three and "invalid in the cameras file" in two.error and three.error)

        deadline = time.monotonic() + 30
        while not shown():
            assert time.monotonic() < deadline, (BOARD.get("cam-2"), BOARD.get("cam-3"))
            time.sleep(0.05)
        assert "zone 'tie' polygon self-intersects" in BOARD.get("cam-2").error
        assert "running the database's version" in BOARD.get("cam-2").error
        assert BOARD.get("cam-3").state is CameraState.OFFLINE
        with session_scope(url) as s:
            row = s.get(CameraStatus, "cam-3")
            assert row.state == "offline" and "cameras[cam-3].zones[tie]" in row.error
    finally:
        stack.stop()
    assert BOARD.get("cam-3") is None
