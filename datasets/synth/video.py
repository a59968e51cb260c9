"""Render a scenario to MP4 + ground truth + a ready-to-replay cameras file.

Truth is derived from the timeline and the rendered pixels: an actor that can violate (stall, garbage,
bike, grill) and stands still inside a zone that watches its kind, outside any exempting zone (bike bay,
bin area, night market in its hours), for at least the zone's dwell, is one violation from the moment
it stopped (``start_s``) to the moment it left (``end_s``), with the median visible box of its still
frames. Actors sharing a ``group`` form one violation (a cluster of bikes).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import shutil
import subprocess
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from datasets.synth.light_events import apply_light_events
from datasets.synth.objects import UNKNOWN_OBJECTS
from datasets.synth.render import compose
from datasets.synth.scenario import (
    VIOLATION_OF_KIND,
    ScenarioError,
    ScenarioScene,
    build_scene,
    frame_placements,
    load_scenario,
    stay_window,
    verify_zone_regions,
    zone_contains,
)
from vision.config import ZoneKind
from vision.types import ViolationKind

log = logging.getLogger(__name__)

#: Zone kinds that exempt an object kind (inside them it never counts).
EXEMPT_ZONES: dict[ViolationKind, ZoneKind] = {
    ViolationKind.BIKE_MISPARKING: ZoneKind.BIKE_BAY,
    ViolationKind.EXPOSED_GARBAGE: ZoneKind.BIN_AREA,
    ViolationKind.STREET_VENDING: ZoneKind.ALLOWED_VENDING,
}
#: Overlap-anchored objects (stalls, garbage, grills) this much inside a zone are ambiguous: the
#: vision rules' own threshold may fall either side, so scenarios must place them clearly.
AMBIGUOUS_SHARE = (0.25, 0.6)
#: A stay this close to the dwell (either side) is ambiguous; scenario authors must keep clear of it.
DWELL_MARGIN_S = 10.0

Track = list[tuple[float, tuple[int, int, int, int] | None]]


@dataclasses.dataclass
class ScenarioResult:
    video_path: Path
    truth_path: Path
    cameras_path: Path
    truth: dict[str, Any]
    tracks: dict[str, Track]  # actor id -> [(t_s, visible box or None)] per frame


class FrameWriter:
    """H.264 through an ffmpeg pipe of raw BGR frames; OpenCV's writer (mp4v) when ffmpeg is missing."""

    def __init__(self, path: Path, fps: float, size: tuple[int, int]) -> None:
        self.path = path
        w, h = size
        self.proc: subprocess.Popen | None = None
        self.writer: cv2.VideoWriter | None = None
        ffmpeg = shutil.which("ffmpeg")
        if ffmpeg:
            cmd = [
                ffmpeg, "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{w}x{h}",
                "-r", f"{fps}", "-i", "-", "-an", "-c:v", "libx264", "-preset", "veryfast", "-crf", "26",
                "-pix_fmt", "yuv420p", "-g", str(max(1, int(fps * 2))), "-threads", "1", str(path),
            ]  # fmt: skip
            self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE)
        else:
            log.warning("ffmpeg not found; writing %s with OpenCV's mp4v encoder", path)
            self.writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
            if not self.writer.isOpened():
                raise RuntimeError(f"cannot open a video writer for {path}; install ffmpeg")

    def write(self, frame: np.ndarray) -> None:
        if self.proc is not None:
            self.proc.stdin.write(np.ascontiguousarray(frame).tobytes())  # type: ignore[union-attr]
        else:
            self.writer.write(frame)  # type: ignore[union-attr]

    def close(self) -> None:
        if self.proc is not None:
            self.proc.stdin.close()  # type: ignore[union-attr]
            if self.proc.wait() != 0:
                raise RuntimeError(f"ffmpeg failed writing {self.path} (exit {self.proc.returncode})")
        elif self.writer is not None:
            self.writer.release()


