"""Sections of ``urbaneye bench`` about the camera loop's cheaper parts and the control plane:

- ``motion_gating``: detector calls over a scenario suite with and without gating, and the events the gated
  run missed compared with the ungated one.
- ``static_objects``: the cost of ``StaticObjectDetector.update`` per frame.
- ``config_poll``: what a worker's poll for camera/zone edits costs (``CameraRegistry.versions``) with 1000
  cameras x 5 zones in the tables, watching 10, 100 and 1000 of them, and reloading one camera.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any

from tools.bench_clips import scenario_clip

STATIC_SCENARIO = "static_cardboard_day"  # static-object detector: a pile of boxes left, walkers, a cloud
GATING_SUITE = (
    "garbage_dropped",
    "bike_in_bay",
    "bikes_blind_path",
    "bins_with_lids",
    "night_barbecue",
    "vendor_sidewalk",
)


# --------------------------------------------------------------------------------- motion gating
def _matches(a: dict, b: dict) -> bool:
    from vision.geometry import box_iou

    return (
        a["camera_id"] == b["camera_id"]
        and a["kind"] == b["kind"]
        and abs(a["ts_s"] - b["ts_s"]) <= 15.0
        and box_iou(a["bbox_xyxy"], b["bbox_xyxy"]) >= 0.3
    )


def bench_motion_gating(model: Path, quick: bool) -> dict[str, Any]:
    from streams.replay import replay_video
    from vision.config import load_cameras
    from vision.detector import OnnxDetector

    suite = GATING_SUITE[:2] if quick else GATING_SUITE
    size = (640, 360) if quick else (960, 540)
    gated_calls = ungated_calls = frames = missed = 0
    per: dict[str, Any] = {}
    detectors: dict[str, Any] = {}
    for name in suite:
        video, truth, cameras_path = scenario_clip(name, size)
        cameras_file = load_cameras(cameras_path)
        key = cameras_file.model.model_dump_json()
        detector = detectors.setdefault(key, OnnxDetector(model, cameras_file.model))
        camera_id = json.loads(truth.read_text(encoding="utf-8"))["camera_id"]
        camera = cameras_file.camera(camera_id)
        runs = {}
        for gating in (True, False):
            events: list[dict] = []
            stats = replay_video(
                camera,
                cameras_file.rules,
                video,
                detector,
                lambda e, out=events: out.append(e.to_json()) if e.event == "opened" else None,
                gating=gating,
            )
            runs[gating] = (stats, events)
        (g_stats, g_events), (u_stats, u_events) = runs[True], runs[False]
        miss = sum(1 for u in u_events if not any(_matches(u, g) for g in g_events))
        gated_calls += g_stats.detector_calls
        ungated_calls += u_stats.detector_calls
        frames += u_stats.frames_sampled
        missed += miss
        per[name] = {
            "detector_calls_gated": g_stats.detector_calls,
            "detector_calls_ungated": u_stats.detector_calls,
            "opened_gated": len(g_events),
            "opened_ungated": len(u_events),
            "events_missed": miss,
        }
    return {
        "scenarios": list(suite),
        "frame_wh": list(size),
        "frames_sampled": frames,
        "detector_calls_gated": gated_calls,
        "detector_calls_ungated": ungated_calls,
        "reduction": round(ungated_calls / max(gated_calls, 1), 2),
        "events_missed": missed,
        "per_scenario": per,
    }


def bench_config_poll(db_url: str, cameras: int = 1000, zones: int = 5, rounds: int = 20) -> dict[str, Any]:
    """Median ms of one edit poll (``CameraRegistry.versions``) and of reloading one camera."""
    from streams.cameras_db import CameraRegistry
    from urbaneye.db.migrate import upgrade
    from urbaneye.db.models import Camera, Zone
    from urbaneye.db.session import session_factory

    upgrade(db_url)
    sessions = session_factory(db_url)
    polygon = [[0.1, 0.1], [0.5, 0.1], [0.5, 0.5], [0.1, 0.5]]
    with sessions() as session:
        for i in range(cameras):
            row = Camera(
                id=f"bench-{i}", name="", group="default", enabled=True, config={"source": {"url": "0"}}
            )
            row.zones = [
                Zone(zone_id=f"z{j}", config={"id": f"z{j}", "kind": "monitored", "polygon": polygon})
                for j in range(zones)
            ]
            session.add(row)
        session.commit()
    registry = CameraRegistry(sessions)
    out: dict[str, Any] = {"cameras": cameras, "zones_per_camera": zones, "rounds": rounds}
    for watched in (10, 100, cameras):
        ids = [f"bench-{i}" for i in range(watched)]
        registry.versions(zones_of=ids)  # warm the connection pool and the statement cache
        times = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            registry.versions(zones_of=ids)
            times.append((time.perf_counter() - t0) * 1000.0)
        out[f"poll_ms_watching_{watched}"] = round(statistics.median(times), 2)
    times = []
    for i in range(rounds):
        t0 = time.perf_counter()
        registry.load([f"bench-{i}"])
        times.append((time.perf_counter() - t0) * 1000.0)
    out["reload_one_camera_ms"] = round(statistics.median(times), 2)
    return out


def bench_static_objects(quick: bool) -> dict[str, Any]:
    """Cost of ``StaticObjectDetector.update`` per frame at 960x540 on one core (OpenCV single-threaded),
    over a rendered static-object scenario (a pile of boxes left on the pavement, walkers, a cloud)."""
    import cv2

    from vision.static_objects import StaticObjectDetector

    video, _, _ = scenario_clip(STATIC_SCENARIO, (960, 540))
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    times: list[float] = []
    reported = 0
    try:
        det = StaticObjectDetector()
        cap = cv2.VideoCapture(str(video))
        k = 0
        while k < (250 if quick else 10_000):
            ok, frame = cap.read()
            if not ok:
                break
            t0 = time.perf_counter()
            found = det.update(frame, k / 5.0, None)
            times.append((time.perf_counter() - t0) * 1000)
            reported += len(found) > 0
            k += 1
        cap.release()
    finally:
        cv2.setNumThreads(threads)
    if not times:
        raise SystemExit(f"urbaneye bench: cannot read frames of {video}")
    times.sort()
    return {
        "scenario": STATIC_SCENARIO,
        "frame_wh": [960, 540],
        "threads": 1,
        "frames": len(times),
        "frames_with_regions": reported,
        "ms_per_frame": round(statistics.fmean(times), 3),
        "p50_ms": round(times[len(times) // 2], 3),
        "p95_ms": round(times[int(len(times) * 0.95)], 3),
    }
