"""The frame strip: bounded recording across any dwell, and the legal evidence rule it must not bend."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from streams.capture import SampledFrame
from streams.frame_strip import FrameStrips
from streams.observers import FrameView
from urbaneye.cases.handoff import EvidenceRuleError, verify_evidence_frames
from urbaneye.cases.spool import STRIP_SEQ_BASE, EvidenceFrame
from vision.config import CameraConfig
from vision.types import Detections, Escalation, ViolationEvent, ViolationKind

T0 = dt.datetime(2025, 6, 1, 2, 0, tzinfo=dt.UTC)
CAMERA = CameraConfig(id="cam-s", source={"url": "clip.mp4"})


def view(ts_s: float, *, fresh: bool = False, wh: tuple[int, int] = (1920, 1080)) -> FrameView:
    image = np.full((wh[1], wh[0], 3), int(ts_s) % 250, np.uint8)
    frame = SampledFrame(
        camera_id=CAMERA.id,
        image=image,
        ts_s=ts_s,
        live=False,
        frame_time=T0 + dt.timedelta(seconds=ts_s),
        captured_mono=0.0,
        seq=0,
        fresh=fresh,
    )
    return FrameView(CAMERA, frame, ts_s, Detections.empty(), Detections.empty(), True, "test")


@pytest.mark.parametrize("dwell_s", [12.0, 180.0, 600.0, 3600.0])
def test_strip_spans_the_dwell_evenly_in_bounded_memory(dwell_s: float) -> None:
    strips = FrameStrips()
    strips.begin(CAMERA.id, "v-1", 100.0)
    most_kept = 0
    step_s = 0.2 if dwell_s < 200 else 1.0  # 5 fps; long dwells at 1 fps keep the test quick
    for i in range(round((dwell_s + 5) / step_s) + 1):
        strips.observe(view(100.0 + i * step_s, wh=(640, 360)))
        most_kept = max(most_kept, strips.kept(CAMERA.id, "v-1"))
    shots = strips.take(CAMERA.id, "v-1", until_s=100.0 + dwell_s)
    assert most_kept <= strips.slots  # memory: at most 16 small JPEGs per violation, whatever the dwell
    assert 6 <= len(shots) <= strips.frames
    times = [s.ts_s for s in shots]
    assert times == sorted(times) and times[-1] <= 100.0 + dwell_s
    assert times[-1] - times[0] >= 0.6 * dwell_s  # across the dwell, not bunched at one end
    gaps = np.diff(times)
    assert gaps.max() <= 2.5 * gaps.min()
    assert strips.recording(CAMERA.id) == 0  # taking ends the recording


def test_strip_frames_are_downscaled_jpegs_of_the_camera() -> None:
    strips = FrameStrips()
    strips.begin(CAMERA.id, "v-1", 0.0)
    for i in range(30):
        strips.observe(view(i * 0.5))
    shots = strips.take(CAMERA.id, "v-1", until_s=15.0)
    assert shots and {s.wh for s in shots} == {(640, 360)} and {s.source_wh for s in shots} == {(1920, 1080)}
    assert shots[0].image().shape == (360, 640, 3)
    assert all(len(s.jpeg) < 100_000 for s in shots)
    assert shots[0].frame_time == T0 + dt.timedelta(seconds=shots[0].ts_s)


def test_recordings_per_camera_are_bounded_and_dropped_on_close() -> None:
    strips = FrameStrips(per_camera=3)
    for i in range(5):
        strips.begin(CAMERA.id, f"v-{i}", float(i))
    assert strips.recording(CAMERA.id) == 3  # the oldest places that never opened are forgotten
    assert strips.take(CAMERA.id, "v-0", 10.0) == []
    strips.drop(CAMERA.id, "v-4")
    assert strips.recording(CAMERA.id) == 2


def test_video_position_counts_from_the_streams_last_start() -> None:
    strips = FrameStrips()
    assert strips.video_s(CAMERA.id, 42.0, live=False) == 42.0  # video time without a seen start
    assert strips.video_s(CAMERA.id, 1.7e9, live=True) is None
    strips.observe(view(130.0, fresh=True))  # a looping file reopened at stream time 130
    assert strips.video_s(CAMERA.id, 135.5, live=False) == pytest.approx(5.5)


def _event(kind: str) -> ViolationEvent:
    return ViolationEvent(
        event=kind,
        violation_id="v-1",
        camera_id=CAMERA.id,
        zone_id="z1",
        kind=ViolationKind.EXPOSED_GARBAGE,
        ts_s=40.0,
        bbox_xyxy=(1, 2, 3, 4),
        score=0.9,
        gbt_code="0102",
        escalation=Escalation.BLUE,
    )


def _frame(seq: int, at_s: float, variant: str = "clean") -> EvidenceFrame:
    return EvidenceFrame(seq, variant, b"\xff\xd8jpeg", T0 + dt.timedelta(seconds=at_s))


def test_strip_frames_never_stand_in_for_the_legal_moments() -> None:
    strip = [_frame(STRIP_SEQ_BASE + i, 5.0 * i, "annotated") for i in range(8)]  # 35 s across
    # the dwell crossing alone plus a strip spanning 35 s is still one legal moment: refused
    with pytest.raises(EvidenceRuleError, match="frame-strip frames do not count"):
        verify_evidence_frames(_event("opened"), [_frame(2, 40.0), *strip])
    # two legal moments 9 s apart stay too close, however long the strip
    with pytest.raises(EvidenceRuleError):
        verify_evidence_frames(_event("opened"), [_frame(1, 31.0), _frame(2, 40.0), *strip])
    verify_evidence_frames(_event("opened"), [_frame(1, 0.0), _frame(2, 40.0), *strip])
    with pytest.raises(EvidenceRuleError, match="must be 'annotated'"):
        verify_evidence_frames(_event("updated"), [_frame(STRIP_SEQ_BASE, 3.0, "clean")])