def render_frames(scene: ScenarioScene, fps: float, progress: bool = False):  # noqa: ANN201 - generator
    """Yield ``(t_s, image, {actor tag: visible box or None})`` for every frame."""
    from tqdm import tqdm

    sc = scene.scenario
    n = int(round(sc.duration_s * fps))
    cache: dict[object, Any] = {}
    for k in tqdm(range(n), desc=f"render {sc.name}", unit="frame", disable=not progress):
        t_s = k / fps
        placed = frame_placements(scene, t_s, k)
        light = dataclasses.replace(scene.light, frame_seed=k)
        frame = compose(scene.camera, scene.background, placed, light, sprite_cache=cache)
        boxes = {o.tag: o.box_xyxy for o in frame.objects if o.tag}
        yield t_s, apply_light_events(frame.image, sc.light_events, t_s), boxes


def compute_truth(scene: ScenarioScene, tracks: dict[str, Track], fps: float) -> dict[str, Any]:
    """The violations a correct system reports for this scenario (see the module docstring)."""
    sc = scene.scenario
    cam = scene.cameras.cameras[0]
    wh = (scene.camera.width_px, scene.camera.height_px)
    found: dict[tuple[str, str, str], dict[str, Any]] = {}
    for a in sc.actors:
        kind = VIOLATION_OF_KIND.get(a.kind)
        stay = stay_window(a, sc.duration_s)
        if kind is None or stay is None:
            continue
        start_s, end_s = stay
        boxes = [b for t, b in tracks.get(a.id, []) if start_s <= t < end_s and b is not None]
        n_still = sum(1 for t, _ in tracks.get(a.id, []) if start_s <= t < end_s)
        if n_still == 0:
            continue
        if len(boxes) < 0.5 * n_still:
            raise ScenarioError(
                f"scenario '{sc.name}': actor '{a.id}' is hidden or off-picture in most of its stay; move it"
            )
        box = tuple(int(v) for v in np.median(np.array(boxes), axis=0))
        local = cam.local_time(start_s)
        exempt = False
        watching = []
        for zone in cam.zones:
            if kind not in zone.watches() and EXEMPT_ZONES.get(kind) != zone.kind:
                continue  # this zone has no say about this kind
            share = zone_contains(zone, a.kind, box, wh)
            if AMBIGUOUS_SHARE[0] < share < AMBIGUOUS_SHARE[1]:
                raise ScenarioError(
                    f"scenario '{sc.name}': actor '{a.id}' is {share:.0%} inside zone '{zone.id}'; place it "
                    "clearly inside or outside"
                )
            if share < 0.5:
                continue
            active = zone.schedule is None or zone.schedule.is_active(local)
            if (
                active
                and zone.schedule is not None
                and not zone.schedule.is_active(cam.local_time(end_s - 1e-3))
            ):
                raise ScenarioError(
                    f"scenario '{sc.name}': actor '{a.id}' stays across the end of zone '{zone.id}' hours; "
                    "keep stays inside or outside the schedule"
                )
            if EXEMPT_ZONES.get(kind) == zone.kind and active:
                exempt = True
            elif kind in zone.watches() and active:
                watching.append(zone)
        if exempt:
            continue
        for zone in watching:
            dwell_s = zone.dwell_for(kind)
            key = (a.group or a.id, str(kind), zone.id)
            if key in found:  # another member of the group: widen the cluster
                v = found[key]
                v["start_s"] = min(v["start_s"], start_s)
                v["end_s"] = max(v["end_s"], end_s)
                b = v["bbox_xyxy"]
                v["bbox_xyxy"] = [min(b[0], box[0]), min(b[1], box[1]), max(b[2], box[2]), max(b[3], box[3])]
                v["actors"].append(a.id)
                continue
            found[key] = {
                "kind": str(kind),
                "zone_id": zone.id,
                "start_s": start_s,
                "end_s": end_s,
                "dwell_s": dwell_s,
                "bbox_xyxy": list(box),
                "actors": [a.id],
            }
    violations = []
    for v in found.values():
        stay_s = v["end_s"] - v["start_s"]
        if abs(stay_s - v["dwell_s"]) < DWELL_MARGIN_S:
            raise ScenarioError(
                f"scenario '{sc.name}': {v['actors']} stay {stay_s:.0f} s against a dwell of {v['dwell_s']:.0f} s "
                f"in zone '{v['zone_id']}'; keep stays at least {DWELL_MARGIN_S:.0f} s shorter or longer"
            )
        if stay_s >= v["dwell_s"]:
            v["start_s"], v["end_s"] = round(v["start_s"], 3), round(v["end_s"], 3)
            violations.append(v)
    violations.sort(key=lambda v: (v["start_s"], v["kind"], v["zone_id"]))
    if sc.must_not_alert and violations:
        raise ScenarioError(
            f"scenario '{sc.name}' is marked must_not_alert but its timeline makes violations: "
            f"{[(v['kind'], v['zone_id'], v['actors']) for v in violations]}"
        )
    truth = {
        "scenario": sc.name,
        "camera_id": cam.id,
        "duration_s": sc.duration_s,
        "fps": fps,
        "frame_wh": list(wh),
        "must_not_alert": sc.must_not_alert,
        "start_time": cam.start_time.isoformat() if cam.start_time else None,
        "violations": violations,
    }
    if sc.suite == "static_objects":
        truth["unknown_objects"] = unknown_object_truth(scene, tracks)
    return truth


