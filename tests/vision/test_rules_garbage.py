"""Exposed garbage: persists outside bin areas; never while carried or held by a person."""

from __future__ import annotations

import numpy as np
import pytest

from tests.vision.factories import BAG, Noise, Obj, camera, of, rect, run, zone
from vision.rules.garbage import held_by_person

CAM = camera(
    zone("street", "no_vending", road_class="main"), zone("bins", "bin_area", rect(0.55, 0.65, 0.7, 0.8))
)
DWELL_S = 300.0
# a person whose hands hold BAG: the bag is inside their box and above their feet
HOLDER = (BAG[0] - 20, BAG[1] - 150, BAG[2] + 20, BAG[3] + 40)
WALK = [(0, -500, -300), (400, 300, 200)]  # slow diagonal walk across the picture


def test_garbage_left_on_the_street_opens_after_dwell() -> None:
    pile = Obj("garbage", (200.0, 700.0, 260.0, 750.0), 10)
    (opened,) = of(run(CAM, [pile], 360, Noise(miss=0.3, jitter_px=3, seed=4), fps=2.5), "opened")
    assert opened.ts_s - 10 == pytest.approx(DWELL_S, abs=5)
    assert opened.kind == "exposed_garbage" and opened.gbt_code == "0102"


@pytest.mark.parametrize(
    ("name", "objs"),
    [
        (
            "carried by a walker",
            [Obj("garbage", BAG, 0, 400, moves=WALK), Obj("person", HOLDER, 0, 400, moves=WALK)],
        ),
        (
            "held by someone standing for 6 minutes",
            [Obj("garbage", BAG, 0, 400), Obj("person", HOLDER, 0, 400)],
        ),
        ("in the bin area", [Obj("garbage", BAG)]),
        ("put down for a minute, then carried off", [Obj("garbage", (200.0, 700.0, 260.0, 750.0), 0, 60)]),
        (
            "a street bin the detector also calls garbage",
            [
                Obj("trash_bin", (200.0, 600.0, 260.0, 700.0)),
                Obj("garbage", (202.0, 603.0, 259.0, 700.0), score=0.55),
            ],
        ),
    ],
)
def test_no_violation(name: str, objs: list[Obj]) -> None:
    assert of(run(CAM, objs, 400, Noise(miss=0.1, seed=2), fps=2.5), "opened") == [], name


def test_dwell_starts_when_the_bag_is_put_down() -> None:
    # held for 100 s, then left standing where the person dropped it
    held = Obj("garbage", (200.0, 650.0, 240.0, 690.0), 0, 100)
    dropped = Obj("garbage", (200.0, 710.0, 240.0, 750.0), 100, 500)
    holder = Obj("person", (180.0, 550.0, 260.0, 760.0), 0, 104)
    events = run(CAM, [held, dropped, holder], 450, fps=2.5)
    (opened,) = of(events, "opened")
    assert opened.ts_s - 100 == pytest.approx(DWELL_S, abs=5)


def test_a_double_labelled_bin_stays_quiet_when_the_detector_misses_most_frames() -> None:
    bin_ = Obj("trash_bin", (200.0, 600.0, 260.0, 700.0))
    also_garbage = Obj("garbage", (202.0, 603.0, 259.0, 700.0), score=0.55)
    assert (
        of(run(CAM, [bin_, also_garbage], 400, Noise(miss=0.6, jitter_px=4, seed=8), fps=2.5), "opened") == []
    )


def test_walkers_passing_in_front_of_a_pile_do_not_delay_it() -> None:
    pile = Obj("garbage", (200.0, 700.0, 260.0, 750.0), 10)
    # every 20 s someone walks by in front of it, their box covering the pile for about 4 s
    walkers = [
        Obj(
            "person",
            (100.0, 560.0, 160.0, 800.0),  # nearer the camera than the pile: it looks "in their hands"
            20 * i,
            20 * i + 12,
            moves=[(20 * i, 0, 0), (20 * i + 12, 200, 0)],
        )
        for i in range(1, 16)
    ]
    (opened,) = of(run(CAM, [pile, *walkers], 360, fps=2.5), "opened")
    assert opened.ts_s - 10 == pytest.approx(DWELL_S, abs=5)


def test_garbage_beside_a_bin_still_counts() -> None:
    bin_, pile = (
        Obj("trash_bin", (200.0, 600.0, 260.0, 700.0)),
        Obj("garbage", (262.0, 660.0, 322.0, 700.0), 10),
    )
    (opened,) = of(run(CAM, [bin_, pile], 360, fps=2.5), "opened")
    assert opened.ts_s - 10 == pytest.approx(DWELL_S, abs=5)


def test_piles_next_to_each_other_are_one_violation() -> None:
    piles = [Obj("garbage", (200.0 + 45 * i, 700.0, 240.0 + 45 * i, 740.0), 5 * i) for i in range(3)]
    events = run(CAM, piles, 360, fps=2.5)
    (opened,) = of(events, "opened")
    assert opened.object_count == 3
    assert opened.bbox_xyxy == pytest.approx((200, 700, 330, 740), abs=3)


@pytest.mark.parametrize(
    ("garbage", "person", "held"),
    [
        ((40, 50, 50, 70), (30, 0, 60, 100), True),  # in the hand, above the feet
        ((40, 85, 55, 100), (30, 0, 60, 100), False),  # at the feet: lying on the ground
        ((70, 50, 80, 70), (30, 0, 60, 100), False),  # beside the person
        ((20, 50, 50, 70), (30, 0, 60, 100), True),  # sticking out to the side but mostly inside
    ],
)
def test_held_by_person(garbage: tuple, person: tuple, held: bool) -> None:
    assert held_by_person(np.array([garbage], float), np.array([person], float)).tolist() == [held]
