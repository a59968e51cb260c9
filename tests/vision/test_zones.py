"""Zone geometry, anchors, exemptions and schedules (camera local time, windows across midnight)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from tests.vision.factories import FRAME_WH, camera, rect, zone
from vision.config import ZoneKind
from vision.types import OBJECT_KINDS, Detections, ObjectKind, ViolationKind
from vision.zones import ZoneGeometry, ZoneIndex, exempted_kinds, points_in_polygon, watched_kinds

L_SHAPE = [[0.0, 0.0], [0.6, 0.0], [0.6, 0.3], [0.3, 0.3], [0.3, 0.6], [0.0, 0.6]]  # concave


def cid(kind: str) -> int:
    return OBJECT_KINDS.index(ObjectKind(kind))


@pytest.mark.parametrize(
    ("point", "inside"),
    [
        ((100, 100), True),  # in the corner square
        ((500, 100), True),  # in the top arm
        ((100, 500), True),  # in the left arm
        ((450, 450), False),  # in the notch of the L
        ((700, 100), False),  # right of everything
        ((-5, 100), False),
    ],
)
def test_points_in_concave_polygon(point: tuple[int, int], inside: bool) -> None:
    poly = np.array(L_SHAPE) * FRAME_WH
    assert points_in_polygon(np.array([point], float), poly).tolist() == [inside]
    geo = ZoneGeometry((camera(zone("z", "no_vending", L_SHAPE)).zones[0],), FRAME_WH)
    assert geo.contains(np.array([point], float)).tolist() == [[inside]]


@pytest.mark.parametrize(
    ("box", "expected"),
    [
        ((0, 0, 200, 200), 1.0),  # fully inside the L
        ((200, 0, 400, 200), 1.0),
        ((400, 400, 600, 600), 0.0),  # in the notch
        ((500, 200, 700, 400), 0.25),  # quarter overlaps the top arm
        ((250, 250, 350, 350), 0.75),  # straddles the inner corner
        ((-100, 0, 100, 100), 0.5),  # half off-frame counts as outside
    ],
)
def test_overlap_fraction(box: tuple[int, ...], expected: float) -> None:
    geo = ZoneGeometry((camera(zone("z", "no_vending", L_SHAPE)).zones[0],), FRAME_WH)
    assert geo.overlap(np.array([box], float))[0, 0] == pytest.approx(expected, abs=0.03)


@pytest.mark.parametrize(
    ("kind", "box", "member"),
    [
        # bikes and people count where they stand: bottom-centre
        ("bicycle", (400, 300, 560, 420), True),  # bottom-centre x=480 inside, though the box pokes out
        ("bicycle", (480, 100, 560, 420), False),  # bottom-centre x=520 is right of the zone
        ("person", (450, 100, 540, 600), True),  # bottom-centre (495, 600) inside
        # stalls / garbage / grills count by overlap >= 0.5
        ("vending_stall", (400, 100, 600, 300), True),  # exactly half inside
        ("vending_stall", (420, 100, 620, 300), False),  # 40 % inside
        ("garbage", (300, 300, 340, 340), True),
        ("grill", (480, 300, 600, 360), False),
    ],
)
def test_membership_uses_the_kinds_anchor(kind: str, box: tuple[int, ...], member: bool) -> None:
    geo = ZoneGeometry((camera(zone("left", "no_vending", rect(0, 0, 0.5, 1))).zones[0],), FRAME_WH)
    det = Detections(xyxy=[box], confidence=[0.9], class_id=[cid(kind)])
    assert geo.membership(det.xyxy, det.class_id)[0, 0] == member


def test_geometry_is_cached_per_frame_size_and_scales_with_it() -> None:
    index = ZoneIndex(camera(zone("left", "no_vending", rect(0, 0, 0.5, 1))))
    small, big = index.frame((640, 480), 0.0), index.frame((1920, 1080), 0.0)
    assert index.frame((640, 480), 5.0).geometry is small.geometry
    det = Detections(xyxy=[[900, 500, 1000, 600]], confidence=[0.9], class_id=[cid("garbage")])
    assert big.membership(det).tolist() == [[True]]  # left half of 1920 wide
    assert small.membership(det).tolist() == [[False]]  # off the right of a 640 frame


@pytest.mark.parametrize(
    ("kind", "violations", "watches", "exempts"),
    [
        ("no_vending", None, {"street_vending", "exposed_garbage", "open_air_barbecue"}, set()),
        ("no_parking", None, {"bike_misparking"}, set()),
        ("monitored", ["exposed_garbage"], {"exposed_garbage"}, set()),
        ("allowed_vending", None, set(), {"street_vending"}),
        (
            "allowed_vending",
            ["street_vending", "open_air_barbecue"],
            set(),
            {"street_vending", "open_air_barbecue"},
        ),
        ("bike_bay", None, set(), {"bike_misparking"}),
        ("bin_area", None, set(), {"exposed_garbage"}),
    ],
)
def test_watched_and_exempted_kinds(
    kind: str, violations: list[str] | None, watches: set, exempts: set
) -> None:
    extra = {} if violations is None else {"violations": violations}
    z = camera(zone("z", kind, **extra)).zones[0]
    assert z.kind == ZoneKind(kind)
    assert {str(k) for k in watched_kinds(z)} == watches
    assert {str(k) for k in exempted_kinds(z)} == exempts


@pytest.mark.parametrize(
    ("local_start", "offset_s", "active"),
    [
        (dt.datetime(2024, 5, 10, 17, 59), 0, False),  # Friday before the market opens
        (dt.datetime(2024, 5, 10, 17, 59), 60, True),  # 18:00 Friday
        (dt.datetime(2024, 5, 10, 23, 59), 120, True),  # 00:01 Saturday: Friday's window
        (dt.datetime(2024, 5, 11, 1, 59), 59, True),  # 01:59:59 Saturday
        (dt.datetime(2024, 5, 11, 1, 59), 61, False),  # 02:00:01 Saturday: closed
        (dt.datetime(2024, 5, 9, 23, 0), 0, False),  # Thursday night: not a market day
        (dt.datetime(2024, 5, 10, 1, 0), 0, False),  # Friday 01:00 belongs to Thursday's window
        (dt.datetime(2024, 5, 12, 1, 0), 0, True),  # Sunday 01:00 belongs to Saturday's window
    ],
)
def test_overnight_schedule_in_camera_local_time(
    local_start: dt.datetime, offset_s: float, active: bool
) -> None:
    cam = camera(
        zone("market", "allowed_vending", schedule={"days": ["fri", "sat"], "windows": ["18:00-02:00"]}),
        start_time=local_start,
    )
    index = ZoneIndex(cam)
    assert index.active(offset_s).tolist() == [active]
    assert index.frame(FRAME_WH, offset_s).active.tolist() == [active]


def test_schedule_follows_the_camera_time_zone() -> None:
    # 2024-05-10 18:30 in Shanghai is 12:30 in Berlin (CEST): the market is open only in Shanghai.
    start = dt.datetime(2024, 5, 10, 10, 30, tzinfo=dt.UTC)
    market = zone("market", "allowed_vending", schedule={"days": ["fri"], "windows": ["18:00-22:00"]})
    shanghai = ZoneIndex(camera(market, start_time=start, timezone="Asia/Shanghai"))
    berlin = ZoneIndex(camera(market, start_time=start, timezone="Europe/Berlin"))
    assert shanghai.active(0).tolist() == [True]
    assert berlin.active(0).tolist() == [False]
    # live: ts_s are epoch seconds
    live = ZoneIndex(camera(market, timezone="Asia/Shanghai"), live=True)
    assert live.active(start.timestamp()).tolist() == [True]


def test_relevant_uses_a_loose_test_so_objects_on_the_edge_are_followed() -> None:
    index = ZoneIndex(
        camera(zone("left", "no_vending", rect(0, 0, 0.5, 1)), zone("bay", "bike_bay", rect(0.6, 0, 1, 1)))
    )
    zones = index.frame(FRAME_WH, 0.0)
    det = Detections(
        xyxy=[[420, 100, 620, 300], [700, 100, 800, 200], [300, 600, 380, 660]],
        confidence=[0.9, 0.9, 0.9],
        class_id=[cid("vending_stall"), cid("vending_stall"), cid("bicycle")],
    )
    assert zones.relevant(det, ViolationKind.STREET_VENDING).tolist() == [True, False, True]
    assert zones.relevant(det, ViolationKind.BIKE_MISPARKING).tolist() == [
        False,
        False,
        False,
    ]  # no no_parking zone
    touched = zones.with_touch(det, [cid("vending_stall")])
    # the first stall pokes 10 % into the bay; rows of other kinds are not computed
    assert touched.data["zone_touch"].tolist() == [[True, True], [False, True], [False, False]]
