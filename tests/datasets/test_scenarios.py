"""Scenario files, rendering, ground truth and demo clips (tiny renders: 320x180 at 2 fps)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import yaml

from datasets.scenarios import build_suite as suite
from datasets.synth.scenario import ScenarioError, build_scene, load_scenario, verify_zone_regions
from datasets.synth.video import render_frames, render_scenario
from vision.config import load_cameras

SUITE = sorted((Path(suite.__file__).parent).glob("*.yaml"))
DEMO = sorted((suite.DEMO_DIR / "scenarios").glob("*.yaml"))
SIZE = (320, 180)
FAST_DWELL = {
    "sidewalk-r": {"street_vending": 5, "exposed_garbage": 5, "open_air_barbecue": 5},
    "blind-path": {"bike_misparking": 5},
    "sidewalk-l": {"street_vending": 5, "exposed_garbage": 5},
}


def _write(tmp_path: Path, doc: dict[str, Any]) -> Path:
    path = tmp_path / f"{doc['name']}.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def _render(tmp_path: Path, doc: dict[str, Any], seed: int = 0):  # noqa: ANN202
    return render_scenario(_write(tmp_path, doc), tmp_path / "out" / f"{doc['name']}.mp4", seed, 2.0, SIZE)


@pytest.mark.parametrize("path", SUITE + DEMO, ids=lambda p: p.stem)
def test_shipped_scenarios_parse_and_zones_match_the_street(path: Path) -> None:
    scenario, cams = load_scenario(path)
    verify_zone_regions(scenario, cams)
    assert scenario.view.zone_regions, "every shipped scenario names the regions its zones cover"
    # The static-object suite's must-not-alert variant keeps people chatting for ten minutes (issue 14).
    assert 120 <= scenario.duration_s <= (660 if scenario.suite == "static_objects" else 300) or path in DEMO


def test_suite_covers_every_violation_kind_and_every_quiet_case() -> None:
    loud, quiet = set(), set()
    for path in SUITE:
        scenario, _ = load_scenario(path)
        (quiet if scenario.must_not_alert else loud).add(scenario.name)
    assert {"vendor_sidewalk", "bikes_blind_path", "garbage_dropped", "night_barbecue"} <= loud
    assert {"passers_by", "bike_in_bay", "night_market", "garbage_carried", "umbrella_walkers",
            "bins_with_lids"} <= quiet  # fmt: skip


def test_garbage_truth_matches_the_rendered_timeline(tmp_path: Path) -> None:
    bag = {"id": "bag", "kind": "garbage", "seed": 1, "look": {"variant": "bags", "size_m": 1.0},
           "arrive_s": 6.0, "leave_s": 24.0, "at": suite.at("right_sidewalk", 11, 0.6)}  # fmt: skip
    doc = suite.scenario("tiny_garbage", "bag left on the sidewalk", 30, [bag], dwell=FAST_DWELL)
    res = _render(tmp_path, doc)
    truth = json.loads(res.truth_path.read_text())
    assert truth["scenario"] == "tiny_garbage" and truth["camera_id"] == "scn-tiny-garbage"
    assert (truth["duration_s"], truth["fps"], truth["frame_wh"], truth["must_not_alert"]) == (
        30,
        2.0,
        [320, 180],
        False,
    )
    (v,) = truth["violations"]
    assert (v["kind"], v["zone_id"], v["start_s"], v["end_s"], v["dwell_s"]) == (
        "exposed_garbage",
        "sidewalk-r",
        6.0,
        24.0,
        5.0,
    )
    # The bag's rendered mask is present exactly from start_s to end_s, and its box is the truth box.
    present = [t for t, box in res.tracks["bag"] if box is not None]
    assert present[0] == 6.0 and present[-1] == 23.5 and len(present) == 36
    boxes = np.array([box for _, box in res.tracks["bag"] if box is not None])
    assert np.abs(boxes - np.array(v["bbox_xyxy"])).max() <= 1  # still objects only jitter by a pixel
    zone = load_cameras(res.cameras_path).cameras[0].zones[0]
    x0, y0, x1, y1 = v["bbox_xyxy"]
    poly = np.float32(np.array(zone.polygon) * SIZE)
    assert cv2.pointPolygonTest(poly, ((x0 + x1) / 2, y1), False) >= 0
    # The video decodes to every frame, and the cameras file replays it unchanged.
    cap = cv2.VideoCapture(str(res.video_path))
    n = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        assert frame.shape == (180, 320, 3)
        n += 1
    assert n == 60
    cams = load_cameras(res.cameras_path)
    assert cams.cameras[0].source.url == str(res.video_path.resolve())


def test_same_seed_same_frames_and_truth(tmp_path: Path) -> None:
    walker = suite.walker(
        "w", 3, 0, 10, suite.at("right_sidewalk", 20, 0.5), suite.at("right_sidewalk", 6, 0.5)
    )
    bin_ = {"id": "bin", "kind": "trash_bin", "arrive_s": 0, "at": suite.at("right_sidewalk", 10, 0.2)}
    doc = suite.scenario("tiny_det", "determinism", 10, [walker, bin_], dwell=FAST_DWELL)
    path = _write(tmp_path, doc)
    scenario, cams = load_scenario(path)
    a = [img for _, img, _ in render_frames(build_scene(scenario, cams, SIZE, seed=4), 2.0)]
    b = [img for _, img, _ in render_frames(build_scene(scenario, cams, SIZE, seed=4), 2.0)]
    c = [img for _, img, _ in render_frames(build_scene(scenario, cams, SIZE, seed=5), 2.0)]
    assert len(a) == 20 and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c, strict=True))


def test_bikes_in_a_group_make_one_violation_and_bikes_in_the_bay_none(tmp_path: Path) -> None:
    actors = [
        {"id": f"b{k}", "kind": "bicycle", "seed": k, "look": {"yaw": 1.2}, "group": "cluster", "arrive_s": 2.0 + 2 * k,
         "at": suite.at("blind_path", 14 + 1.1 * k, 0.5)} for k in range(2)
    ] + [{"id": "bay", "kind": "bicycle", "seed": 9, "look": {"yaw": 1.3}, "arrive_s": 2.0,
          "at": suite.at("bike_bay", 10, 0.5)}]  # fmt: skip
    res = _render(tmp_path, suite.scenario("tiny_bikes", "bikes", 30, actors, dwell=FAST_DWELL))
    (v,) = res.truth["violations"]
    assert (v["kind"], v["zone_id"], v["start_s"], v["end_s"]) == ("bike_misparking", "blind-path", 2.0, 30.0)
    assert sorted(v["actors"]) == ["b0", "b1"]
    boxes = [np.median([b for _, b in res.tracks[a] if b], axis=0) for a in ("b0", "b1")]
    assert v["bbox_xyxy"][0] <= min(b[0] for b in boxes) and v["bbox_xyxy"][2] >= max(b[2] for b in boxes)


@pytest.mark.parametrize(
    ("start_time", "expect"), [("2024-06-03T19:30:00+08:00", 0), ("2024-06-03T15:00:00+08:00", 1)]
)
def test_night_market_stall_is_allowed_only_in_its_hours(
    tmp_path: Path, start_time: str, expect: int
) -> None:
    stall = {"id": "stall", "kind": "vending_stall", "seed": 2, "look": {"variant": "table", "canopy_kind": "none"},
             "arrive_s": 2.0, "at": suite.at("night_market", 14, 0.5)}  # fmt: skip
    doc = suite.scenario("tiny_market", "market", 30, [stall], start_time=start_time, dwell=FAST_DWELL)
    res = _render(tmp_path, doc)
    assert len(res.truth["violations"]) == expect
    if expect:
        assert res.truth["violations"][0]["zone_id"] == "sidewalk-l"


def test_must_not_alert_scenario_that_would_alert_is_refused(tmp_path: Path) -> None:
    stall = {
        "id": "stall",
        "kind": "vending_stall",
        "arrive_s": 2.0,
        "at": suite.at("right_sidewalk", 12, 0.3),
    }
    doc = suite.scenario("tiny_wrong", "wrongly quiet", 30, [stall], must_not_alert=True, dwell=FAST_DWELL)
    with pytest.raises(ScenarioError, match="must_not_alert"):
        _render(tmp_path, doc)


def test_bad_scenarios_name_the_problem(tmp_path: Path) -> None:
    stall = {"id": "stall", "kind": "vending_stall", "at": suite.at("right_sidewalk", 12, 0.3)}
    doc = suite.scenario("tiny_bad", "no arrival", 30, [stall])
    with pytest.raises(ScenarioError, match="actor 'stall' has 'at' but no arrive_s"):
        load_scenario(_write(tmp_path, doc))
    doc = suite.scenario("tiny_bad2", "zone moved", 30, [])
    doc["cameras"]["cameras"][0]["zones"][0]["polygon"] = [[0, 0], [0.2, 0], [0.2, 0.2]]
    scenario, cams = load_scenario(_write(tmp_path, doc))
    with pytest.raises(ScenarioError, match="zone 'sidewalk-r' polygon does not match"):
        verify_zone_regions(scenario, cams)


def test_demo_clips_render_once_and_cameras_point_at_them(tmp_path: Path) -> None:
    from datasets.demo import DEMO_CAMERAS, ensure_demo_clips

    path = ensure_demo_clips(tmp_path, fps=1.0, size=SIZE)
    cams = load_cameras(path)
    shipped = load_cameras(DEMO_CAMERAS)
    assert [c.id for c in cams.cameras] == [c.id for c in shipped.cameras] and 3 <= len(cams.cameras) <= 4
    mtimes = {}
    for cam in cams.cameras:
        clip = Path(cam.source.url)
        assert clip.exists() and cam.source.loop
        assert {z.id: z.dwell_s for z in cam.zones}["sidewalk-r"]["street_vending"] <= 45
        mtimes[clip] = clip.stat().st_mtime_ns
    assert ensure_demo_clips(tmp_path, fps=1.0, size=SIZE) == path
    assert {clip: clip.stat().st_mtime_ns for clip in mtimes} == mtimes  # cached, not re-rendered
