"""Decision accuracy of the camera re-check (issue 19) on rendered scenarios.

For each violation scene (a vending cart on the sidewalk, three bikes on the blind path, two garbage bags)
a "before" clip gives the case's box the way a case gets it (the detector's boxes of the kind in the zone),
then "after" clips are judged by the worker's own re-check code (``streams.recheck.PlaceWatch`` on every
frame, the bootstrap detector, the window of ``--window-s``):

==========  =================================================================  ================
variant     the place after the handler's visit                                 expected
==========  =================================================================  ================
gone        the objects are gone; a passer-by walks through the place           cleared
passing     gone, but one of the kind passes through the place (a cart wheeled  cleared
            past, a bike ridden past, a bag carried past)
stays       the objects are still there                                         still_present
ir          stays, at night in the camera's infrared mode                       still_present
partly      some of the objects are gone, one remains (bikes 3 -> 1, bags 2->1)  still_present
dark        ``stays`` with the picture darkened to 8 % (night without IR)       inconclusive
blocked     ``stays`` with the lens covered (one flat grey)                     inconclusive
==========  =================================================================  ================

Scenario files are built here from the shipped suite (``datasets/scenarios``) and written next to the
renders, so the suite that ``urbaneye eval-events`` scores is untouched.

Example:
    python -m datasets.recheck_eval --seed 1 --runs 3 --out runs/recheck
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import json
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml

from datasets.scenarios import build_suite
from datasets.synth.video import render_scenario
from streams.capture import SampledFrame
from streams.observers import FrameView
from streams.recheck import PlaceWatch, presence_classes
from urbaneye.db.rechecks import RecheckResult
from urbaneye.rechecks import RecheckTarget
from vision.config import CameraConfig, load_cameras
from vision.detector import OnnxDetector
from vision.geometry import box_union, polygon_px
from vision.types import Detections

SUITE_DIR = Path(build_suite.__file__).parent
BOOTSTRAP_MODEL = Path(__file__).resolve().parents[1] / "models" / "bootstrap" / "urbaneye-bootstrap.onnx"


@dataclass(frozen=True)
class Scene:
    """One violation of the shipped suite, re-staged for a re-check."""

    name: str
    scenario_file: str
    kind: str
    zone_id: str
    actor_ids: tuple[str, ...]  # the violation's objects
    extra_actors: tuple[dict[str, Any], ...] = ()  # added to the "before" scene (a second bag)


SCENES = (
    Scene("vending", "vendor_sidewalk.yaml", "street_vending", "sidewalk-r", ("vendor-cart",)),
    Scene(
        "bikes",
        "bikes_blind_path.yaml",
        "bike_misparking",
        "blind-path",
        ("parked-0", "parked-1", "parked-2"),
    ),
    Scene(
        "garbage",
        "garbage_dropped.yaml",
        "exposed_garbage",
        "sidewalk-r",
        ("dropped-bag", "dropped-bag-2"),
        (
            {
                "id": "dropped-bag-2",
                "kind": "garbage",
                "seed": 7,
                "arrive_s": 0,
                "at": {"region": "right_sidewalk", "z_m": 11.4, "across": 0.8},
            },
        ),
    ),
)
EXPECTED = {
    "gone": RecheckResult.CLEARED,
    "passing": RecheckResult.CLEARED,
    "stays": RecheckResult.STILL_PRESENT,
    "ir": RecheckResult.STILL_PRESENT,
    "partly": RecheckResult.STILL_PRESENT,
    "dark": RecheckResult.INCONCLUSIVE,
    "blocked": RecheckResult.INCONCLUSIVE,
}
#: Variants rendered as scenes; dark and blocked are ``stays`` with the picture changed.
RENDERED = ("stays", "gone", "partly", "passing", "ir")


def _stationary(actor: dict[str, Any]) -> dict[str, Any]:
    """The actor standing at its place from t = 0 to the end."""
    out = {k: v for k, v in actor.items() if k not in ("from", "to", "enter_s", "leave_s", "exit_s")}
    out["arrive_s"] = 0
    return out


def _passing(actor: dict[str, Any], place: dict[str, Any], duration_s: float) -> dict[str, Any]:
    """One of the kind moving through the place without stopping (a bag is carried by a person)."""
    route = {"from": {**place, "z_m": place["z_m"] + 7}, "to": {**place, "z_m": max(3.0, place["z_m"] - 7)}}
    timing = {"enter_s": 1, "exit_s": max(2.0, duration_s - 1)}
    if actor["kind"] == "garbage":
        return {"id": "carried", "kind": "person", "seed": 8, "carries": "garbage_bag", **timing, **route}
    moving = {"id": "mover", "kind": actor["kind"], "seed": actor.get("seed", 0), **timing, **route}
    return {**moving, "rider": True} if actor["kind"] in ("bicycle", "e_bike") else moving


def scene_doc(scene: Scene, variant: str, duration_s: float) -> dict[str, Any]:
    """The scenario document of ``scene`` in ``variant`` (``stays``, ``gone`` or ``partly``)."""
    doc = yaml.safe_load((SUITE_DIR / scene.scenario_file).read_text(encoding="utf-8"))
    doc = copy.deepcopy(doc)
    doc["name"] = f"recheck_{scene.name}_{variant}"
    doc["description"] = f"re-check of {scene.kind}: {variant}"
    doc["duration_s"] = duration_s
    doc["must_not_alert"] = False
    actors = [a for a in doc["actors"] if a["id"] in scene.actor_ids] + list(scene.extra_actors)
    objects = [_stationary(a) for a in actors]
    place = actors[0]["at"]
    if variant in ("gone", "passing"):
        objects = [_passing(actors[0], place, duration_s)] if variant == "passing" else []
    elif variant == "partly":
        objects = objects[:1]
    elif variant == "ir":
        doc["view"]["time_of_day"] = "ir"
    passer = {
        "id": "passer",
        "kind": "person",
        "seed": 9,
        "enter_s": 1,
        "exit_s": max(2.0, duration_s - 1),
        "from": {**place, "z_m": place["z_m"] + 8},
        "to": {**place, "z_m": max(3.0, place["z_m"] - 6)},
    }
    doc["actors"] = [*objects, passer]
    doc["cameras"]["cameras"][0]["source"]["loop"] = True
    return doc


def render_scene(
    scene: Scene, variant: str, out_dir: Path, seed: int, size: tuple[int, int], fps: float, duration_s: float
) -> tuple[Path, Path]:
    """Render ``scene`` in ``variant``: (mp4, cameras yaml)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"recheck_{scene.name}_{variant}.yaml"
    path.write_text(
        yaml.safe_dump(scene_doc(scene, variant, duration_s), allow_unicode=True), encoding="utf-8"
    )
    result = render_scenario(path, out_dir / f"recheck_{scene.name}_{variant}-s{seed}.mp4", seed, fps, size)
    return result.video_path, result.cameras_path


