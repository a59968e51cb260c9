"""Rules on the static-object detector's unknown_object regions (issue 14 item 2): zones say which kinds an
unknown object may raise, such events are unclassified, and a model label at the place wins."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tests.vision.factories import BAG, FRAME_WH, STALL, Obj, Scene, camera, of, render, zone
from vision.config import RulesConfig
from vision.pipeline import CameraPipeline
from vision.static_objects import with_unknown
from vision.types import (
    OBJECT_KINDS,
    STILL_S_KEY,
    UNKNOWN_OBJECT_CLASS_ID,
    Detections,
    ObjectKind,
    ViolationEvent,
    ViolationKind,
)

PILE = (600.0, 650.0, 700.0, 740.0)


def region(box: tuple[float, ...], score: float = 0.7) -> Detections:
    return Detections(xyxy=[box], confidence=[score], class_id=[UNKNOWN_OBJECT_CLASS_ID])


def replay_with_regions(
    cam: Any,
    objs: list[Obj],
    regions: list[tuple[tuple[float, ...], float, float]],
    duration_s: float,
    *,
    model_every: int = 1,
) -> list[ViolationEvent]:
    """Replay model detections plus unknown regions ``(box, from_s, to_s)`` as a camera merges them; the model
    runs on every ``model_every``-th frame only (the others carry its last detections, as motion gating does)."""
    pipe = CameraPipeline(cam, RulesConfig(), tracker="auto")
    events: list[ViolationEvent] = []
    carried = Detections.empty()
    for k, (t, det) in enumerate(render(Scene(objs, duration_s))):
        fresh = k % model_every == 0
        if fresh:
            carried = det
        found = Detections.merge([region(b) for b, t0, t1 in regions if t0 <= t < t1])
        events.extend(pipe.step(with_unknown(carried, found), t, FRAME_WH, fresh=fresh))
    return events


GARBAGE_60 = {"exposed_garbage": 60, "street_vending": 60}


@pytest.mark.parametrize("model_every", [1, 50], ids=["model-every-frame", "model-gated"])
def test_an_unknown_object_raises_exposed_garbage_unclassified(model_every: int) -> None:
    cam = camera(zone("m1", "monitored", dwell_s=GARBAGE_60))
    events = replay_with_regions(cam, [], [(PILE, 5.0, 1e9)], 100.0, model_every=model_every)
    opened = of(events, "opened")
    assert [(e.kind, e.unclassified) for e in opened] == [(ViolationKind.EXPOSED_GARBAGE, True)]
    assert 60.0 <= opened[0].ts_s - 5.0 <= 70.0 and opened[0].kind_name_zh == "暴露垃圾"


def test_the_known_label_wins_over_the_unknown_region() -> None:
    cam = camera(zone("m1", "monitored", dwell_s=GARBAGE_60))
    # the model sees the pile as garbage from 30 s on: the violation is not unclassified any more
    events = replay_with_regions(cam, [Obj("garbage", PILE, start_s=30.0)], [(PILE, 5.0, 1e9)], 100.0)
    opened = of(events, "opened")
    assert [(e.kind, e.unclassified) for e in opened] == [(ViolationKind.EXPOSED_GARBAGE, False)]
    assert len({e.violation_id for e in events}) == 1  # one place, one violation


@pytest.mark.parametrize(
    ("zone_kw", "kinds"),
    [
        ({"kind": "no_vending"}, [ViolationKind.EXPOSED_GARBAGE]),  # default: garbage, not vending
        ({"kind": "no_vending", "unknown_object_kinds": []}, []),  # the zone turns unknown objects off
        ({"kind": "no_vending", "unknown_object_kinds": ["street_vending"]}, [ViolationKind.STREET_VENDING]),
        ({"kind": "no_parking"}, []),  # bikes are never raised from an unknown object by default
    ],
)
def test_zones_say_which_kinds_an_unknown_object_raises(zone_kw: dict, kinds: list) -> None:
    kind = zone_kw.pop("kind")
    cam = camera(zone("z1", kind, dwell_s={"exposed_garbage": 60, "street_vending": 60}, **zone_kw))
    opened = of(replay_with_regions(cam, [], [(PILE, 5.0, 1e9)], 100.0), "opened")
    assert [e.kind for e in opened] == kinds and all(e.unclassified for e in opened)


def test_grace_and_close_apply_to_unknown_objects() -> None:
    cam = camera(zone("m1", "monitored", dwell_s=GARBAGE_60))
    events = replay_with_regions(cam, [], [(PILE, 5.0, 90.0)], 150.0)
    assert [e.event for e in events if e.event != "updated"] == ["sighting", "opened", "closed"]
    closed = of(events, "closed")[0]
    assert closed.unclassified and 90.0 + 19.0 <= closed.ts_s <= 90.0 + 22.0  # rules.grace_s = 20


def test_with_unknown_drops_regions_a_model_detection_explains() -> None:
    person = OBJECT_KINDS.index(ObjectKind.PERSON)
    garbage = OBJECT_KINDS.index(ObjectKind.GARBAGE)
    model = Detections(xyxy=[BAG, STALL], confidence=[0.8, 0.3], class_id=[garbage, person])
    regions = Detections.merge(
        [
            region((595.0, 695.0, 645.0, 745.0)),
            region((400.0, 400.0, 560.0, 520.0)),
            region((10.0, 10.0, 60.0, 60.0)),
        ]
    )
    merged = with_unknown(model, regions)
    # the bag explains the first region; a person never explains one; the third is nobody's
    assert merged.class_id.tolist() == [garbage, person, UNKNOWN_OBJECT_CLASS_ID, UNKNOWN_OBJECT_CLASS_ID]
    assert np.allclose(merged.xyxy[2:], [[400, 400, 560, 520], [10, 10, 60, 60]])
    assert with_unknown(model, Detections.empty()) is model


def test_dwell_counts_from_when_the_static_detector_saw_the_object_left() -> None:
    """A region is reported after ``static_s`` seconds of stillness; its dwell is back-dated by as much."""
    cam = camera(zone("m1", "monitored", dwell_s=GARBAGE_60))
    pipe = CameraPipeline(cam, RulesConfig(), tracker="auto")
    events: list[ViolationEvent] = []
    for k in range(int(100 * 5)):
        t = k / 5
        still = Detections.empty()
        if t >= 25.0:  # left at 5 s, reported from 25 s with 20 s of stillness behind it
            still = region(PILE).with_(data={STILL_S_KEY: np.array([t - 5.0], np.float32)})
        events.extend(pipe.step(with_unknown(Detections.empty(), still), t, FRAME_WH, fresh=k % 50 == 0))
    opened = of(events, "opened")
    assert len(opened) == 1 and abs(opened[0].first_seen_s - 5.0) <= 0.5
    assert 65.0 <= opened[0].ts_s <= 70.0
