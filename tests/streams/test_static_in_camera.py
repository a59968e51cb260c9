"""The static-object detector inside the camera loop (issue 14 item 2): it sees every processed frame, gated
or not; its unknown_object regions reach observers (FrameView.unknown) and the rules (unclassified cases),
a model label at the place wins, and an object the false-alarm memory remembers becomes background."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from streams.camera import CameraProcessor
from streams.capture import SampledFrame
from streams.observers import FrameView
from vision.config import parse_cameras
from vision.memory import MemoryBook, entry_from_crop
from vision.types import OBJECT_KINDS, Detections, ObjectKind, ViolationKind

FPS = 5.0
W, H = 480, 270
BOX = (300, 150, 360, 200)  # where a crate is put down at PUT_S
PUT_S = 10.0
GARBAGE = OBJECT_KINDS.index(ObjectKind.GARBAGE)

_rng = np.random.default_rng(7)
BACKGROUND = _rng.integers(60, 140, (H, W, 3), dtype=np.uint8)
CRATE = _rng.integers(0, 255, (BOX[3] - BOX[1], BOX[2] - BOX[0], 3), dtype=np.uint8)


def picture(t_s: float) -> np.ndarray:
    img = BACKGROUND.copy()
    if t_s >= PUT_S:
        img[BOX[1] : BOX[3], BOX[0] : BOX[2]] = CRATE
    return img


def frame(k: int) -> SampledFrame:
    t = k / FPS
    at = dt.datetime(2026, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=t)
    return SampledFrame("cam", picture(t), t, False, at, t, k, fresh=k == 0)


class _Model:
    """The trained detector: sees nothing, or a garbage bag where the crate is (``sees_garbage``)."""

    version = "test"

    def __init__(self, sees_garbage: bool = False) -> None:
        self.sees_garbage = sees_garbage
        self.calls = 0

    def detect(self, frame_bgr: np.ndarray) -> Detections:
        self.calls += 1
        if (
            self.sees_garbage
            and frame_bgr[BOX[1] + 5, BOX[0] + 5].tolist() != BACKGROUND[BOX[1] + 5, BOX[0] + 5].tolist()
        ):
            return Detections(xyxy=[BOX], confidence=[0.8], class_id=[GARBAGE])
        return Detections.empty()


class _Views:
    def __init__(self) -> None:
        self.unknown: list[tuple[float, int]] = []

    def wants_full_scan(self, camera_id: str, ts_s: float) -> bool:
        return False

    def observe(self, view: FrameView) -> None:
        self.unknown.append((view.ts_s, len(view.unknown)))


def _cameras(**camera_extra):
    return parse_cameras(
        {
            "cameras": [
                {
                    "id": "cam",
                    "source": {"url": "x.mp4"},
                    "zones": [
                        {
                            "id": "z",
                            "kind": "monitored",
                            "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]],
                            "dwell_s": {"exposed_garbage": 15},
                        }
                    ],
                    **camera_extra,
                }
            ]
        }
    )


def _run(processor: CameraProcessor, seconds: float) -> list:
    events = []
    for k in range(int(seconds * FPS)):
        events += processor.process(frame(k)).events
    return events


def test_an_unknown_crate_opens_an_unclassified_case_under_motion_gating() -> None:
    cf, model, views = _cameras(static_objects=True), _Model(), _Views()
    processor = CameraProcessor(cf.cameras[0], cf.rules, model, gating=True, observers=[views])
    opened = [e for e in _run(processor, 80.0) if e.event == "opened"]
    assert [(e.kind, e.unclassified, e.kind_name_zh) for e in opened] == [
        (ViolationKind.EXPOSED_GARBAGE, True, "暴露垃圾")
    ]
    x1, y1, x2, y2 = opened[0].bbox_xyxy
    assert abs(x1 - BOX[0]) <= 8 and abs(y2 - BOX[3]) <= 8
    # reported after static_s (20 s) of stillness; observers saw the regions on gated frames too
    first = min(t for t, n in views.unknown if n)
    assert PUT_S + 15.0 <= first <= PUT_S + 35.0
    assert model.calls < processor.frames / 3  # the model was gated; the static detector was not
    # its dwell (15 s) counts from when it was left, which the static detector knows, not from its report
    assert abs(opened[0].first_seen_s - PUT_S) <= 3.0
    # (it opens once it has settled and 10 s after its first evidence frame: rules.evidence_min_gap_s)
    assert first <= opened[0].ts_s <= first + 15.0 and opened[0].ts_s >= PUT_S + 15.0


def test_the_models_label_wins() -> None:
    cf, model = _cameras(static_objects=True), _Model(sees_garbage=True)
    processor = CameraProcessor(cf.cameras[0], cf.rules, model, gating=False)
    opened = [e for e in _run(processor, 60.0) if e.event == "opened"]
    assert [(e.kind, e.unclassified) for e in opened] == [(ViolationKind.EXPOSED_GARBAGE, False)]


@pytest.mark.parametrize(("camera_extra", "live"), [({}, False), ({"static_objects": False}, True)])
def test_off_for_file_replays_by_default_and_when_the_camera_says_so(camera_extra: dict, live: bool) -> None:
    cf, views = _cameras(**camera_extra), _Views()
    processor = CameraProcessor(cf.cameras[0], cf.rules, _Model(), gating=True, live=live, observers=[views])
    assert processor.static is None
    assert _run(processor, 20.0) == [] and {n for _, n in views.unknown} == {0}


def test_an_object_the_memory_remembers_becomes_background() -> None:
    cf, views = _cameras(static_objects=True), _Views()
    entry = entry_from_crop("m1", "cam", ViolationKind.EXPOSED_GARBAGE, BOX, picture(PUT_S))
    processor = CameraProcessor(
        cf.cameras[0], cf.rules, _Model(), gating=True, observers=[views], memory=MemoryBook([entry])
    )
    assert _run(processor, 80.0) == []
    # at most a frame or two of the crate's first, partial pieces (they do not look like the whole crate)
    # before the whole of it is recognised and absorbed; nothing after
    seen = [t for t, n in views.unknown if n]
    assert len(seen) <= 2 and all(t <= PUT_S + 30.0 for t in seen)
    # without the memory, the same crate is reported
    plain = CameraProcessor(cf.cameras[0], cf.rules, _Model(), gating=True)
    assert [e.unclassified for e in _run(plain, 80.0) if e.event == "opened"] == [True]
