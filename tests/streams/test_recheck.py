"""The re-check's judgement of one window (streams.recheck.PlaceWatch): the place, unusable frames, majority."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from streams.capture import SampledFrame
from streams.observers import FrameView
from streams.recheck import PlaceWatch, at_place, presence_classes
from urbaneye.db.rechecks import RecheckResult
from urbaneye.rechecks import RecheckTarget
from vision.config import parse_cameras
from vision.kinds import kind_catalogue
from vision.types import OBJECT_KINDS, Detections, ObjectKind

CAMERA = parse_cameras(
    {"cameras": [{"id": "cam", "source": {"url": "x.mp4"}, "zones": [
        {"id": "z", "kind": "monitored", "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]]}]}]}
).cameras[0]  # fmt: skip
PLACE = (100.0, 60.0, 160.0, 120.0)  # in a 320x180 frame; the case was seen at 640x360
STALL = OBJECT_KINDS.index(ObjectKind.VENDING_STALL)
PERSON = OBJECT_KINDS.index(ObjectKind.PERSON)


def _target(kind: str = "street_vending") -> RecheckTarget:
    box = tuple(v * 2 for v in PLACE)
    return RecheckTarget(
        "r", "c", "cam", "z", kind, "0501", "blue", box, (640, 360), 1, "dispatched", "callback"
    )


def _view(t_s: float, boxes=(), classes=(), picture: str = "street") -> FrameView:  # noqa: ANN001
    rng = np.random.default_rng(int(t_s * 10))
    image = rng.integers(60, 200, (180, 320, 3), dtype=np.uint8)
    if picture == "dark":
        image = (image * 0.05).astype(np.uint8)
    elif picture == "blocked":
        image = np.full((180, 320, 3), 120, np.uint8)
    at = dt.datetime(2026, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=t_s)
    dets = Detections(xyxy=list(boxes), confidence=[0.8] * len(boxes), class_id=list(classes))
    return FrameView(
        CAMERA, SampledFrame("cam", image, t_s, False, at, t_s, 0), t_s, dets, Detections.empty(), True, "m"
    )


def _judge(frames: list[FrameView], window_s: float = 4.0) -> RecheckResult:
    watch = PlaceWatch(_target(), window_s)
    for view in frames:
        watch.add(view)
    return watch.outcome()


@pytest.mark.parametrize(
    ("box", "at"),
    [
        ((100, 60, 160, 120), True),  # the same box
        ((110, 70, 150, 110), True),  # inside the place (small IoU, all of it inside)
        ((90, 50, 150, 110), True),  # shifted a little
        ((150, 60, 210, 120), False),  # a neighbour overlapping a sixth
        ((200, 60, 260, 120), False),  # beside it
    ],
)
def test_at_place(box, at) -> None:  # noqa: ANN001
    assert at_place(np.array([box], np.float32), PLACE).tolist() == [at]


def test_cleared_still_present_and_majority() -> None:
    gone = [_view(t / 2) for t in range(10)]
    assert _judge(gone).result == RecheckResult.CLEARED
    # people at the place do not make a stall
    walker = [_view(t / 2, [(105, 60, 125, 120)], [PERSON]) for t in range(10)]
    assert _judge(walker).result == RecheckResult.CLEARED
    stays = [_view(t / 2, [(102, 62, 158, 118)], [STALL]) for t in range(10)]
    out = _judge(stays)
    assert (out.result, out.present_frames, out.objects_after) == (RecheckResult.STILL_PRESENT, 9, 1)
    assert out.present_bbox_xyxy == (102.0, 62.0, 158.0, 118.0) and out.frame_wh == (320, 180)
    # present in a minority of the frames (occluded a moment, a detector blip): cleared
    blips = [
        _view(t / 2, [(102, 62, 158, 118)] if t < 3 else [], [STALL] if t < 3 else []) for t in range(10)
    ]
    assert _judge(blips).result == RecheckResult.CLEARED


@pytest.mark.parametrize(
    ("picture", "reason"), [("dark", "画面过暗（夜间无补光）"), ("blocked", "画面被遮挡")]
)
def test_unusable_pictures_are_inconclusive(picture: str, reason: str) -> None:
    out = _judge([_view(t / 2, picture=picture) for t in range(10)])
    assert (out.result, out.reason, out.usable_frames) == (RecheckResult.INCONCLUSIVE, reason, 0)


def test_no_frames_is_offline_and_the_window_ends_by_stream_time() -> None:
    out = PlaceWatch(_target(), 4.0).outcome()
    assert (out.result, out.frames) == (RecheckResult.INCONCLUSIVE, 0) and "离线" in out.reason
    watch = PlaceWatch(_target(), 4.0)
    for t in range(20):
        watch.add(_view(t / 2))
    assert watch.done and watch.tally.frames == 9  # t = 0 .. 4 s


def test_presence_classes_of_a_configured_kind() -> None:
    cams = parse_cameras(
        {"violations": [{"id": "goods_display", "name_zh": "出店陈列", "gbt_code": "0504",
                         "template": "stationary_object", "classes": ["vending_stall", "person"],
                         "zone_kinds": ["monitored"], "dwell_s": 40}]}
    )  # fmt: skip
    assert presence_classes("goods_display", kind_catalogue(cams)) == {STALL}
