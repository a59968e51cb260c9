"""Street vending: dwell by road class, allowed areas and their hours (across midnight), GB/T codes."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.vision.factories import GRILL, STALL, Obj, camera, of, rect, run, zone
from vision.config import RulesConfig
from vision.rules import RULES, vending
from vision.types import OBJECT_KINDS, Detections, ObjectKind, ViolationKind
from vision.zones import ZoneIndex

MARKET = rect(0.3, 0.3, 0.7, 0.7)  # the stall (400..560, 400..520) lies inside


@pytest.mark.parametrize(
    ("road_class", "dwell_s"),
    [("main", 180), ("secondary", 300), ("lane", 600)],
)
def test_dwell_follows_the_road_class(road_class: str, dwell_s: float) -> None:
    cam = camera(zone("street", "no_vending", road_class=road_class))
    events = run(cam, [Obj("vending_stall", STALL, 10, dwell_s + 60)], dwell_s + 60, fps=2.5)
    (opened,) = of(events, "opened")
    assert opened.ts_s - 10 == pytest.approx(dwell_s, abs=3)
    assert opened.dwell_s == pytest.approx(dwell_s, abs=3)
    assert (
        of(run(cam, [Obj("vending_stall", STALL, 10, dwell_s - 20)], dwell_s + 60, fps=2.5), "opened") == []
    )


def test_zone_dwell_override() -> None:
    cam = camera(zone("street", "no_vending", road_class="lane", dwell_s={"street_vending": 90}))
    (opened,) = of(run(cam, [Obj("vending_stall", STALL)], 150, fps=2.5), "opened")
    assert opened.ts_s == pytest.approx(90, abs=3)


FRI_MARKET = {"days": ["fri"], "windows": ["18:00-02:00"]}


@pytest.mark.parametrize(
    ("start", "opened_after_s"),
    [
        (dt.datetime(2024, 5, 10, 19, 0), None),  # Friday evening: market hours, legal
        (dt.datetime(2024, 5, 11, 0, 30), None),  # Saturday 00:30 still Friday's market
        (dt.datetime(2024, 5, 10, 12, 0), 180),  # Friday noon: no market, street rules
        (dt.datetime(2024, 5, 9, 19, 0), 180),  # Thursday evening: not a market day
        (dt.datetime(2024, 5, 10, 1, 0), 180),  # Friday 01:00 would be Thursday's market: none
        (dt.datetime(2024, 5, 11, 1, 58), 120 + 180),  # market closes 02:00: dwell starts then
        (dt.datetime(2024, 5, 10, 17, 58), None),  # sets up 2 min before opening: dwell not reached
    ],
)
def test_allowed_area_during_and_outside_its_hours(start: dt.datetime, opened_after_s: float | None) -> None:
    cam = camera(
        zone("street", "no_vending", road_class="main"),
        zone("market", "allowed_vending", MARKET, schedule=FRI_MARKET),
        start_time=start,
    )
    events = run(cam, [Obj("vending_stall", STALL, 0, 400)], 400, fps=2.5)
    opened = of(events, "opened")
    if opened_after_s is None:
        assert opened == []
    else:
        assert [round(e.ts_s) for e in opened] == [pytest.approx(opened_after_s, abs=3)]
        assert opened[0].zone_id == "street"


def test_stall_outside_the_allowed_area_is_not_exempt() -> None:
    cam = camera(
        zone("street", "no_vending", road_class="main"),
        zone("market", "allowed_vending", rect(0.0, 0.0, 0.2, 0.2)),
        start_time=dt.datetime(2024, 5, 10, 19, 0),
    )
    assert len(of(run(cam, [Obj("vending_stall", STALL)], 200, fps=2.5), "opened")) == 1


def test_watching_zone_schedule_starts_dwell_when_it_comes_into_force() -> None:
    cam = camera(
        zone("rush", "no_vending", road_class="main", schedule={"windows": ["07:00-09:30"]}),
        start_time=dt.datetime(2024, 5, 6, 6, 58),
    )
    (opened,) = of(run(cam, [Obj("vending_stall", STALL)], 400, fps=2.5), "opened")
    assert opened.ts_s == pytest.approx(120 + 180, abs=3)


@pytest.mark.parametrize(
    ("extra", "code"),
    [
        ({}, "0501"),  # 游商
        ({"frontage_id": "xinhua-12"}, "0504"),  # 店外经营 at a shop frontage
        ({"gbt_code": "0504"}, "0504"),
        ({"frontage_id": "xinhua-12", "gbt_code": "0501"}, "0501"),  # the explicit override wins
    ],
)
def test_gbt_code(extra: dict, code: str) -> None:
    cam = camera(zone("street", "no_vending", road_class="main", **extra))
    events = [e for e in run(cam, [Obj("vending_stall", STALL)], 250, fps=2.5) if e.event != "sighting"]
    assert events and {e.gbt_code for e in events} == {code}


def test_stall_with_a_grill_is_reported_once_as_barbecue() -> None:
    cam = camera(zone("street", "no_vending", road_class="main"))
    grill_in_stall = (450.0, 420.0, 520.0, 470.0)
    events = run(cam, [Obj("vending_stall", STALL), Obj("grill", grill_in_stall)], 250, fps=2.5)
    assert [(e.kind, round(e.ts_s)) for e in of(events, "opened")] == [
        (ViolationKind.OPEN_AIR_BARBECUE, pytest.approx(60, abs=3))
    ]
    # a grill elsewhere does not hide the stall
    events = run(cam, [Obj("vending_stall", STALL), Obj("grill", GRILL)], 250, fps=2.5)
    assert sorted(str(e.kind) for e in of(events, "opened")) == ["open_air_barbecue", "street_vending"]


def test_two_stalls_side_by_side_are_two_violations() -> None:
    cam = camera(zone("street", "no_vending", road_class="main"))
    left = Obj("vending_stall", (200.0, 400.0, 360.0, 520.0))
    right = Obj("vending_stall", (380.0, 400.0, 540.0, 520.0), 5)
    events = run(cam, [left, right], 250, fps=2.5)
    assert len({e.violation_id for e in of(events, "opened")}) == 2


def test_rule_is_a_pure_step_function() -> None:
    rule = RULES[ViolationKind.STREET_VENDING]
    assert rule.spec is vending.SPEC and vending.SPEC.object_kinds == (ObjectKind.VENDING_STALL,)
    cam = camera(zone("street", "no_vending", road_class="main"))
    index = ZoneIndex(cam)
    state = rule.init_state(cam.id, RulesConfig())
    det = Detections(xyxy=[STALL], confidence=[0.9], class_id=[OBJECT_KINDS.index(ObjectKind.VENDING_STALL)])
    events = []
    for k in range(1100):  # 220 s at 5 fps: time is only what the caller says it is
        t = k * 0.2
        state, out = rule.step(state, det, index.frame((1000, 1000), t), t)
        events += out
    assert [(e.event, round(e.ts_s)) for e in events] == [("sighting", 15), ("opened", 180), ("updated", 210)]
