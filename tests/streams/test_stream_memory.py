"""False-alarm memory in a running stream worker: loaded from the database, kept over a restart, and
forgotten when an admin deletes the entry (the next candidate opens)."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from streams.status import StatusBoard
from streams.worker import DetectorPool, StreamWorker
from tests.streams.conftest import GARBAGE_BOX, camera_dict
from tests.streams.helpers import write_clip
from tests.waiting import wait_for
from urbaneye.db.migrate import upgrade
from urbaneye.db.models import FalseAlarmMemory
from urbaneye.db.session import session_factory
from urbaneye.memory import delete_entry
from vision.config import load_cameras
from vision.memory import DESCRIPTOR_VERSION, entry_from_crop
from vision.types import ViolationKind


def paint_rock(frame: np.ndarray, t: float) -> None:
    """A bright rock with cracks in GARBAGE_BOX (the oracle detector reports it as garbage)."""
    x1, y1, x2, y2 = GARBAGE_BOX
    cv2.ellipse(
        frame,
        ((x1 + x2) // 2, (y1 + y2) // 2),
        ((x2 - x1) // 2, (y2 - y1) // 2),
        0,
        0,
        360,
        (225, 225, 230),
        -1,
    )
    cv2.line(frame, (x1 + 15, y1 + 30), (x1 + 45, y1 + 50), (90, 90, 90), 3)
    cv2.line(frame, (x1 + 50, y1 + 20), (x1 + 60, y1 + 60), (100, 100, 100), 3)


class Recorder:
    """Hand-off that keeps the events (the case side is not under test here)."""

    def __init__(self) -> None:
        self.events: list = []
        self.lock = threading.Lock()

    def submit(self, event, frames, context):  # noqa: ANN001, ANN201
        with self.lock:
            self.events.append(event)

    def opened(self) -> list:
        with self.lock:
            return [e for e in self.events if e.event == "opened"]


@pytest.fixture
def sessions(tmp_path: Path):  # noqa: ANN201
    url = f"sqlite:///{tmp_path / 'ue.db'}"
    upgrade(url)
    return session_factory(url)


def run_worker(cams: Path, sessions, recorder: Recorder, board: StatusBoard) -> StreamWorker:  # noqa: ANN001
    cameras_file = load_cameras(cams)
    detectors = DetectorPool(cameras_file, model_path=cameras_file.model.path)
    return StreamWorker(
        cameras_file, detectors, recorder, board=board, realtime=True, speed=4.0,
        session_factory=sessions, memory_refresh_s=0.5, status_interval_s=0.5,
    ).start()  # fmt: skip


def test_memory_survives_a_worker_restart_and_an_admin_delete_lets_the_next_candidate_open(
    tmp_path: Path,
    sessions,
    cameras_yaml: Callable[..., Path],  # noqa: ANN001
) -> None:
    clip = write_clip(tmp_path / "rock.mp4", seconds=4, fps=10, paint=paint_rock)
    cams = cameras_yaml(
        camera_dict("cam-m", str(clip), garbage_dwell_s=5, source={"url": str(clip), "loop": True})
    )
    # the reviewer rejected the rock once: its entry, from a frame of the camera, is in the database
    frame = np.full((240, 320, 3), 30, np.uint8)
    paint_rock(frame, 0.0)
    entry = entry_from_crop("x", "cam-m", ViolationKind.EXPOSED_GARBAGE, GARBAGE_BOX, frame)
    now = dt.datetime.now(dt.UTC)
    with sessions() as s:
        row = FalseAlarmMemory(
            camera_id="cam-m", kind="exposed_garbage", bbox_xyxy=list(entry.box_xyxy), frame_wh=[320, 240],
            descriptor=list(entry.descriptor), descriptor_version=DESCRIPTOR_VERSION, case_id="case-1",
            reason="fixed_object", created_by="u1", created_at=now, expires_at=now + dt.timedelta(days=30),
            suppressed_count=0,
        )  # fmt: skip
        s.add(row)
        s.commit()
        entry_id = row.id

    def suppressed() -> int:
        with sessions() as s:
            return s.get(FalseAlarmMemory, entry_id).suppressed_count

    for run in (1, 2):  # the second worker is the first one restarted
        recorder, board = Recorder(), StatusBoard()
        worker = run_worker(cams, sessions, recorder, board)
        try:
            # 16 s of video: without its memory the rock opens after ~9 s (dwell 5 s)
            wait_for(lambda b=board: b.get("cam-m").frames_processed >= 80, 60, "80 frames processed")
            wait_for(lambda n=run: suppressed() >= n, 30, "the suppression counted in the database")
        finally:
            worker.stop()
        assert recorder.opened() == []

    # an admin deletes the entry while a worker runs: the rock's next candidate opens
    recorder, board = Recorder(), StatusBoard()
    worker = run_worker(cams, sessions, recorder, board)
    try:
        wait_for(lambda: board.get("cam-m").frames_processed >= 20, 60, "worker running")
        assert recorder.opened() == []
        with sessions() as s:
            assert delete_entry(s, entry_id, "user:admin1")
            s.commit()
        wait_for(lambda: len(recorder.opened()) == 1, 60, "the rock opens once its memory is deleted")
    finally:
        worker.stop()


def test_replay_and_rules_replay_take_a_memory_file(
    tmp_path: Path, cameras_yaml: Callable[..., Path], capsys: pytest.CaptureFixture
) -> None:
    """Offline, as measured in docs/real-cameras.md: the same clip opens without the memory file and is
    suppressed with it; a memory entry of an unknown camera is one clear error."""
    import json

    from urbaneye.cli import main

    clip = write_clip(tmp_path / "rock.mp4", seconds=20, fps=5, paint=paint_rock)
    cams = cameras_yaml(camera_dict("cam-1", str(clip), garbage_dwell_s=5))
    frame = np.full((240, 320, 3), 30, np.uint8)
    paint_rock(frame, 0.0)
    entry = entry_from_crop("m1", "cam-1", ViolationKind.EXPOSED_GARBAGE, GARBAGE_BOX, frame)
    mem = tmp_path / "memory.json"
    mem.write_text(json.dumps({"entries": [entry.to_json()]}), encoding="utf-8")

    def opened(path: Path) -> int:
        return sum(json.loads(line)["event"] == "opened" for line in path.read_text().splitlines())

    args = ["replay", "--cameras", str(cams), "--video", f"cam-1={clip}"]
    assert main([*args, "--out", str(tmp_path / "a.jsonl")]) == 0
    assert main([*args, "--out", str(tmp_path / "b.jsonl"), "--memory", str(mem)]) == 0
    assert (opened(tmp_path / "a.jsonl"), opened(tmp_path / "b.jsonl")) == (1, 0)

    # rules-replay: detections only, so the entry matches by place and kind
    lines = [
        {"camera_id": "cam-1", "ts_s": t / 5, "frame_wh": [320, 240],
         "detections": [{"label": "garbage", "xyxy": list(GARBAGE_BOX), "score": 0.9}]}
        for t in range(100)
    ]  # fmt: skip
    dets = tmp_path / "dets.jsonl"
    dets.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    args = ["rules-replay", "--cameras", str(cams), "--detections", str(dets)]
    assert main([*args, "--out", str(tmp_path / "c.jsonl")]) == 0
    capsys.readouterr()
    assert main([*args, "--out", str(tmp_path / "d.jsonl"), "--memory", str(mem)]) == 0
    assert "1 suppressed by the memory" in capsys.readouterr().err
    assert (opened(tmp_path / "c.jsonl"), opened(tmp_path / "d.jsonl")) == (1, 0)

    mem.write_text(json.dumps({"entries": [{**entry.to_json(), "camera_id": "cam-9"}]}), encoding="utf-8")
    assert main([*args, "--out", str(tmp_path / "e.jsonl"), "--memory", str(mem)]) == 2
    assert "memory entry 'm1' is for camera 'cam-9', not one of ['cam-1']" in capsys.readouterr().err
