"""Open-air barbecue: a grill persisting 60 s; smoke nearby is supporting evidence."""

from __future__ import annotations

import numpy as np
import pytest

from tests.vision.factories import GRILL, Noise, Obj, camera, of, run, zone
from vision.rules.barbecue import smoke_support

CAM = camera(zone("park", "monitored"))
SMOKE_ABOVE = (190.0, 180.0, 290.0, 300.0)


@pytest.mark.parametrize(
    ("name", "objs", "opens"),
    [
        ("grill", [Obj("grill", GRILL, 20)], True),
        ("grill with smoke", [Obj("grill", GRILL, 20), Obj("smoke", SMOKE_ABOVE, 25)], True),
        ("unsure grill alone", [Obj("grill", GRILL, 20, score=0.40)], False),
        (
            "unsure grill, smoking",
            [Obj("grill", GRILL, 20, score=0.40), Obj("smoke", SMOKE_ABOVE, 20, score=0.8)],
            True,
        ),
        ("smoke alone", [Obj("smoke", SMOKE_ABOVE, 20)], False),
        ("grill carried past", [Obj("grill", GRILL, 0, 100, moves=[(0, -200, 0), (100, 700, 0)])], False),
        ("grill for 40 s", [Obj("grill", GRILL, 20, 60)], False),
    ],
)
def test_barbecue(name: str, objs: list[Obj], opens: bool) -> None:
    events = run(CAM, objs, 150, Noise(miss=0.2, seed=5), fps=2.5)
    opened = of(events, "opened")
    assert bool(opened) == opens, name
    if opens:
        assert opened[0].ts_s - 20 == pytest.approx(60, abs=4)
        assert opened[0].gbt_code == "0510"


def test_smoke_raises_the_score() -> None:
    alone = of(run(CAM, [Obj("grill", GRILL, 0, score=0.6)], 100, fps=2.5), "opened")[0]
    smoking = of(
        run(CAM, [Obj("grill", GRILL, 0, score=0.6), Obj("smoke", SMOKE_ABOVE)], 100, fps=2.5), "opened"
    )[0]
    assert alone.score == pytest.approx(0.6, abs=0.01)
    assert smoking.score > alone.score + 0.1


@pytest.mark.parametrize(
    ("smoke", "support"),
    [
        ((210, 200, 270, 290), 0.8),  # rising above the grill
        ((300, 310, 340, 350), 0.8),  # beside it, within one width
        ((210, 0, 270, 60), 0.0),  # far above (beyond 3 heights)
        ((600, 300, 660, 360), 0.0),  # elsewhere
    ],
)
def test_smoke_support_region(smoke: tuple, support: float) -> None:
    got = smoke_support(np.array([GRILL]), np.array([smoke], float), np.array([0.8], np.float32))
    assert got.tolist() == [pytest.approx(support)]
