"""Per-camera capture pieces: sampling, bounded buffers, backoff, the capture thread over real files."""

from __future__ import annotations

import datetime as dt
import random
import threading
import time
from pathlib import Path

import pytest

from streams.capture import Backoff, CaptureThread, FrameBuffer, SampledFrame, Sampler
from streams.status import CameraHealth, CameraState
from tests.streams.conftest import camera_dict
from tests.streams.helpers import write_clip
from vision.config import CameraConfig


@pytest.mark.parametrize(
    ("input_fps", "detect_fps", "seconds", "expected"),
    [(25, 5, 2, 10), (10, 5, 2, 10), (30, 5, 1, 5), (4, 5, 2, 8), (25, 0.5, 4, 2)],
)
def test_sampler_picks_detect_fps_by_stream_time(
    input_fps: float, detect_fps: float, seconds: float, expected: int
) -> None:
    s = Sampler(detect_fps)
    assert sum(s.due(i / input_fps) for i in range(round(seconds * input_fps))) == expected


def test_sampler_does_not_burst_after_a_gap() -> None:
    s = Sampler(5)
    assert [s.due(t) for t in (0.0, 0.2, 5.0, 5.04, 5.2)] == [True, True, True, False, True]


def test_frame_buffer_drops_the_oldest_and_counts() -> None:
    woken = threading.Event()
    buf = FrameBuffer(maxlen=2, on_ready=woken.set)
    assert [buf.put(i) for i in range(5)] == [0, 0, 1, 1, 1]
    assert woken.is_set() and buf.dropped == 3 and len(buf) == 2
    assert [buf.get_nowait(), buf.get_nowait(), buf.get_nowait()] == [3, 4, None]


def test_backoff_doubles_to_the_cap_with_jitter_and_resets() -> None:
    b = Backoff(initial_s=1, cap_s=60, jitter=0.2, rng=random.Random(7))
    delays = [b.next() for _ in range(9)]
    for got, base in zip(delays, [1, 2, 4, 8, 16, 32, 60, 60, 60], strict=True):
        assert base * 0.8 <= got <= base * 1.2
    assert len({round(d, 6) for d in delays[-3:]}) == 3  # jitter: capped retries are not in lock-step
    assert 48 <= b.longest() <= 72
    b.reset()
    assert 0.8 <= b.next() <= 1.2


def _drain(buf: FrameBuffer) -> list[SampledFrame]:
    out = []
    while (f := buf.get_nowait()) is not None:
        out.append(f)
    return out


def _run_capture(
    camera: CameraConfig, realtime: bool = False, maxlen: int = 1000
) -> tuple[list[SampledFrame], CameraHealth]:
    buf = FrameBuffer(maxlen=maxlen)
    health = CameraHealth(camera.id, camera.detect_fps)
    cap = CaptureThread(camera, buf, health, realtime=realtime)
    cap.start()
    cap.join(30)
    assert not cap.is_alive()
    return _drain(buf), health


def test_capture_of_a_file_samples_with_video_time_and_stops_at_the_end(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "c.mp4", seconds=3, fps=10)
    camera = CameraConfig.model_validate(camera_dict("cam-1", str(clip)))
    frames, health = _run_capture(camera)
    assert [round(f.ts_s, 2) for f in frames] == [round(0.2 * i, 2) for i in range(15)]
    assert not any(f.live for f in frames)
    assert frames[0].fresh and not any(f.fresh for f in frames[1:])
    # camera start_time 10:00+08:00 = 02:00 UTC; evidence files are named by video time
    assert frames[5].frame_time == dt.datetime(2025, 6, 1, 2, 0, 1, tzinfo=dt.UTC)
    snap = health.snapshot()
    assert (snap.frames_in, snap.state, snap.error) == (30, CameraState.OFFLINE, "end of file")


def test_a_looping_file_keeps_stream_time_increasing(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "c.mp4", seconds=1, fps=10)
    camera = CameraConfig.model_validate(
        camera_dict("cam-1", str(clip), source={"url": str(clip), "loop": True})
    )
    buf = FrameBuffer(maxlen=1000)
    health = CameraHealth(camera.id, camera.detect_fps)
    cap = CaptureThread(camera, buf, health, realtime=False)
    cap.start()
    deadline = time.monotonic() + 20
    while len(buf) < 16 and time.monotonic() < deadline:
        time.sleep(0.02)
    cap.stop()
    cap.join(10)
    frames = _drain(buf)
    times = [f.ts_s for f in frames]
    assert len(frames) >= 16
    assert all(b > a for a, b in zip(times, times[1:], strict=False))
    assert [round(t, 2) for t in times[:12]] == [round(0.2 * i, 2) for i in range(12)]  # 1.0 s loop, no gap
    assert [f.fresh for f in frames[:12]] == [True, False, False, False, False] * 2 + [True, False]
    assert health.snapshot().reconnects == 0  # a loop is not a reconnect


def test_realtime_pacing_and_wall_clock_without_start_time(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "c.mp4", seconds=1, fps=10)
    camera = CameraConfig.model_validate(camera_dict("cam-1", str(clip), start_time=None))
    t0 = time.time()
    frames, _ = _run_capture(camera, realtime=True)
    assert len(frames) == 5 and all(f.live for f in frames)
    # epoch seconds, spaced by video time (paced like a live camera, not read flat out)
    assert t0 - 1 <= frames[0].ts_s <= time.time()
    assert [round(f.ts_s - frames[0].ts_s, 2) for f in frames] == [0.0, 0.2, 0.4, 0.6, 0.8]
    assert frames[-1].captured_mono - frames[0].captured_mono >= 0.7


def test_capture_of_a_non_video_reports_the_error_and_keeps_retrying(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00\x01garbage" * 100)
    camera = CameraConfig.model_validate(camera_dict("cam-1", str(bad)))
    health = CameraHealth(camera.id, camera.detect_fps)
    cap = CaptureThread(camera, FrameBuffer(), health, realtime=False)
    cap.start()
    deadline = time.monotonic() + 10
    while "not a video" not in health.snapshot().error and time.monotonic() < deadline:
        time.sleep(0.05)
    snap = health.snapshot()
    assert snap.state is CameraState.OFFLINE and "could not be opened: not a video" in snap.error
    assert cap.is_alive()  # waits (capped backoff) for the file to be fixed instead of dying
    cap.stop()
    cap.join(5)
    assert not cap.is_alive()