def unknown_object_truth(scene: ScenarioScene, tracks: dict[str, Track]) -> list[dict[str, Any]]:
    """Objects the model has no class for that were left and stayed: what the static-object detector should
    report, from the moment they were left (``start_s``) to the moment they went (``end_s``), with the
    median visible box of their still frames. Zones play no part: the detector watches the whole picture."""
    sc = scene.scenario
    out = []
    for a in sc.actors:
        stay = stay_window(a, sc.duration_s)
        if a.kind not in UNKNOWN_OBJECTS or stay is None:
            continue
        boxes = [b for t, b in tracks.get(a.id, []) if stay[0] <= t < stay[1] and b is not None]
        if not boxes:
            raise ScenarioError(f"scenario '{sc.name}': unknown object '{a.id}' is never visible; move it")
        box = [int(v) for v in np.median(np.array(boxes), axis=0)]
        out.append({"actor": a.id, "kind": a.kind, "start_s": round(stay[0], 3), "end_s": round(stay[1], 3),
                    "bbox_xyxy": box})  # fmt: skip
    return out


def output_paths(out_mp4: Path) -> tuple[Path, Path]:
    """``OUT.mp4`` -> (``OUT.truth.json``, ``OUT.cameras.yaml``)."""
    stem = out_mp4.with_suffix("")
    return stem.with_name(stem.name + ".truth.json"), stem.with_name(stem.name + ".cameras.yaml")


def render_scenario(
    scenario_path: Path | str,
    out_mp4: Path | str,
    seed: int = 0,
    fps: float = 5.0,
    size: tuple[int, int] = (960, 540),
    progress: bool = False,
) -> ScenarioResult:
    """Render ``scenario_path`` to ``out_mp4``, ``OUT.truth.json`` and ``OUT.cameras.yaml``."""
    import yaml

    if not 0.5 <= fps <= 30:
        raise ValueError(f"--fps {fps} is out of range; use 0.5..30 (default 5)")
    out_mp4 = Path(out_mp4)
    if out_mp4.suffix.lower() != ".mp4":
        raise ValueError(f"--out {out_mp4} must end in .mp4")
    scenario, cams = load_scenario(scenario_path)
    verify_zone_regions(scenario, cams)
    scene = build_scene(scenario, cams, size, seed)
    out_mp4.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_mp4.with_name(out_mp4.stem + ".part.mp4")
    writer = FrameWriter(tmp, fps, size)
    tracks: dict[str, Track] = {a.id: [] for a in scenario.actors}
    try:
        for t_s, image, boxes in render_frames(scene, fps, progress):
            writer.write(image)
            for a in scenario.actors:
                tracks[a.id].append((t_s, boxes.get(a.id)))
    finally:
        writer.close()
    tmp.replace(out_mp4)
    truth = compute_truth(scene, tracks, fps)
    truth_path, cameras_path = output_paths(out_mp4)
    truth_path.write_text(json.dumps(truth, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    doc = copy.deepcopy(scenario.cameras)
    cam = doc["cameras"][0]
    cam["source"] = {**cam.get("source", {}), "url": str(out_mp4.resolve())}
    cameras_path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return ScenarioResult(out_mp4, truth_path, cameras_path, truth, tracks)