def frames(video: Path, fps: float) -> Iterator[tuple[float, np.ndarray]]:
    """(t_s, BGR frame) of a clip rendered at ``fps``."""
    cap = cv2.VideoCapture(str(video))
    try:
        i = 0
        while True:
            ok, image = cap.read()
            if not ok:
                return
            yield i / fps, image
            i += 1
    finally:
        cap.release()


def case_box(
    video: Path, detector: OnnxDetector, kind: str, zone_polygon: list, n_frames: int = 5
) -> tuple[float, float, float, float]:
    """The case's box as the rules see it: the union of the kind's objects whose foot is in the zone,
    on the clip's first frames (the frame with the most such objects wins)."""
    classes = presence_classes(kind)
    best: list[np.ndarray] = []
    for i, (_, image) in enumerate(frames(video, 1.0)):
        if i >= n_frames:
            break
        dets = detector.detect(image)
        zone = polygon_px(zone_polygon, (image.shape[1], image.shape[0])).astype(np.float32)
        inside = [
            box
            for box, cid in zip(dets.xyxy, dets.class_id, strict=True)
            if int(cid) in classes
            and cv2.pointPolygonTest(zone, ((box[0] + box[2]) / 2, float(box[3])), False) >= 0
        ]
        if len(inside) > len(best):
            best = inside
    if not best:
        raise RuntimeError(f"{video}: the detector finds no {kind} object in the zone; the scene is no case")
    return box_union(best)


