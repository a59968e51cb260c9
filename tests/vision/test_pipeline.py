"""CameraPipeline: tracker -> zones -> rules, per camera; detections JSON records for replays."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.vision.factories import (
    BIKE,
    FRAME_WH,
    STALL,
    Noise,
    Obj,
    Scene,
    camera,
    of,
    render,
    run,
    violation_ids,
    zone,
)
from vision.config import RulesConfig
from vision.pipeline import (
    CameraPipeline,
    FrameInputError,
    TimeOrderError,
    default_tracker,
    frame_from_json,
    label_kinds,
)
from vision.types import OBJECT_KINDS, Detections, ObjectKind

ROOT = Path(__file__).resolve().parents[2]
CAM = camera(zone("street", "no_vending", road_class="main"), zone("walk", "no_parking", road_class="main"))

NOISY_SCENES = [
    (
        "stall, flicker and false boxes",
        [Obj("vending_stall", STALL)],
        Noise(miss=0.4, false_boxes_per_min=10, seed=1),
    ),
    ("stall, jitter and dips", [Obj("vending_stall", STALL)], Noise(jitter_px=6, score_dip=0.25, seed=2)),
    (
        "row of bikes",
        [Obj("bicycle", (300 + 60 * i, 600, 380 + 60 * i, 660), 10 * i) for i in range(5)],
        Noise(miss=0.3, jitter_px=3, seed=3),
    ),
    (
        "riders",
        [
            Obj("bicycle", BIKE, 10 * i, 10 * i + 8, moves=[(10 * i, -300, 0), (10 * i + 8, 600, 0)])
            for i in range(6)
        ],
        Noise(miss=0.2, seed=4),
    ),
]


@pytest.mark.parametrize(("name", "objs", "noise"), NOISY_SCENES)
def test_real_tracker_and_untracked_give_the_same_violations(
    name: str, objs: list[Obj], noise: Noise
) -> None:
    tracking = pytest.importorskip("vision.tracking")
    untracked = run(CAM, objs, 200, noise)
    tracked = run(CAM, objs, 200, noise, tracker=tracking.Tracker(5.0))
    summary = [(e.kind, e.zone_id, e.object_count) for e in of(untracked, "opened")]
    assert [(e.kind, e.zone_id, e.object_count) for e in of(tracked, "opened")] == summary, name
    for a, b in zip(of(untracked, "opened"), of(tracked, "opened"), strict=True):
        assert abs(a.ts_s - b.ts_s) <= 2.0, name  # the tracker's two-frame confirmation costs little


def test_auto_tracker_is_the_project_tracker_when_importable() -> None:
    tracking = pytest.importorskip("vision.tracking")
    assert isinstance(CameraPipeline(CAM, RulesConfig()).tracker, tracking.Tracker)
    assert isinstance(default_tracker(5.0), tracking.Tracker)
    assert CameraPipeline(CAM, RulesConfig(), tracker=None).tracker is None


def test_only_watched_violations_are_looked_for() -> None:
    bikes_only = camera(zone("walk", "no_parking", road_class="main"))
    events = run(bikes_only, [Obj("vending_stall", STALL), Obj("bicycle", BIKE)], 200, fps=2.5)
    assert {str(e.kind) for e in events} == {"bike_misparking"}


def test_frames_must_come_in_time_order() -> None:
    pipe = CameraPipeline(CAM, RulesConfig(), tracker=None)
    pipe.step(Detections.empty(), 10.0, FRAME_WH)
    pipe.step(Detections.empty(), 10.0, FRAME_WH)  # equal is fine (a repeated timestamp)
    with pytest.raises(TimeOrderError, match="cam-1.*9.5.*earlier"):
        pipe.step(Detections.empty(), 9.5, FRAME_WH)


def test_resolution_change_keeps_zones_right() -> None:
    cam = camera(zone("left", "no_vending", [[0, 0], [0.5, 0], [0.5, 1], [0, 1]], road_class="main"))
    pipe = CameraPipeline(cam, RulesConfig(), tracker=None)
    stall_id = OBJECT_KINDS.index(ObjectKind.VENDING_STALL)
    events = []
    for k in range(1000):  # 200 s: a 1000 px wide stream, then the same scene at 2000 px wide
        t = k * 0.2
        wide = t >= 100
        x = 800.0 if wide else 400.0  # the stall stays at 40 % of the width
        det = Detections(xyxy=[[x - 60, 400, x + 60, 500]], confidence=[0.9], class_id=[stall_id])
        events += pipe.step(det, t, (2000, 1000) if wide else (1000, 1000))
    assert len(violation_ids(events)) == 1


def test_escalation_history_round_trips_through_a_snapshot() -> None:
    first = CameraPipeline(CAM, RulesConfig(), tracker=None)
    for t, det in render(Scene([Obj("vending_stall", STALL, 0, 200)], 200, 2.5)):
        first.step(det, t, FRAME_WH)
    history = first.escalation_snapshot()
    assert list(history) == ["cam-1/street/street_vending/cell-4-4"]
    # the next day, a new pipeline seeded from the database sees the repeat offence
    second = CameraPipeline(CAM, RulesConfig(), escalation_history=history, tracker=None)
    events = []
    for t, det in render(Scene([Obj("vending_stall", STALL, 0, 200)], 200, 2.5)):
        events += second.step(det, t + 86400, FRAME_WH)
    assert [e.escalation for e in of(events, "opened")] == ["yellow"]


def test_frame_from_json_reads_kinds_and_class_map_labels() -> None:
    labels = label_kinds({"stall": "vending_stall", "car": None})
    record = {
        "camera_id": "cam-1",
        "ts_s": 12.5,
        "frame_wh": [1920, 1080],
        "detections": [
            {"label": "stall", "xyxy": [1, 2, 30, 40], "score": 0.7},
            {"label": "car", "xyxy": [5, 5, 50, 50], "score": 0.9},
            {"label": "bicycle", "xyxy": [100, 100, 140, 130], "score": 0.6},
        ],
    }
    camera_id, ts_s, wh, det = frame_from_json(record, labels)
    assert (camera_id, ts_s, wh) == ("cam-1", 12.5, (1920, 1080))
    assert det.kinds == [ObjectKind.VENDING_STALL, ObjectKind.BICYCLE]
    assert det.confidence.tolist() == pytest.approx([0.7, 0.6])


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ([], "expected a JSON object"),
        ({"camera_id": "c", "ts_s": 0, "frame_wh": [10, 10]}, "missing \\['detections'\\]"),
        (
            {"camera_id": "c", "ts_s": "soon", "frame_wh": [10, 10], "detections": []},
            "ts_s 'soon' is not a number",
        ),
        (
            {"camera_id": "c", "ts_s": 0, "frame_wh": [10], "detections": []},
            "frame_wh \\[10\\] must be \\[width, height\\]",
        ),
        (
            {
                "camera_id": "c",
                "ts_s": 0,
                "frame_wh": [10, 10],
                "detections": [{"label": "cat", "xyxy": [0, 0, 1, 1]}],
            },
            "label 'cat'.*model.class_map",
        ),
        (
            {
                "camera_id": "c",
                "ts_s": 0,
                "frame_wh": [10, 10],
                "detections": [{"label": "garbage", "xyxy": [0, 0, 1]}],
            },
            "xyxy .* must be",
        ),
        (
            {
                "camera_id": "c",
                "ts_s": 0,
                "frame_wh": [10, 10],
                "detections": [{"label": "garbage", "xyxy": [5, 0, 1, 1]}],
            },
            "is empty",
        ),
        (
            {
                "camera_id": "c",
                "ts_s": 0,
                "frame_wh": [10, 10],
                "detections": [{"label": "garbage", "xyxy": [0, 0, 1, 1], "score": 3}],
            },
            "score 3 must be",
        ),
    ],
)
def test_frame_from_json_errors_name_the_item_and_the_fix(record: object, message: str) -> None:
    with pytest.raises(FrameInputError, match=message):
        frame_from_json(record, label_kinds({}))


def scenario_detections(name: str, seed: int, size: tuple[int, int] = (480, 270), fps: float = 5.0):  # noqa: ANN201
    """A scenario's real timeline (datasets.synth) as a noisy detector would see it: ``(truth, camera,
    rules, frames)``. Carried garbage bags and street bins are also reported as ``garbage`` now and
    then, the way a real model confuses them."""
    import dataclasses
    import random

    import numpy as np

    from datasets.synth.render import compose
    from datasets.synth.scenario import build_scene, frame_placements, load_scenario
    from datasets.synth.video import compute_truth

    scenario, cams = load_scenario(ROOT / "datasets" / "scenarios" / f"{name}.yaml")
    scene = build_scene(scenario, cams, size, 0)
    carriers = {a.id for a in scenario.actors if a.kind == "person" and a.carries == "garbage_bag"}
    rng = random.Random(seed)
    tracks: dict[str, list] = {a.id: [] for a in scenario.actors}
    frames, cache = [], {}
    for k in range(int(round(scenario.duration_s * fps))):
        t = k / fps
        frame = compose(
            scene.camera,
            scene.background,
            frame_placements(scene, t, k),
            dataclasses.replace(scene.light, frame_seed=k),
            sprite_cache=cache,
        )
        boxes, scores, classes = [], [], []
        for o in frame.objects:
            if o.tag in tracks:
                tracks[o.tag].append((t, o.box_xyxy))
            if not o.box_xyxy:
                continue
            x1, y1, x2, y2 = (float(v) for v in o.box_xyxy)
            w, h = x2 - x1, y2 - y1
            if o.tag in carriers and rng.random() < 0.7:  # the bag in their hand
                boxes.append([x1 + 0.55 * w, y1 + 0.45 * h, x1 + 0.95 * w, y1 + 0.75 * h])
                scores.append(rng.uniform(0.5, 0.8))
                classes.append(OBJECT_KINDS.index(ObjectKind.GARBAGE))
            if o.kind == "trash_bin" and rng.random() < 0.5:
                boxes.append([x1, y1, x2, y2])
                scores.append(rng.uniform(0.45, 0.6))
                classes.append(OBJECT_KINDS.index(ObjectKind.GARBAGE))
            if o.kind not in {str(k) for k in OBJECT_KINDS} or rng.random() < 0.25 or w < 2 or h < 2:
                continue  # not a detector class, or missed this frame
            j = 0.03
            boxes.append(
                [
                    x1 + rng.gauss(0, j * w),
                    y1 + rng.gauss(0, j * h),
                    x2 + rng.gauss(0, j * w),
                    y2 + rng.gauss(0, j * h),
                ]
            )
            scores.append(rng.uniform(0.3, 0.45) if rng.random() < 0.1 else min(0.95, rng.gauss(0.75, 0.08)))
            classes.append(OBJECT_KINDS.index(ObjectKind(o.kind)))
        det = Detections(xyxy=np.array(boxes, np.float32).reshape(-1, 4), confidence=scores, class_id=classes)
        frames.append((t, det))
    truth = compute_truth(scene, tracks, fps)
    return truth, cams.cameras[0], cams.rules, frames


@pytest.mark.slow
@pytest.mark.parametrize("name", ["garbage_dropped", "bins_with_lids", "passers_by"])
def test_scenario_timelines_with_detector_noise(name: str) -> None:
    pytest.importorskip("datasets.synth.video")
    from vision.scoring import opened_events, parse_truth, score_events

    truth, cam, rule_config, frames = scenario_detections(name, seed=1)
    pipe = CameraPipeline(cam, rule_config)  # with the project's tracker, as stream workers run it
    lines = [e.to_json() for t, det in frames for e in pipe.step(det, t, tuple(truth["frame_wh"]))]
    score = score_events(opened_events(lines), [parse_truth(truth, name)])
    assert (score.false_positives, score.false_negatives) == (0, 0), lines
    if truth["violations"]:
        assert score.median_delay_over_dwell_s is not None and -2 <= score.median_delay_over_dwell_s <= 5
