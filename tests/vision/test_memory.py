"""False-alarm memory (vision.memory): same place + same appearance is suppressed, anything else opens."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from tests.vision.factories import camera, rules, zone
from vision.memory import (
    DESCRIPTOR_LEN,
    MemoryBook,
    MemoryEntry,
    MemoryError_,
    MemoryParams,
    describe,
    entry_from_crop,
    load_memory_file,
    similarity,
)
from vision.pipeline import CameraPipeline
from vision.types import OBJECT_KINDS, Detections, ObjectKind, ViolationKind

WH = (640, 360)
BOX = (300.0, 200.0, 380.0, 260.0)


def street(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.full((WH[1], WH[0], 3), 110, np.uint8)
    img[:, :, 1] = 115
    img += rng.integers(0, 6, img.shape, dtype=np.uint8)  # sensor noise
    return img


def with_rock(img: np.ndarray, gain: float = 1.0, offset: float = 0.0) -> np.ndarray:
    """A grey rock with cracks at BOX, lit by ``gain``/``offset`` (day, dusk, night...)."""
    out = img.copy()
    cv2.ellipse(out, (340, 235), (36, 22), 0, 0, 360, (150, 155, 160), -1)
    cv2.line(out, (315, 230), (345, 245), (80, 80, 85), 2)
    cv2.line(out, (350, 222), (365, 240), (90, 90, 95), 2)
    return np.clip(out.astype(np.float32) * gain + offset, 0, 255).astype(np.uint8)


def with_bag(img: np.ndarray) -> np.ndarray:
    """A different object at the same place: a tied black bag with a knot and folds."""
    out = img.copy()
    cv2.rectangle(out, (308, 206), (372, 258), (30, 30, 30), -1)
    for x in range(314, 370, 8):
        cv2.line(out, (x, 210), (x, 255), (70, 70, 70), 1)
    cv2.circle(out, (340, 208), 6, (60, 60, 60), -1)
    return out


def garbage_at(box: tuple[float, ...] = BOX) -> Detections:
    return Detections(
        xyxy=np.array([box], np.float32),
        confidence=np.array([0.8], np.float32),
        class_id=[OBJECT_KINDS.index(ObjectKind.GARBAGE)],
    )


def rock_memory(**kw: object) -> MemoryEntry:
    return entry_from_crop("m1", "cam-1", ViolationKind.EXPOSED_GARBAGE, BOX, with_rock(street(1)), **kw)


def run(book: MemoryBook | None, frames: list[tuple[float, np.ndarray]]) -> list:
    pipe = CameraPipeline(
        camera(zone("lawn", "monitored", dwell_s={"exposed_garbage": 60})), rules(), tracker=None
    )
    events = []
    for ts_s, image in frames:
        det = garbage_at()
        if book is not None:
            det = book.filter(det, image, ts_s)
        events += pipe.step(det, ts_s, WH)
    return events


def opened(events: list) -> list:
    return [e for e in events if e.event == "opened"]


def test_one_rejection_suppresses_the_same_object_for_an_hour_and_a_different_object_still_opens():
    # without memory the rock opens a false alarm
    hour = [(float(t), with_rock(street(t), 0.6 + 0.4 * (t % 600) / 600)) for t in range(0, 3600, 5)]
    assert len(opened(run(None, hour))) == 1
    # one rejection: an hour of the same rock (its light changing) never opens, and is one suppression
    book = MemoryBook([rock_memory()])
    assert opened(run(book, hour)) == []
    (update,) = book.take_updates()
    assert update.entry_id == "m1" and update.suppressed == 1 and update.last_suppressed_s == 3595.0
    # a different object at the same place (the rock taken away, a bag left there) opens as usual
    bag = [(3600.0 + t, with_bag(street(t))) for t in range(0, 300, 5)]
    book = MemoryBook([rock_memory()])
    events = run(book, hour + bag)
    assert [e.ts_s >= 3600 + 60 for e in opened(events)] == [True]


def test_a_stall_set_up_where_a_rock_was_rejected_opens():
    book = MemoryBook([rock_memory()])
    stall = Detections(
        xyxy=np.array([BOX], np.float32),
        confidence=np.array([0.9], np.float32),
        class_id=[OBJECT_KINDS.index(ObjectKind.VENDING_STALL)],
    )
    assert len(book.filter(stall, with_rock(street(2)), 10.0)) == 1  # another kind: never this memory's


@pytest.mark.parametrize(
    ("box", "image", "kept"),
    [
        (BOX, with_rock(street(3), 0.5, 10), 0),  # same place, same rock at dusk: suppressed
        (BOX, with_bag(street(3)), 1),  # same place, other appearance: kept
        ((40.0, 40.0, 120.0, 100.0), with_rock(street(3)), 1),  # same look elsewhere: kept (IoU 0)
        ((304.0, 203.0, 384.0, 263.0), with_rock(street(3)), 0),  # box jitter of a few px: suppressed
    ],
)
def test_match_needs_the_same_place_and_the_same_appearance(box, image, kept):
    book = MemoryBook([rock_memory()])
    assert len(book.filter(garbage_at(box), image, 5.0)) == kept


def test_a_memory_whose_object_has_gone_stops_matching():
    params = MemoryParams(scene_check_s=10.0, gone_after_s=60.0)
    book = MemoryBook([rock_memory()], params)
    for t in range(0, 100, 10):  # the rock was taken away: the place shows the bare street
        book.filter(Detections.empty(), street(t), float(t))
    assert book.active(100.0) == []
    assert [u.gone for u in book.take_updates()] == [True]
    # once gone, even the same look is not suppressed any more
    assert len(book.filter(garbage_at(), with_rock(street(5)), 101.0)) == 1


def test_expired_entries_do_not_match_and_deleted_entries_are_forgotten():
    book = MemoryBook([rock_memory(expires_s=50.0)])
    assert len(book.filter(garbage_at(), with_rock(street(4)), 49.0)) == 0
    assert len(book.filter(garbage_at(), with_rock(street(4)), 50.0)) == 1
    book = MemoryBook([rock_memory()])
    book.replace([])  # an admin deleted it: the next candidate goes through
    assert len(book.filter(garbage_at(), with_rock(street(4)), 1.0)) == 1


def test_descriptor_survives_lighting_and_tells_objects_apart():
    ref = describe(with_rock(street(1)), BOX)
    assert ref is not None and ref.shape == (DESCRIPTOR_LEN,)
    for gain, offset in ((0.4, 0), (1.3, 20), (0.7, -20)):
        assert similarity(ref, describe(with_rock(street(7), gain, offset), BOX)) >= 0.85
    assert similarity(ref, describe(with_bag(street(7)), BOX)) < 0.85
    assert describe(street(1), (700, 400, 800, 500)) is None  # outside the frame


def test_memory_file_round_trip_and_errors():
    entry = rock_memory(reviewer="张三", case_id="c1")
    loaded = load_memory_file({"entries": [entry.to_json()]}, ["cam-1"])
    assert loaded["cam-1"][0].box_xyxy == entry.box_xyxy and loaded["cam-1"][0].reviewer == "张三"
    with pytest.raises(MemoryError_, match="camera 'cam-1', not one of"):
        load_memory_file([entry.to_json()], ["cam-2"])
    with pytest.raises(MemoryError_, match="lacks \\['descriptor'\\]"):
        load_memory_file([{k: v for k, v in entry.to_json().items() if k != "descriptor"}])
    with pytest.raises(MemoryError_, match="kind 'Rock Pile' is not a violation kind"):
        load_memory_file([{**entry.to_json(), "kind": "Rock Pile"}])
    # a configured kind (cameras file violations:) is remembered too; its classes are every kind but people
    (configured,) = load_memory_file([{**entry.to_json(), "kind": "goods_display"}])["cam-1"]
    assert configured.kind == "goods_display"
    assert configured.class_ids == tuple(i for i, k in enumerate(OBJECT_KINDS) if k != "person")
    assert entry.class_ids != configured.class_ids  # a built-in keeps its rule's classes