def judge_clip(
    video: Path,
    camera: CameraConfig,
    target: RecheckTarget,
    detector: OnnxDetector,
    fps: float,
    window_s: float,
    picture: str = "",
) -> RecheckResult:
    """Run the worker's re-check (``PlaceWatch``) over the clip's frames; ``picture`` dark|blocked alters them."""
    watch = PlaceWatch(target, window_s)
    t0 = dt.datetime(2024, 6, 3, 2, 0, tzinfo=dt.UTC)
    for i, (t_s, image) in enumerate(frames(video, fps)):
        if picture == "dark":
            image = (image.astype(np.float32) * 0.08).astype(np.uint8)
        elif picture == "blocked":
            image = np.full_like(image, 96)
        frame = SampledFrame(camera.id, image, t_s, False, t0 + dt.timedelta(seconds=t_s), 0.0, i, i == 0)
        dets = detector.detect(image)
        watch.add(FrameView(camera, frame, t_s, dets, Detections.empty(), True, str(detector.version)))
        if watch.done:
            break
    return watch.outcome().result


def evaluate(
    out_dir: Path, seed: int, runs: int, window_s: float, size: tuple[int, int], fps: float
) -> dict[str, Any]:
    """Render and judge every scene and variant for seeds ``seed .. seed+runs-1``; accuracy per variant."""
    detector: OnnxDetector | None = None
    rows: list[dict[str, Any]] = []
    for s in range(seed, seed + runs):
        for scene in SCENES:
            clips = {}
            for variant in RENDERED:
                if variant == "partly" and len(scene.actor_ids) < 2:
                    continue
                clips[variant] = render_scene(scene, variant, out_dir / f"s{s}", s, size, fps, window_s + 2)
            camera = load_cameras(clips["stays"][1]).cameras[0]
            if detector is None:
                detector = OnnxDetector(str(BOOTSTRAP_MODEL), load_cameras(clips["stays"][1]).model)
            zone = next(z for z in camera.zones if z.id == scene.zone_id)
            box = case_box(clips["stays"][0], detector, scene.kind, zone.polygon)
            target = RecheckTarget(
                "eval",
                "eval",
                camera.id,
                scene.zone_id,
                scene.kind,
                "",
                "blue",
                box,
                size,
                1,
                "dispatched",
                "manual",
            )
            judged = {v: judge_clip(c[0], camera, target, detector, fps, window_s) for v, c in clips.items()}
            for picture in ("dark", "blocked"):
                judged[picture] = judge_clip(
                    clips["stays"][0], camera, target, detector, fps, window_s, picture
                )
            for variant, result in judged.items():
                rows.append(
                    {"seed": s, "scene": scene.name, "variant": variant, "result": result.value,
                     "expected": EXPECTED[variant].value, "ok": result == EXPECTED[variant]}
                )  # fmt: skip
    return summarise(rows, seed, runs, window_s, size, fps)


def summarise(
    rows: list[dict[str, Any]], seed: int, runs: int, window_s: float, size: tuple[int, int], fps: float
) -> dict[str, Any]:
    per_variant: dict[str, dict[str, Any]] = {}
    for variant in EXPECTED:
        mine = [r for r in rows if r["variant"] == variant]
        if mine:
            per_variant[variant] = {
                "n": len(mine),
                "correct": sum(r["ok"] for r in mine),
                "accuracy": round(sum(r["ok"] for r in mine) / len(mine), 3),
                "results": dict(Counter(r["result"] for r in mine)),
            }
    return {
        "seed": seed,
        "runs": runs,
        "window_s": window_s,
        "size": list(size),
        "fps": fps,
        "n": len(rows),
        "accuracy": round(sum(r["ok"] for r in rows) / max(1, len(rows)), 3),
        "per_variant": per_variant,
        "wrong": [r for r in rows if not r["ok"]],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m datasets.recheck_eval",
        description="Decision accuracy of the camera re-check on rendered scenarios (issue 19).",
    )
    p.add_argument("--seed", type=int, default=1, help="first render seed (default 1)")
    p.add_argument("--runs", type=int, default=3, help="seeds seed..seed+runs-1 (default 3)")
    p.add_argument("--window-s", type=float, default=10.0, help="re-check window in seconds (default 10)")
    p.add_argument("--size", default="960x540", help="render size WxH (default 960x540)")
    p.add_argument("--fps", type=float, default=5.0, help="render and detect rate (default 5)")
    p.add_argument("--out", type=Path, default=Path("runs/recheck"), help="where renders go")
    args = p.parse_args(argv)
    w, h = (int(v) for v in args.size.lower().split("x"))
    report = evaluate(args.out, args.seed, args.runs, args.window_s, (w, h), args.fps)
    print(json.dumps(report, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
