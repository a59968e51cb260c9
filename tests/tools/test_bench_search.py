"""tools.bench_pipeline: the ceiling search on fake trials (no cameras, no clock), and a trial's verdict."""

from __future__ import annotations

import itertools

import pytest

from tools.bench_pipeline import DETECT_FPS, search_ceiling, trial_verdict


def fake_trial(ceiling: int, log: list[int]):
    """A machine that keeps up with ``ceiling`` cameras and no more; records the counts it was asked."""

    def trial(n: int) -> dict:
        log.append(n)
        return {"cameras": n, "keeps_up": n <= ceiling}

    return trial


@pytest.mark.parametrize("ceiling", [1, 2, 3, 7, 16, 24, 41, 100, 333])
@pytest.mark.parametrize("start", [1, 2, 5, 30])
def test_exact_search_finds_the_ceiling_from_any_start(ceiling: int, start: int) -> None:
    asked: list[int] = []
    found = search_ceiling(fake_trial(ceiling, asked), start=start, tolerance=0.0, max_trials=50)
    assert (found.ceiling, found.first_behind, found.bounded) == (ceiling, ceiling + 1, False)
    assert len(asked) == len(set(asked))  # never the same count twice
    assert [t["cameras"] for t in found.trials] == asked


def test_search_grows_past_any_fixed_cap_and_bisects() -> None:
    asked: list[int] = []
    found = search_ceiling(fake_trial(13, asked), start=4, tolerance=0.0)
    assert asked == [4, 8, 16, 12, 14, 13]
    assert found.ceiling == 13


def test_tolerance_stops_once_the_bracket_is_narrow() -> None:
    asked: list[int] = []
    found = search_ceiling(fake_trial(100, asked), start=10, grow=2.0, tolerance=0.1, max_trials=50)
    assert found.first_behind - found.ceiling <= max(1, int(0.1 * found.ceiling))
    assert found.ceiling <= 100 < found.first_behind and not found.bounded


def test_nothing_keeps_up_gives_zero() -> None:
    found = search_ceiling(fake_trial(0, []), start=4, tolerance=0.0)
    assert (found.ceiling, found.first_behind) == (0, 1)


def test_trial_budget_bounds_the_search_and_says_so() -> None:
    asked: list[int] = []
    found = search_ceiling(fake_trial(1000, asked), start=2, max_trials=3)
    assert asked == [2, 4, 8] and found.bounded
    assert (found.ceiling, found.first_behind) == (8, None)


def test_time_budget_is_asked_before_each_trial_after_the_first() -> None:
    left = itertools.count(2, -1)  # 2, 1, 0, ... seconds left when asked: two more trials fit
    asked: list[int] = []
    found = search_ceiling(fake_trial(1000, asked), start=3, time_left_s=lambda: next(left))
    assert asked == [3, 6, 12] and found.bounded and found.ceiling == 12


def test_min_trials_run_even_when_the_time_is_gone() -> None:
    asked: list[int] = []
    found = search_ceiling(fake_trial(3, asked), start=8, min_trials=2, time_left_s=lambda: -1.0)
    assert asked == [8, 4] and found.bounded and (found.ceiling, found.first_behind) == (0, 4)


@pytest.mark.parametrize("bad", [{"start": 0}, {"grow": 1.0}])
def test_bad_search_settings_are_refused(bad: dict) -> None:
    with pytest.raises(ValueError, match="search_ceiling"):
        search_ceiling(fake_trial(5, []), **bad)


def row(fps: float, dropped: int = 0, sampled: int = 50) -> dict:
    return {"camera_id": "c", "processed_fps": fps, "dropped": dropped, "sampled": sampled, "detected": 5}


@pytest.mark.parametrize(
    ("rows", "cameras", "keeps_up"),
    [
        ([row(DETECT_FPS), row(DETECT_FPS * 0.95)], 2, True),
        ([row(DETECT_FPS), row(DETECT_FPS * 0.8)], 2, False),  # one camera behind is enough
        ([row(DETECT_FPS, dropped=4), row(DETECT_FPS, dropped=2)], 2, False),  # 6 of 100 dropped
        ([row(DETECT_FPS)], 2, False),  # a process that never reported
    ],
)
def test_trial_verdict(rows: list[dict], cameras: int, keeps_up: bool) -> None:
    verdict = trial_verdict(rows, cameras)
    assert verdict["keeps_up"] is keeps_up and verdict["cameras"] == cameras
