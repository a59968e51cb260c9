from __future__ import annotations

import numpy as np
import pytest

from vision.tracking import Tracker, TrackerParams, buffered_iou
from vision.types import OBJECT_KINDS, Detections, ObjectKind

PERSON = OBJECT_KINDS.index(ObjectKind.PERSON)
BIKE = OBJECT_KINDS.index(ObjectKind.BICYCLE)
STALL = OBJECT_KINDS.index(ObjectKind.VENDING_STALL)


def dets(*objs: tuple[tuple[float, float, float, float], float, int]) -> Detections:
    """``dets(((x1, y1, x2, y2), score, class_id), ...)``; data["name"] tags each object for checking."""
    if not objs:
        return Detections.empty().with_(data={"name": np.zeros(0, dtype="<U8")})
    return Detections(
        xyxy=[o[0] for o in objs],
        confidence=[o[1] for o in objs],
        class_id=[o[2] for o in objs],
        data={"name": np.array([o[3] if len(o) > 3 else f"o{i}" for i, o in enumerate(objs)])},
    )


def walker(x0: float, speed_px_s: float, t_s: float, y: float = 400.0, w: float = 50, h: float = 150):
    x = x0 + speed_px_s * t_s
    return (x, y, x + w, y + h)


def ids_by_name(out: Detections) -> dict[str, int]:
    return dict(zip(out.data["name"].tolist(), out.tracker_id.tolist(), strict=True))


@pytest.mark.parametrize("fps, speed_px_s", [(10.0, 125), (5.0, 125), (2.0, 125), (2.0, 200)])
def test_a_walking_person_keeps_one_id(fps: float, speed_px_s: float) -> None:
    # ~1.4 m/s for a 1.7 m person 150 px high is ~125 px/s: more than a box width per frame at 2 fps;
    # 200 px/s at 2 fps is two box widths per frame. Boxes jitter by a few px like a real detector's.
    rng = np.random.default_rng(0)
    tracker = Tracker(frame_rate=fps)
    seen: list[int] = []
    for k in range(int(6 * fps)):
        t = k / fps
        box = np.add(walker(100, speed_px_s, t), rng.normal(0, 3, 4))
        out = tracker.update(dets((tuple(box), 0.8, PERSON, "p")), ts_s=t)
        if k == 0:
            assert len(out) == 0  # reported from its second consecutive sighting
        else:
            assert len(out) == 1
            seen.append(int(out.tracker_id[0]))
    assert len(set(seen)) == 1


def test_two_classes_crossing_keep_their_own_ids() -> None:
    fps = 2.0
    tracker = Tracker(frame_rate=fps)
    history: dict[str, set[int]] = {"person": set(), "bike": set()}
    for k in range(16):
        t = k / fps
        frame = dets(
            (walker(100, 120, t), 0.8, PERSON, "person"),
            (walker(1000, -120, t, y=410, w=90, h=120), 0.8, BIKE, "bike"),
        )
        out = tracker.update(frame, ts_s=t)
        for name, tid in ids_by_name(out).items():
            history[name].add(tid)
        kinds = dict(zip(out.data["name"].tolist(), out.class_id.tolist(), strict=True))
        assert all(kinds[n] == (PERSON if n == "person" else BIKE) for n in kinds)
    assert len(history["person"]) == 1 and len(history["bike"]) == 1
    assert history["person"] != history["bike"]


def test_a_bike_on_top_of_a_person_never_takes_the_person_id() -> None:
    tracker = Tracker(frame_rate=5)
    box = (200.0, 300.0, 260.0, 450.0)
    for k in range(3):
        tracker.update(dets((box, 0.9, PERSON, "person")), ts_s=k * 0.2)
    # The person vanishes and a bike appears on exactly the same spot.
    out = tracker.update(dets((box, 0.9, BIKE, "bike")), ts_s=0.6)
    assert len(out) == 0  # a new, tentative bike track; not the person's
    out = tracker.update(dets((box, 0.9, BIKE, "bike")), ts_s=0.8)
    assert out.tracker_id.tolist() == [2]


def test_two_people_crossing_at_5_fps_keep_ids() -> None:
    fps = 5.0
    tracker = Tracker(frame_rate=fps)
    history: dict[str, list[int]] = {"a": [], "b": []}
    for k in range(40):
        t = k / fps
        out = tracker.update(
            dets(
                (walker(100, 100, t, y=400), 0.8, PERSON, "a"),
                (walker(900, -100, t, y=405), 0.8, PERSON, "b"),
            ),
            ts_s=t,
        )
        for name, tid in ids_by_name(out).items():
            history[name].append(tid)
    assert len(set(history["a"])) == 1 and len(set(history["b"])) == 1
    assert history["a"][0] != history["b"][0]
    assert len(history["a"]) >= 38


