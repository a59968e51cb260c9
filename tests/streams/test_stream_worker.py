"""A stream worker against real sources: RTSP (TCP), HTTP MJPEG and files, with failures and recovery."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from streams.status import CameraState, StatusBoard
from streams.worker import DetectorPool, StreamWorker
from tests.streams.conftest import camera_dict
from tests.streams.helpers import MjpegServer, RtspServer, h264_annexb, write_clip
from tests.waiting import wait_for
from vision.config import load_cameras


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    return write_clip(tmp_path / "loop.mp4", seconds=4, fps=10)


@pytest.fixture
def rtsp(tmp_path: Path, clip: Path) -> Iterator[RtspServer]:
    server = RtspServer(h264_annexb(clip, tmp_path / "loop.h264"), fps=10).start()
    yield server
    server.stop()


@pytest.fixture
def mjpeg() -> Iterator[MjpegServer]:
    server = MjpegServer(fps=10).start()
    yield server
    server.stop()


def start_worker(cameras_path: Path, board: StatusBoard, **kwargs) -> StreamWorker:  # noqa: ANN003
    cameras_file = load_cameras(cameras_path)
    detectors = DetectorPool(cameras_file, model_path=cameras_file.model.path)
    return StreamWorker(cameras_file, detectors, None, board=board, **kwargs).start()


def test_dead_rtsp_camera_goes_offline_reconnects_and_never_slows_the_others(
    tmp_path: Path, clip: Path, rtsp: RtspServer, mjpeg: MjpegServer, cameras_yaml: Callable[..., Path]
) -> None:
    cams = cameras_yaml(
        camera_dict("rtsp-1", rtsp.url(), start_time=None),
        camera_dict("mjpeg-1", mjpeg.url, start_time=None),
        camera_dict("file-1", str(clip), source={"url": str(clip), "loop": True}),
    )
    board = StatusBoard()
    worker = start_worker(cams, board)
    try:
        snap = lambda cid: board.get(cid)  # noqa: E731
        wait_for(
            lambda: all(snap(c).frames_detected > 0 for c in ("rtsp-1", "mjpeg-1", "file-1")),
            30,
            "all cameras detecting",
        )
        wait_for(lambda: snap("rtsp-1").state is CameraState.ONLINE, 15, "rtsp online")

        before = {c: snap(c) for c in ("mjpeg-1", "file-1")}
        rtsp.stop()  # the camera dies mid-stream
        wait_for(lambda: snap("rtsp-1").state is CameraState.OFFLINE, 15, "rtsp offline after kill")
        # the others keep reading (10 fps) and processing (5 fps) while rtsp-1 stays down and retries: wait for
        # a few seconds' worth of their frames during the outage (a state, not a throughput floor: an outage
        # that blocked them would never get there)
        def kept_going() -> bool:
            assert snap("rtsp-1").state is CameraState.OFFLINE, "rtsp-1 came back while its server was stopped"
            return all(
                snap(c).frames_processed - old.frames_processed >= 10 and snap(c).frames_in - old.frames_in >= 20
                for c, old in before.items()
            )

        wait_for(kept_going, 60, "the other cameras to keep going through rtsp-1's outage")
        assert all(snap(c).state is not CameraState.OFFLINE for c in before)

        rtsp.start()  # the camera comes back on the same address
        # one snapshot for all three facts: a later one on a loaded machine may already be stale (offline)
        wait_for(
            lambda: (
                (s := snap("rtsp-1")).frames_in > 0
                and s.state is CameraState.DEGRADED  # back, and recently reconnected
                and s.reconnects >= 1
                and s.error == ""
            ),
            30,
            "rtsp back, shown degraded after its reconnect",
        )
    finally:
        worker.stop()
    assert board.snapshots() == []  # a stopped worker no longer reports its cameras


def test_a_stalled_stream_goes_offline_and_is_reopened(
    rtsp: RtspServer, cameras_yaml: Callable[..., Path]
) -> None:
    board = StatusBoard()
    worker = start_worker(cameras_yaml(camera_dict("rtsp-1", rtsp.url(), start_time=None)), board)
    try:
        wait_for(lambda: board.get("rtsp-1").state is CameraState.ONLINE, 30, "rtsp online")
        rtsp.stall()  # connection stays open, packets stop: only timeouts can notice
        assert (
            wait_for(lambda: board.get("rtsp-1").state is CameraState.OFFLINE, 5.0, "offline on stall") <= 5.0
        )
        # the read timeout ends the stuck read; the reconnect gets a fresh, flowing session
        wait_for(lambda: board.get("rtsp-1").reconnects >= 1, 15, "reconnect after the read timeout")
        wait_for(lambda: board.get("rtsp-1").state is not CameraState.OFFLINE, 30, "flowing again")
    finally:
        worker.stop()


def test_bad_files_are_camera_errors_and_the_good_camera_runs(
    tmp_path: Path, clip: Path, cameras_yaml: Callable[..., Path]
) -> None:
    text = tmp_path / "notes.mp4"
    text.write_text("meeting notes, not a video\n" * 40)
    data = clip.read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])
    cams = cameras_yaml(
        camera_dict("text-1", str(text)),
        camera_dict("cut-1", str(tmp_path / "cut.mp4")),
        camera_dict("missing-1", str(tmp_path / "nope.mp4")),
        camera_dict("good-1", str(clip), source={"url": str(clip), "loop": True}),
    )
    board = StatusBoard()
    worker = start_worker(cams, board)
    try:
        wait_for(lambda: board.get("good-1").frames_detected >= 5, 20, "good camera detecting")
        wait_for(
            lambda: all(board.get(c).error for c in ("text-1", "cut-1", "missing-1")), 10, "errors reported"
        )
        assert "not a video, or corrupt/truncated" in board.get("text-1").error
        assert "not a video, or corrupt/truncated" in board.get("cut-1").error
        assert "does not exist; fix source.url" in board.get("missing-1").error
        for cid in ("text-1", "cut-1", "missing-1"):
            assert board.get(cid).state is CameraState.OFFLINE
        assert board.get("good-1").state is not CameraState.OFFLINE
    finally:
        worker.stop()


def test_credentials_never_reach_status_or_logs(
    rtsp: RtspServer, cameras_yaml: Callable[..., Path], caplog: pytest.LogCaptureFixture
) -> None:
    rtsp.stop()  # unreachable: the worker logs and reports the failure with the URL
    cams = cameras_yaml(
        camera_dict("rtsp-1", rtsp.url(), source={"url": rtsp.url("admin", "hunter2"), "password": "s3cret!"})
    )
    board = StatusBoard()
    caplog.set_level(logging.DEBUG)
    worker = start_worker(cams, board)
    try:
        wait_for(
            lambda: "could not open rtsp stream" in board.get("rtsp-1").error, 15, "open failure reported"
        )
        assert "rtsp://***@127.0.0.1" in board.get("rtsp-1").error
    finally:
        worker.stop()
    logged = caplog.text
    assert "rtsp://***@127.0.0.1" in logged
    for secret in ("hunter2", "s3cret", "admin:"):
        assert (
            secret not in logged and secret not in board.get("rtsp-1").error if board.get("rtsp-1") else True
        )


def test_a_failing_rule_is_shown_in_the_status_and_the_camera_keeps_running(
    clip: Path, cameras_yaml: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rule that raises on one camera's detections (the real-footage crash) is fenced: that camera keeps
    processing with its status naming the rule and the error, and the other camera is untouched."""
    from vision.rules import RULES, Rule
    from vision.types import ViolationKind

    class FailingOnCamBad(Rule):
        def step(self, state, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
            if state.camera_id == "cam-bad":
                raise ZeroDivisionError("division by zero")
            return super().step(state, *args, **kwargs)

    garbage = ViolationKind.EXPOSED_GARBAGE
    monkeypatch.setitem(RULES, garbage, FailingOnCamBad(RULES[garbage].spec))
    loop = {"url": str(clip), "loop": True}
    cams = cameras_yaml(
        camera_dict("cam-bad", str(clip), source=loop), camera_dict("cam-ok", str(clip), source=loop)
    )
    board = StatusBoard()
    worker = start_worker(cams, board)
    try:
        wait_for(
            lambda: "rule exposed_garbage failed: ZeroDivisionError" in board.get("cam-bad").error,
            30,
            "the failing rule named in the camera's status",
        )
        processed = board.get("cam-bad").frames_processed
        wait_for(
            lambda: board.get("cam-bad").frames_processed >= processed + 10, 30, "cam-bad still processing"
        )
        assert board.get("cam-bad").state is CameraState.DEGRADED
        assert board.get("cam-ok").error == "" and board.get("cam-ok").frames_processed > 0
    finally:
        worker.stop()
