"""Factories for rule tests: cameras, zones and synthetic per-frame detection sequences.

A scene is a list of ``Obj`` (a kind, a box, when it is there, how it moves, when it is hidden) plus
``Noise`` like a real detector's (missed frames, jittery boxes, 1-3 frame false boxes, score dips).
``render`` turns it into ``(ts_s, Detections)`` frames; ``replay`` runs a ``CameraPipeline`` over them.
Everything is seeded: a scene always renders the same frames.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vision.config import CameraConfig, RulesConfig, parse_cameras
from vision.pipeline import CameraPipeline
from vision.types import OBJECT_KINDS, Detections, ObjectKind, ViolationEvent

FRAME_WH = (1000, 1000)  # 1 px = 0.001 normalised: zone numbers read as pixels / 1000
FULL = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]
LEFT_HALF = [[0.0, 0.0], [0.5, 0.0], [0.5, 1.0], [0.0, 1.0]]


def rect(x1: float, y1: float, x2: float, y2: float) -> list[list[float]]:
    """Normalised rectangle polygon."""
    return [[x1, y1], [x2, y1], [x2, y2], [x1, y2]]


def zone(zone_id: str, kind: str, polygon: list[list[float]] | None = None, **extra: Any) -> dict[str, Any]:
    return {"id": zone_id, "kind": kind, "polygon": polygon or FULL, **extra}


def camera(*zones: dict[str, Any], camera_id: str = "cam-1", **extra: Any) -> CameraConfig:
    """A camera with the given zones; ``start_time`` defaults to a Monday 12:00 Asia/Shanghai."""
    raw = {
        "id": camera_id,
        "source": {"url": "file.mp4"},
        "start_time": extra.pop("start_time", dt.datetime(2024, 5, 6, 12, 0, 0)),
        "zones": list(zones),
        **extra,
    }
    return parse_cameras({"cameras": [raw]}).cameras[0]


def rules(**overrides: Any) -> RulesConfig:
    return RulesConfig(**overrides)


@dataclass
class Obj:
    """One object in a scene.

    Attributes:
        kind: object kind name (``ObjectKind`` value).
        box: xyxy pixels at ``start_s`` (before any movement).
        start_s, end_s: when it is in the scene.
        moves: waypoints ``(t_s, dx, dy)``: offset of the box from ``box``, linear in between and
            held after the last one (e.g. ``[(0, 0, 0), (10, 300, 0)]`` = walks 300 px right in 10 s).
        hidden: ``(t0_s, t1_s)`` intervals when it is occluded (not detected).
        score: detector score.
        tracker_id: fixed tracker id (None: untracked), or ``tracker_ids`` ``[(from_t_s, id)]`` switches.
    """

    kind: str
    box: tuple[float, float, float, float]
    start_s: float = 0.0
    end_s: float = float("inf")
    moves: Sequence[tuple[float, float, float]] = ()
    hidden: Sequence[tuple[float, float]] = ()
    score: float = 0.8
    tracker_ids: Sequence[tuple[float, int]] = ()

    def offset(self, t: float) -> tuple[float, float]:
        if not self.moves:
            return 0.0, 0.0
        pts = list(self.moves)
        if t <= pts[0][0]:
            return pts[0][1], pts[0][2]
        for (t0, x0, y0), (t1, x1, y1) in zip(pts, pts[1:], strict=False):
            if t0 <= t <= t1:
                f = (t - t0) / max(t1 - t0, 1e-9)
                return x0 + f * (x1 - x0), y0 + f * (y1 - y0)
        return pts[-1][1], pts[-1][2]

    def visible(self, t: float) -> bool:
        return self.start_s <= t < self.end_s and not any(a <= t < b for a, b in self.hidden)

    def tracker_id(self, t: float) -> int | None:
        tid = None
        for since, value in self.tracker_ids:
            if t >= since:
                tid = value
        return tid


@dataclass
class Noise:
    """Detector noise. Probabilities are per object per frame."""

    miss: float = 0.0  # missed detection (flicker)
    jitter_px: float = 0.0  # gaussian noise on each box edge
    score_dip: float = 0.0  # score drops to 0.3 for that frame
    false_boxes_per_min: float = 0.0  # 1-3 frame false boxes of the scene's kinds, anywhere
    false_kinds: tuple[str, ...] = ("vending_stall", "garbage", "bicycle", "grill")
    seed: int = 0


@dataclass
class Scene:
    objs: list[Obj]
    duration_s: float
    fps: float = 5.0
    noise: Noise = field(default_factory=Noise)


def render(scene: Scene) -> list[tuple[float, Detections]]:
    """Frames ``(ts_s, Detections)`` of a scene at ``scene.fps``."""
    rng = random.Random(scene.noise.seed)
    noise = scene.noise
    n_frames = int(round(scene.duration_s * scene.fps))
    false_boxes: list[tuple[int, int, str, tuple[float, float, float, float]]] = []
    if noise.false_boxes_per_min:
        expected = noise.false_boxes_per_min * scene.duration_s / 60
        for _ in range(int(expected + 0.5)):
            f0 = rng.randrange(max(1, n_frames))
            w, h = rng.uniform(40, 120), rng.uniform(40, 120)
            x, y = rng.uniform(0, FRAME_WH[0] - w), rng.uniform(0, FRAME_WH[1] - h)
            false_boxes.append(
                (f0, f0 + rng.randint(1, 3), rng.choice(noise.false_kinds), (x, y, x + w, y + h))
            )
    frames = []
    for f in range(n_frames):
        t = round(f / scene.fps, 6)
        boxes, scores, classes, tids = [], [], [], []
        for obj in scene.objs:
            if not obj.visible(t) or (noise.miss and rng.random() < noise.miss):
                continue
            dx, dy = obj.offset(t)
            box = [obj.box[0] + dx, obj.box[1] + dy, obj.box[2] + dx, obj.box[3] + dy]
            if noise.jitter_px:
                box = [v + rng.gauss(0, noise.jitter_px) for v in box]
            score = obj.score
            if noise.score_dip and rng.random() < noise.score_dip:
                score = 0.3
            boxes.append(box)
            scores.append(score)
            classes.append(OBJECT_KINDS.index(ObjectKind(obj.kind)))
            tid = obj.tracker_id(t)
            tids.append(-1 if tid is None else tid)
        for f0, f1, kind, box in false_boxes:
            if f0 <= f < f1:
                boxes.append(list(box))
                scores.append(0.6)
                classes.append(OBJECT_KINDS.index(ObjectKind(kind)))
                tids.append(-1)
        tracked = any(obj.tracker_ids for obj in scene.objs)
        det = Detections(
            xyxy=np.array(boxes, np.float32).reshape(-1, 4),
            confidence=np.array(scores, np.float32),
            class_id=np.array(classes, np.int32),
            tracker_id=np.array(tids, np.int64) if tracked else None,
        )
        frames.append((t, det))
    return frames


def replay(
    cam: CameraConfig,
    frames: Iterable[tuple[float, Detections]],
    rule_config: RulesConfig | None = None,
    escalation_history: dict[str, list[float]] | None = None,
    tracker: Any = None,
    pipeline: CameraPipeline | None = None,
) -> list[ViolationEvent]:
    """All events (sightings included) of a pipeline over frames."""
    pipe = pipeline or CameraPipeline(cam, rule_config or RulesConfig(), escalation_history, tracker=tracker)
    events: list[ViolationEvent] = []
    for t, det in frames:
        events.extend(pipe.step(det, t, FRAME_WH))
    return events


def of(events: Iterable[ViolationEvent], name: str) -> list[ViolationEvent]:
    return [e for e in events if e.event == name]


# A few boxes, in pixels of FRAME_WH.
STALL = (400.0, 400.0, 560.0, 520.0)
BIKE = (300.0, 600.0, 380.0, 660.0)
BAG = (600.0, 700.0, 640.0, 740.0)
GRILL = (200.0, 300.0, 280.0, 360.0)
PERSON = (500.0, 300.0, 560.0, 480.0)


def run(
    cam: CameraConfig,
    objs: list[Obj],
    duration_s: float,
    noise: Noise | None = None,
    fps: float = 5.0,
    **kw: Any,
) -> list[ViolationEvent]:
    """Render a scene and replay it: all events, sightings included."""
    return replay(cam, render(Scene(objs, duration_s, fps, noise or Noise())), **kw)


def violation_ids(events: Iterable[ViolationEvent], name: str = "opened") -> list[str]:
    """Distinct violation ids of events named ``name``, in order of first appearance."""
    return list(dict.fromkeys(e.violation_id for e in events if e.event == name))
