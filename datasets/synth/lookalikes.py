"""Fixed look-alikes (a rock, a planter, a bench) and what the false-alarm memory does about them.

Two measurements, both on rendered scenes (``python -m datasets.synth.lookalikes --help``):

``descriptors``: which appearance descriptor recognises *the same object under other light* and tells
*another object at the same place* apart. Each look-alike is rendered by day (the reference, as the
rejected case's evidence frame) and again at dusk, night, in IR and in haze (same object, box shifted by
up to 2 px); the negatives are other objects rendered at the same place in the same light (garbage bags,
a vending stall, a bicycle, the empty ground), described in the *remembered* box (the worst case: the
detector's box is the old one). Candidates: a hue/saturation histogram, a DCT hash of the normalised
thumbnail, a gradient-orientation histogram, and the gradient histogram + Lab chroma that
``vision.memory.describe`` uses.

``memory``: false alarms before and after one rejection each, on scenario videos. Day 1 (by day): the
look-alike stands in a watched zone all along and the detector takes it for garbage / a stall: a false
alarm. Its opened event is "rejected": a ``MemoryEntry`` from the event's (JPEG) frame and box, as the
API makes one from the case's evidence. Day 2 (dusk; the same objects, new sensor noise): the look-alike again, then it
is taken away and a real violation (a garbage bag, a stall) is put at the same place; one scene keeps the
rock and sets a stall up on it. Replayed with and without the memory file: false alarms (opened
violations matching no truth) and real violations missed.

The detector is a deterministic stand-in for a model that confuses the look-alike (``TrackDetector``):
each actor's visible box, from the render, is "detected" with the label the scene gives it, so the
look-alike is reported exactly like the real garbage/stall would be.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml

from vision.geometry import iou_matrix
from vision.memory import MemoryBook, MemoryEntry, describe, entry_from_crop, similarity
from vision.types import OBJECT_KINDS, Detections, ObjectKind, ViolationEvent

BASE_SCENARIO = Path(__file__).resolve().parents[1] / "scenarios" / "garbage_dropped.yaml"
SIZE = (960, 540)
FPS = 5.0
#: Lighting of the repeated renders: same object, other light.
LIGHTS: tuple[tuple[str, str], ...] = (
    ("day", "clear"), ("day", "overcast"), ("dusk", "clear"), ("night", "clear"), ("ir", "clear"), ("day", "haze"),
)  # fmt: skip
LOOKALIKE_AT = {"region": "right_sidewalk", "z_m": 11, "across": 0.6}


# ------------------------------------------------------------------------------------------ scenes
def _base() -> dict[str, Any]:
    return yaml.safe_load(BASE_SCENARIO.read_text(encoding="utf-8"))


def scenario_doc(
    name: str,
    actors: list[dict[str, Any]],
    duration_s: float,
    time_of_day: str = "day",
    weather: str = "clear",
    camera_id: str = "lookalike",
) -> dict[str, Any]:
    """A scenario document on the garbage_dropped street with ``actors``."""
    doc = _base()
    doc["name"] = name
    doc["description"] = f"false-alarm memory: {name}"
    doc["duration_s"] = duration_s
    doc["must_not_alert"] = False
    doc["view"] = {**doc["view"], "time_of_day": time_of_day, "weather": weather}
    cam = doc["cameras"]["cameras"][0]
    cam["id"] = camera_id
    cam["source"]["url"] = f"{name}.mp4"
    doc["actors"] = actors
    return doc


def actor(
    aid: str, kind: str, seed: int, arrive_s: float, leave_s: float | None = None, **extra: Any
) -> dict:
    a = {"id": aid, "kind": kind, "seed": seed, "arrive_s": arrive_s, "at": dict(LOOKALIKE_AT), **extra}
    if leave_s is not None:
        a["leave_s"] = leave_s
    return a


def render_still(doc: dict[str, Any], seed: int = 0, t_s: float = 1.0) -> tuple[np.ndarray, dict[str, tuple]]:
    """One frame of a scenario document at ``t_s``: (image, {actor id: visible box})."""
    from datasets.synth.render import compose
    from datasets.synth.scenario import build_scene, frame_placements, parse_scenario

    scenario, cams = parse_scenario(doc)
    scene = build_scene(scenario, cams, SIZE, seed)
    light = dataclasses.replace(scene.light, frame_seed=int(t_s * FPS))
    frame = compose(scene.camera, scene.background, frame_placements(scene, t_s, int(t_s * FPS)), light)
    return frame.image, {o.tag: o.box_xyxy for o in frame.objects if o.tag and o.box_xyxy}


# ------------------------------------------------------------------------------ descriptor study
def _hs_hist(img: np.ndarray, box: Iterable[float]) -> np.ndarray | None:
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    crop = img[max(0, y1) : y2, max(0, x1) : x2]
    if crop.size == 0:
        return None
    hsv = cv2.cvtColor(crop, cv2.COLOR_BGR2HSV)
    hist = cv2.calcHist([hsv], [0, 1], None, [16, 4], [0, 180, 0, 256]).ravel()
    return hist / max(1.0, float(hist.sum()))


def _dct_hash(img: np.ndarray, box: Iterable[float]) -> np.ndarray | None:
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    crop = img[max(0, y1) : y2, max(0, x1) : x2]
    if crop.size == 0:
        return None
    g = cv2.resize(cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY), (32, 32), interpolation=cv2.INTER_AREA)
    g = g.astype(np.float32)
    g = (g - g.mean()) / max(1.0, float(g.std()))
    low = cv2.dct(g)[:8, :8].ravel()[1:]
    return (low > np.median(low)).astype(np.float32)


def _grad_hist_cells(img: np.ndarray, box: Iterable[float]) -> np.ndarray | None:
    """The gradient histogram with each cell normalised on its own (HOG's block normalisation)."""
    d = describe(img, list(box))
    if d is None:
        return None
    cells = d.reshape(-1, 8)
    return (cells / np.maximum(np.linalg.norm(cells, axis=1, keepdims=True), 1e-3)).ravel()


def _lab_ab(img: np.ndarray, box: Iterable[float]) -> np.ndarray | None:
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    crop = img[max(0, y1) : y2, max(0, x1) : x2]
    if crop.size == 0:
        return None
    ab = cv2.cvtColor(crop, cv2.COLOR_BGR2Lab)[:, :, 1:].reshape(-1, 2).astype(np.float32)
    q = ((np.clip(ab, 96, 159.9) - 96) / 16).astype(np.int32)
    hist = np.bincount(q[:, 0] * 4 + q[:, 1], minlength=16).astype(np.float32)
    return hist / max(1.0, float(hist.sum()))


def _grad_and_colour(img: np.ndarray, box: Iterable[float]) -> np.ndarray | None:
    g, c = describe(img, list(box)), _lab_ab(img, box)
    return None if g is None or c is None else np.concatenate([g, c])


def _grad_colour_sim(a: np.ndarray, b: np.ndarray) -> float:
    return 0.65 * similarity(a[:128], b[:128]) + 0.35 * float(np.minimum(a[128:], b[128:]).sum())


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    n = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(a @ b) / n if n > 1e-9 else 0.0


#: name -> (describe(image, box), similarity(a, b))
CANDIDATES: dict[str, tuple[Callable, Callable]] = {
    "hs_hist_16x4 (bhattacharyya)": (_hs_hist, lambda a, b: float(np.sqrt(a * b).sum())),
    "dct_hash_63bit (1-hamming)": (_dct_hash, lambda a, b: 1.0 - float(np.abs(a - b).mean())),
    "grad_hist_4x4x8 per-cell norm (cosine)": (_grad_hist_cells, _cos),
    "grad_hist_4x4x8 + lab_ab_4x4 (0.65 cos + 0.35 intersection)": (_grad_and_colour, _grad_colour_sim),
    "grad_hist_4x4x8 L2 (cosine) [vision.memory]": (lambda i, b: describe(i, list(b)), similarity),
}

LOOKALIKES = (("rock", 31), ("rock", 32), ("planter", 33), ("bench", 34))
OTHERS = (("garbage", 40, {"variant": "bags", "size_m": 1.0}), ("garbage", 41, {"variant": "pile", "size_m": 0.9}),
          ("vending_stall", 42, {}), ("bicycle", 43, {}), (None, 0, {}))  # fmt: skip


def descriptor_study(seed: int = 0, thresholds: Iterable[float] = (0.75, 0.8, 0.85)) -> dict[str, Any]:
    """Same-object similarities (other light) vs different-object similarities (same place, same light)."""
    same: dict[str, list[float]] = {k: [] for k in CANDIDATES}
    diff: dict[str, list[float]] = {k: [] for k in CANDIDATES}
    rng = np.random.default_rng(seed)
    for kind, aseed in LOOKALIKES:
        ref_img, ref_boxes = render_still(scenario_doc("ref", [actor("x", kind, aseed, 0)], 10), seed)
        box = ref_boxes["x"]
        refs = {k: f(ref_img, box) for k, (f, _) in CANDIDATES.items()}
        for tod, weather in LIGHTS:
            img, boxes = render_still(
                scenario_doc("v", [actor("x", kind, aseed, 0)], 10, tod, weather), seed, 7.0
            )
            shift = rng.integers(-2, 3, 4)
            jittered = [v + s for v, s in zip(boxes["x"], shift, strict=True)]
            for k, (f, sim) in CANDIDATES.items():
                same[k].append(sim(refs[k], f(img, jittered)))
            for okind, oseed, look in OTHERS:
                actors = [] if okind is None else [actor("o", okind, oseed, 0, look=look)]
                oimg, _ = render_still(scenario_doc("o", actors, 10, tod, weather), seed, 7.0)
                for k, (f, sim) in CANDIDATES.items():
                    diff[k].append(sim(refs[k], f(oimg, box)))
    out = {}
    for k in CANDIDATES:
        s, d = np.array(same[k]), np.array(diff[k])
        # the best threshold: most same-object pairs kept with no different object accepted
        thr = float(d.max()) + 1e-6
        auc = float((s[:, None] > d[None, :]).mean() + 0.5 * (s[:, None] == d[None, :]).mean())
        out[k] = {
            "same_min": round(float(s.min()), 3),
            "same_median": round(float(np.median(s)), 3),
            "diff_max": round(float(d.max()), 3),
            "diff_median": round(float(np.median(d)), 3),
            "auc": round(auc, 3),
            "same_kept_at_zero_false_match": round(float((s >= thr).mean()), 3),
            **{
                f"at_{t:.2f}": {
                    "same_kept": round(float((s >= t).mean()), 3),
                    "diff_matched": int((d >= t).sum()),
                }
                for t in thresholds
            },
            "pairs_same": len(s),
            "pairs_diff": len(d),
        }
    return out


# ---------------------------------------------------------------------------- memory measurement
class TrackDetector:
    """Reports each labelled actor's visible box (from the render) on the frame it was rendered in.

    A stand-in for a model that takes the look-alike for garbage / a stall: it sees exactly what is
    visible, with the label the scene gives it. Replays run ungated at the render's rate, so the k-th
    ``detect`` call is the k-th frame.
    """

    version = "track-detector"

    def __init__(self, tracks: dict[str, list[tuple[float, Any]]], labels: dict[str, ObjectKind]) -> None:
        self.tracks = tracks
        self.labels = labels
        self.calls = 0

    def detect(self, frame_bgr: np.ndarray) -> Detections:
        k = self.calls
        self.calls += 1
        boxes, classes = [], []
        for actor_id, kind in self.labels.items():
            track = self.tracks[actor_id]
            box = track[k][1] if k < len(track) else None
            if box is not None:
                boxes.append(box)
                classes.append(OBJECT_KINDS.index(kind))
        if not boxes:
            return Detections.empty()
        return Detections(
            xyxy=np.array(boxes, np.float32),
            confidence=np.full(len(boxes), 0.9, np.float32),
            class_id=classes,
        )


@dataclasses.dataclass(frozen=True)
class Case:
    """One look-alike scene: day 1 has only the look-alike; day 2 adds the real violation later."""

    name: str
    lookalike: str
    lookalike_seed: int
    seen_as: ObjectKind  # what the detector takes the look-alike for
    real: str | None  # the real violating object put at the same place on day 2
    real_look: dict[str, Any]
    lookalike_stays: bool  # day 2: the look-alike stays (the real object is set up on it)


CASES = (
    Case("rock_then_garbage", "rock", 31, ObjectKind.GARBAGE, "garbage", {"variant": "bags", "size_m": 1.0}, False),
    Case("planter_then_garbage", "planter", 33, ObjectKind.GARBAGE, "garbage", {"variant": "pile", "size_m": 0.9},
         False),
    Case("bench_then_stall", "bench", 34, ObjectKind.VENDING_STALL, "vending_stall", {}, False),
    Case("rock_stall_on_it", "rock", 32, ObjectKind.GARBAGE, "vending_stall", {}, True),
)  # fmt: skip
DAY1_S, DAY2_S, SWAP_S, REAL_FROM_S = 110.0, 260.0, 100.0, 110.0


def _render(doc: dict[str, Any], out_dir: Path, seed: int) -> tuple[Path, Path, Path, dict[str, Any]]:
    from datasets.synth.video import render_scenario

    path = out_dir / f"{doc['name']}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), encoding="utf-8")
    video = out_dir / f"{doc['name']}.mp4"
    result = render_scenario(path, video, seed, FPS, SIZE)
    return video, result.truth_path, result.cameras_path, result.tracks


def _still_box(track: list[tuple[float, Any]]) -> tuple[float, float, float, float]:
    boxes = np.array([b for _, b in track if b is not None], np.float32)
    return tuple(float(v) for v in np.median(boxes, axis=0))  # type: ignore[return-value]


def _replay(video: Path, cameras: Path, detector: TrackDetector, memory: list[MemoryEntry] | None) -> tuple:
    from streams.replay import replay_video
    from vision.config import load_cameras

    cams = load_cameras(cameras)
    camera = cams.cameras[0]
    frames: dict[str, tuple[ViolationEvent, np.ndarray]] = {}
    lines: list[dict[str, Any]] = []

    class Keep:  # the opened event's frame, as the evidence keeper would store it (JPEG)
        def put(self, event: ViolationEvent, frame: Any, detections: Detections, model_version: str) -> None:
            if event.event == "opened" and event.violation_id not in frames:
                ok, jpg = cv2.imencode(".jpg", frame.image, [cv2.IMWRITE_JPEG_QUALITY, 90])
                frames[event.violation_id] = (event, cv2.imdecode(jpg, cv2.IMREAD_COLOR))

    book = MemoryBook(memory) if memory else None
    replay_video(
        camera, cams.rules, video, detector,
        lambda e: lines.append(e.to_json()) if e.event != "sighting" else None,
        sink=Keep(), memory=book, gating=False,
    )  # fmt: skip
    return lines, frames, book


def measure_memory(out_dir: Path, seed: int = 1) -> dict[str, Any]:
    """False alarms before/after one rejection each, and real violations missed (see the module doc)."""
    from vision.scoring import load_truth, opened_events, score_events

    out_dir.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"scenes": {}}
    all_entries: list[MemoryEntry] = []
    totals = {"day1_false_alarms": 0, "day2_false_alarms_without_memory": 0, "day2_false_alarms_with_memory": 0,
              "day2_real_violations": 0, "day2_missed_without_memory": 0, "day2_missed_with_memory": 0,
              "suppressions": 0}  # fmt: skip
    for case in CASES:
        cam_id = f"lookalike-{case.name}".replace("_", "-")
        la = actor("lookalike", case.lookalike, case.lookalike_seed, 0)
        day1 = scenario_doc(f"{case.name}-day1", [la], DAY1_S, camera_id=cam_id)
        v1, t1, c1, tracks1 = _render(day1, out_dir, seed)
        det1 = TrackDetector(tracks1, {"lookalike": case.seen_as})
        lines1, frames1, _ = _replay(v1, c1, det1, None)
        fa1 = score_events(opened_events(lines1), [load_truth(t1)]).false_positives
        # one rejection: the first false alarm becomes a memory entry, from its evidence frame
        entries = [
            entry_from_crop(f"mem-{case.name}", cam_id, ev.kind, ev.bbox_xyxy, img, reviewer="measure")
            for ev, img in list(frames1.values())[:1]
        ]
        la2 = actor(
            "lookalike", case.lookalike, case.lookalike_seed, 0, None if case.lookalike_stays else SWAP_S
        )
        real_look = {"look": case.real_look} if case.real_look else {}
        real = actor("real", case.real, 50, REAL_FROM_S, **real_look)
        day2 = scenario_doc(f"{case.name}-day2", [la2, real], DAY2_S, "dusk", camera_id=cam_id)
        v2, t2, c2, tracks2 = _render(day2, out_dir, seed)  # same seed: the same objects, other light
        labels2 = {"lookalike": case.seen_as, "real": ObjectKind(case.real)}
        truth2 = load_truth(t2)
        scene: dict[str, Any] = {"day1_false_alarms": fa1, "memory_entries": len(entries),
                                 "day2_real_violations": len(truth2.violations)}  # fmt: skip
        still, boxes = render_still(day2, seed, SWAP_S / 2)
        if entries:  # how the day-2 look-alike compares with its memory (the matcher's two tests)
            box = _still_box(tracks2["lookalike"])
            scene["day2_lookalike_similarity"] = round(
                similarity(describe(still, box), np.asarray(entries[0].descriptor, np.float32)), 3
            )
            scene["day2_lookalike_iou"] = round(
                float(iou_matrix(np.array([box]), np.array([entries[0].box_xyxy]))[0, 0]), 3
            )
        all_entries += entries
        for label, mem in (("without_memory", None), ("with_memory", entries)):
            lines2, _, book = _replay(v2, c2, TrackDetector(tracks2, labels2), mem)
            score = score_events(opened_events(lines2), [truth2])
            scene[f"day2_false_alarms_{label}"] = score.false_positives
            scene[f"day2_missed_{label}"] = score.false_negatives
            if book is not None:
                scene["suppressions"] = sum(u.suppressed for u in book.take_updates())
        report["scenes"][case.name] = scene
        for k in totals:
            totals[k] += scene.get(k, 0)
    (out_dir / "memory.json").write_text(
        json.dumps({"entries": [e.to_json() for e in all_entries]}, indent=1), encoding="utf-8"
    )
    report["totals"] = totals
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m datasets.synth.lookalikes", description=__doc__.split("\n")[0]
    )
    parser.add_argument("what", choices=["descriptors", "memory"])
    parser.add_argument(
        "--out", type=Path, default=Path("/tmp/urbaneye-lookalikes"), help="render folder (memory)"
    )
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    result = (
        descriptor_study(args.seed) if args.what == "descriptors" else measure_memory(args.out, args.seed)
    )
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = ["CASES", "TrackDetector", "descriptor_study", "measure_memory"]
