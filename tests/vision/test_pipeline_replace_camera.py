"""Zone edits reach a running pipeline: rule state carries over, removed zones close their violations."""

from __future__ import annotations

from typing import Any

import pytest

from vision.config import CameraConfig, RulesConfig, parse_cameras
from vision.pipeline import CameraPipeline
from vision.types import OBJECT_KINDS, Detections, ObjectKind, ViolationEvent

FRAME_WH = (1000, 1000)
GARBAGE = OBJECT_KINDS.index(ObjectKind.GARBAGE)
BOX_A = (200.0, 200.0, 260.0, 260.0)
BOX_B = (700.0, 200.0, 760.0, 260.0)
RULES = RulesConfig(grace_s=3, reopen_cooldown_s=60)


def zone(zone_id: str, x1: float, x2: float, kind: str = "monitored") -> dict[str, Any]:
    return {
        "id": zone_id,
        "kind": kind,
        "polygon": [[x1, 0.1], [x2, 0.1], [x2, 0.4], [x1, 0.4]],
        "dwell_s": {"exposed_garbage": 5},
    }


ZONE_A = zone("a", 0.1, 0.4)
ZONE_B = zone("b", 0.6, 0.9)


def camera(*zones: dict[str, Any]) -> CameraConfig:
    raw = {"id": "cam-1", "source": {"url": "f.mp4"}, "start_time": "2025-06-01T10:00:00+08:00"}
    return parse_cameras({"cameras": [{**raw, "zones": list(zones)}]}).cameras[0]


def run(
    pipe: CameraPipeline, t0_s: float, t1_s: float, boxes: list[tuple[float, ...]]
) -> list[ViolationEvent]:
    """Both piles seen in every frame at 5 fps from t0 to t1 (exclusive)."""
    det = Detections(
        xyxy=[list(b) for b in boxes], confidence=[0.9] * len(boxes), class_id=[GARBAGE] * len(boxes)
    )
    events = []
    for i in range(round((t1_s - t0_s) * 5)):
        events += [e for e in pipe.step(det, t0_s + i * 0.2, FRAME_WH) if e.event != "sighting"]
    return events


def opened(events: list[ViolationEvent]) -> dict[str, str]:
    return {e.zone_id: e.violation_id for e in events if e.event == "opened"}


@pytest.fixture
def pipe() -> CameraPipeline:
    return CameraPipeline(camera(ZONE_A), RULES, tracker=None)


def test_added_zone_opens_its_violation_and_the_open_one_keeps_its_id(pipe: CameraPipeline) -> None:
    first = opened(run(pipe, 0, 20, [BOX_A, BOX_B]))
    assert list(first) == ["a"]  # B's pile lies in no zone yet

    # the new zone comes first in the list: every remembered zone index moves
    assert pipe.replace_camera(camera(ZONE_B, ZONE_A), 20.0) == []
    events = run(pipe, 20, 40, [BOX_A, BOX_B])
    assert opened(events).keys() == {"b"}  # A's violation did not re-open: it never closed
    assert not [e for e in events if e.event == "closed"]
    assert {e.violation_id for e in events if e.zone_id == "a"} <= {first["a"]}

    # an edit to zone A (nudged polygon, same id) keeps its violation open too
    nudged = {**ZONE_A, "polygon": [[0.12, 0.1], [0.4, 0.1], [0.4, 0.42], [0.12, 0.42]]}
    assert pipe.replace_camera(camera(ZONE_B, nudged), 40.0) == []
    later = run(pipe, 40, 100, [BOX_A, BOX_B])
    assert [e.event for e in later if e.zone_id == "a"] == ["updated", "updated"]
    assert {e.violation_id for e in later if e.zone_id == "a"} == {first["a"]}


def test_removed_zone_closes_its_open_violation_now(pipe: CameraPipeline) -> None:
    pipe.replace_camera(camera(ZONE_A, ZONE_B), 0.0)
    ids = opened(run(pipe, 0, 20, [BOX_A, BOX_B]))
    assert ids.keys() == {"a", "b"}

    closed = pipe.replace_camera(camera(ZONE_B), 20.0)
    assert [(e.event, e.zone_id, e.violation_id, e.ts_s) for e in closed] == [("closed", "a", ids["a"], 20.0)]
    assert closed[0].dwell_s > 10 and closed[0].gbt_code == "0102"
    after = run(pipe, 20, 40, [BOX_A, BOX_B])
    assert {e.zone_id for e in after} <= {"b"}  # pile A is in no zone now: nothing re-opens
    assert "closed" not in [e.event for e in after]


def test_a_zone_that_stops_watching_a_kind_closes_it_and_the_rule_stops(pipe: CameraPipeline) -> None:
    vid = opened(run(pipe, 0, 20, [BOX_A]))["a"]
    bins = {**ZONE_A, "kind": "bin_area", "dwell_s": {}}  # garbage is allowed there now
    closed = pipe.replace_camera(camera(bins), 20.0)
    assert [(e.event, e.violation_id) for e in closed] == [("closed", vid)]
    assert run(pipe, 20, 40, [BOX_A]) == []


def test_swap_refuses_another_cameras_config(pipe: CameraPipeline) -> None:
    other = camera(ZONE_A).model_copy(update={"id": "cam-2"})
    with pytest.raises(ValueError, match="camera 'cam-2' given for the pipeline of 'cam-1'"):
        pipe.replace_camera(other, 0.0)
