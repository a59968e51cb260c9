"""Frame observers (streams.observers): they see every processed frame, may force a full scan, and one that
raises never stops the camera."""

from __future__ import annotations

import datetime as dt

import numpy as np

from streams.camera import CameraProcessor
from streams.capture import SampledFrame
from streams.observers import FrameView
from vision.config import parse_cameras
from vision.types import Detections


class _Recorder:
    def __init__(self, scan_from: float | None = None) -> None:
        self.views: list[FrameView] = []
        self.scan_from = scan_from

    def wants_full_scan(self, camera_id: str, ts_s: float) -> bool:
        return self.scan_from is not None and ts_s >= self.scan_from

    def observe(self, view: FrameView) -> None:
        self.views.append(view)


class _Broken:
    def wants_full_scan(self, camera_id: str, ts_s: float) -> bool:
        raise RuntimeError("broken observer")

    def observe(self, view: FrameView) -> None:
        raise RuntimeError("broken observer")


class _CountingDetector:
    version = "test"

    def __init__(self) -> None:
        self.calls = 0

    def detect(self, frame_bgr: np.ndarray) -> Detections:
        self.calls += 1
        return Detections.empty()


def _camera_file():
    return parse_cameras(
        {"cameras": [{"id": "cam", "source": {"url": "x.mp4"}, "zones": [
            {"id": "z", "kind": "monitored", "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]]}]}]}
    )  # fmt: skip


def _frame(i: int) -> SampledFrame:
    still = np.full((90, 160, 3), 80, np.uint8)
    at = dt.datetime(2026, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=i)
    return SampledFrame("cam", still, float(i), False, at, float(i), i, fresh=i == 0)


def test_observers_see_every_frame_and_can_force_full_scans():
    cf = _camera_file()
    detector = _CountingDetector()
    recorder, scanner = _Recorder(), _Recorder(scan_from=10.0)
    processor = CameraProcessor(cf.cameras[0], cf.rules, detector, observers=[_Broken(), recorder, scanner])
    for i in range(10):
        processor.process(_frame(i))
    gated_calls = detector.calls
    assert gated_calls < 10  # a still picture: the gate skips most frames
    assert [v.ts_s for v in recorder.views] == [float(i) for i in range(10)]
    assert all(v.camera.id == "cam" and len(v.unknown) == 0 for v in recorder.views)
    for i in range(10, 20):
        processor.process(_frame(i))
    assert detector.calls == gated_calls + 10  # every frame from t=10 was detected: the scanner asked
    assert all(v.detected for v in recorder.views[10:])