def test_a_stall_hidden_for_two_seconds_keeps_its_id_but_not_after_four() -> None:
    tracker = Tracker(frame_rate=2, lost_track_s=3.0)
    stall = ((500.0, 300.0, 700.0, 450.0), 0.7, STALL, "stall")
    t = 0.0
    for _ in range(4):
        first = tracker.update(dets(stall), ts_s=t)
        t += 0.5
    (stall_id,) = first.tracker_id.tolist()
    for _ in range(4):  # 2 s hidden behind a bus
        assert len(tracker.update(dets(), ts_s=t)) == 0
        t += 0.5
    assert tracker.update(dets(stall), ts_s=t).tracker_id.tolist() == [stall_id]
    t += 0.5
    for _ in range(9):  # 4.5 s hidden: longer than lost_track_s
        tracker.update(dets(), ts_s=t)
        t += 0.5
    tracker.update(dets(stall), ts_s=t)
    again = tracker.update(dets(stall), ts_s=t + 0.5)
    assert again.tracker_id.tolist() != [stall_id] and len(again) == 1


def test_without_timestamps_lost_tracks_expire_by_update_count() -> None:
    tracker = Tracker(frame_rate=2, lost_track_s=3.0)  # 6 updates
    obj = ((10.0, 10.0, 60.0, 60.0), 0.9, STALL)
    tracker.update(dets(obj))
    (tid,) = tracker.update(dets(obj)).tracker_id.tolist()
    for _ in range(6):
        tracker.update(dets())
    assert tracker.update(dets(obj)).tracker_id.tolist() == [tid]
    for _ in range(7):
        tracker.update(dets())
    assert len(tracker.update(dets(obj))) == 0  # gone: starts over as a tentative track


def test_low_score_detections_continue_tracks_but_never_start_them() -> None:
    tracker = Tracker(frame_rate=5)
    box = (100.0, 100.0, 160.0, 250.0)
    tracker.update(dets((box, 0.8, PERSON)), ts_s=0.0)
    (tid,) = tracker.update(dets((box, 0.8, PERSON)), ts_s=0.2).tracker_id.tolist()
    for k in range(3):  # partly occluded: score drops below the activation threshold
        out = tracker.update(
            dets((box, 0.2, PERSON), ((600.0, 100.0, 660.0, 250.0), 0.2, PERSON)), ts_s=0.4 + k * 0.2
        )
        assert out.tracker_id.tolist() == [tid]
        assert out.confidence.tolist() == pytest.approx([0.2])
    below_low = tracker.update(dets((box, 0.05, PERSON)), ts_s=1.2)
    assert len(below_low) == 0


def test_output_keeps_input_order_boxes_and_data() -> None:
    tracker = Tracker(frame_rate=5, params=TrackerParams(minimum_consecutive_frames=1))
    frame = dets(
        ((0.0, 0.0, 10.0, 10.0), 0.9, PERSON, "a"),
        ((100.0, 0.0, 110.0, 10.0), 0.05, PERSON, "ignored"),
        ((200.0, 0.0, 220.0, 30.0), 0.6, BIKE, "c"),
    )
    out = tracker.update(frame)
    assert out.data["name"].tolist() == ["a", "c"]
    np.testing.assert_array_equal(out.xyxy, frame.xyxy[[0, 2]])
    assert out.tracker_id.tolist() == [1, 2]
    assert tracker.active_track_count == 2
    assert len(tracker.update(Detections.empty())) == 0


def test_params_follow_frame_rate() -> None:
    fast, slow = TrackerParams.for_frame_rate(10), TrackerParams.for_frame_rate(2)
    assert fast.lost_track_frames == 30 and slow.lost_track_frames == 6
    assert slow.buffer_scale > fast.buffer_scale
    with pytest.raises(ValueError, match="frame_rate must be > 0"):
        TrackerParams.for_frame_rate(0)


def test_buffered_iou_reaches_boxes_that_plain_iou_misses() -> None:
    a = np.array([[0.0, 0.0, 50.0, 150.0]])
    b = np.array([[62.0, 0.0, 112.0, 150.0]])
    assert buffered_iou(a, b, 0.0)[0, 0] == 0.0
    assert buffered_iou(a, b, 0.5)[0, 0] > 0.2
    assert buffered_iou(a, a, 0.3)[0, 0] == pytest.approx(1.0)
    assert buffered_iou(a, np.zeros((0, 4)), 0.3).shape == (1, 0)
