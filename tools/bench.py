"""``urbaneye bench``: one JSON object measured in one run on the same frames and model.

- ``detector``: our detector (pre + inference + post) vs bare ``session.run`` on a prepared tensor vs
  ultralytics' own predict on the same model as .onnx and .pt (ultralytics is a train extra: imported
  only here; null when absent or when no .pt sits next to the .onnx).
- ``pipeline``: how many 1080p 25-fps file cameras one machine keeps up with at 5 detect-fps, in the
  documented layout (``processes`` worker processes with 1-thread sessions), with the detect fps achieved
  and the frames dropped at that load.
- ``motion_gating``: detector calls over a scenario suite with and without gating, and the events the
  gated run missed compared with the ungated one.
- ``config_poll`` (not in the default set): what a worker's poll for camera/zone edits costs
  (``CameraRegistry.versions``) with 1000 cameras x 5 zones in the tables, watching 10, 100 and 1000 of
  them, and reloading one camera. A temporary SQLite database, or the *empty scratch* database named by
  ``URBANEYE_BENCH_DATABASE_URL`` (migrated and filled by the benchmark).

Clips come from the scenario renderer (cached under ``var/bench``); the 1080p clip is the busiest
scenario scaled to 1920x1080 and re-timed to 25 fps with ffmpeg (H.264, GOP 50, no B-frames, like an IP
camera), so motion gating rarely spares the detector there.
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import os
import shutil
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np

from urbaneye.settings import get_settings

log = logging.getLogger(__name__)

PIPELINE_SCENARIO = "passers_by"  # constant motion: near worst case for gating
STATIC_SCENARIO = "static_cardboard_day"  # static-object detector: a pile of boxes left, walkers, a cloud
GATING_SUITE = (
    "garbage_dropped",
    "bike_in_bay",
    "bikes_blind_path",
    "bins_with_lids",
    "night_barbecue",
    "vendor_sidewalk",
)
SCENARIOS_DIR = Path(__file__).resolve().parent.parent / "datasets" / "scenarios"
DETECT_FPS = 5.0
KEEP_UP_FRACTION = 0.9  # a camera keeps up when it processes >= 90 % of its detect fps …
MAX_DROP_FRACTION = 0.05  # … and drops <= 5 % of its sampled frames
ROUND = 5  # detector calls per contender per interleaved round


def _bench_dir() -> Path:
    d = get_settings().data_dir / "bench"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _model_path(model_path: str | None) -> Path:
    path = Path(model_path or get_settings().model_path)
    if not path.is_file():
        raise SystemExit(
            f"urbaneye bench: model {path} does not exist; pass --model M.onnx (any YOLO detection export) or "
            "ship models/bootstrap/urbaneye-bootstrap.onnx"
        )
    return path


# ------------------------------------------------------------------------------------------ clips
def scenario_clip(
    name: str, size: tuple[int, int], fps: float = 5.0, seed: int = 0
) -> tuple[Path, Path, Path]:
    from tools.evaluate_events import render_cached

    return render_cached(SCENARIOS_DIR / f"{name}.yaml", seed, _bench_dir(), fps, size)


def camera_clip_1080p(seconds: float) -> Path:
    """The busy scenario as a 1920x1080, 25 fps H.264 clip of ``seconds``."""
    out = _bench_dir() / f"{PIPELINE_SCENARIO}-1080p25-{int(seconds)}s.mp4"
    if out.is_file():
        return out
    src, _, _ = scenario_clip(PIPELINE_SCENARIO, (960, 540))
    ffmpeg = shutil.which("ffmpeg")
    if not ffmpeg:
        raise SystemExit(
            "urbaneye bench: ffmpeg is needed to make the 1080p clip; install it (apt install ffmpeg)"
        )
    tmp = out.with_suffix(".part.mp4")
    subprocess.run(
        [ffmpeg, "-loglevel", "error", "-y", "-ss", "20", "-t", str(seconds), "-i", str(src), "-vf",
         "scale=1920:1080:flags=bicubic,fps=25", "-c:v", "libx264", "-preset", "veryfast", "-crf", "23",
         "-g", "50", "-bf", "0", "-pix_fmt", "yuv420p", str(tmp)],
        check=True,
    )  # fmt: skip
    tmp.replace(out)
    return out


def first_frame(path: Path) -> np.ndarray:
    import cv2

    cap = cv2.VideoCapture(str(path))
    ok, frame = cap.read()
    cap.release()
    if not ok:
        raise SystemExit(f"urbaneye bench: cannot read a frame of {path}")
    return frame


# ------------------------------------------------------------------------------------- detector
def bench_detector(model: Path, frame: np.ndarray, frames: int, threads: int) -> dict[str, Any]:
    """Frames/s of each contender on the same frame, measured in interleaved rounds.

    Round-robin blocks of ``ROUND`` calls (ours, bare session.run, ultralytics .onnx, ultralytics .pt)
    share whatever else the machine is doing, so the ratios stay meaningful on a busy host.
    """
    from vision.config import ModelConfig
    from vision.detector import OnnxDetector

    detector = OnnxDetector(model, ModelConfig(intra_op_threads=threads))
    for _ in range(3):
        detector.detect(frame)
    feed = {detector.input_name: detector.input_tensor(frame)}  # the prepared tensor of this frame
    contenders: dict[str, Any] = {
        "ours": lambda: detector.detect(frame),
        "raw_ort": lambda: detector.session.run(None, feed),
    }
    note = ""
    try:
        contenders.update(_ultralytics_contenders(model, frame, threads, detector.imgsz))
        if "ultralytics_pt" not in contenders:
            note = f"no {model.with_suffix('.pt').name} next to the model: ultralytics_pt_fps not measured"
    except ImportError as exc:
        note = f"ultralytics not installed ({exc.name}); install the train extra"
    spent = dict.fromkeys(contenders, 0.0)
    detector.times.reset()
    rounds = max(1, frames // ROUND)
    names = list(contenders)
    for r in range(rounds):
        # Rotate the order and pause between blocks: ONNX Runtime and torch pools spin-wait for a while
        # after a run, and on 2 cores that would bill one contender for the previous one's idle threads.
        for name in names[r % len(names) :] + names[: r % len(names)]:
            time.sleep(0.05)
            t0 = time.perf_counter()
            for _ in range(ROUND):
                contenders[name]()
            spent[name] += time.perf_counter() - t0
    fps = {name: round(rounds * ROUND / spent[name], 2) for name in contenders}
    result: dict[str, Any] = {
        "model": model.name,
        "model_version": detector.version,
        "imgsz": list(detector.imgsz),
        "frame_wh": [int(frame.shape[1]), int(frame.shape[0])],
        "threads": threads,
        "frames": rounds * ROUND,
        "ours_fps": fps["ours"],
        "raw_ort_fps": fps["raw_ort"],
        "ours_over_raw": round(fps["ours"] / fps["raw_ort"], 3),
        "ours_stage_ms": detector.times.summary_ms(),
        "ultralytics_onnx_fps": fps.get("ultralytics_onnx"),
        "ultralytics_pt_fps": fps.get("ultralytics_pt"),
        "ultralytics_note": note,
    }
    for other in ("ultralytics_onnx", "ultralytics_pt"):
        if fps.get(other):
            result[f"ours_over_{other}"] = round(fps["ours"] / fps[other], 3)
    if threads > 1:
        result["layout"] = bench_layout(model, frame, frames, threads)
    return result


def _ultralytics_contenders(model: Path, frame: np.ndarray, threads: int, imgsz: tuple[int, int]) -> dict:
    os.environ.setdefault("YOLO_OFFLINE", "1")
    import torch
    from ultralytics import YOLO

    torch.set_num_threads(threads)
    kwargs = {"imgsz": list(imgsz), "verbose": False, "device": "cpu"}
    out = {}
    paths = {"ultralytics_onnx": model, "ultralytics_pt": model.with_suffix(".pt")}
    for name, path in paths.items():
        if not path.is_file():
            continue
        yolo = YOLO(str(path), task="detect")
        for _ in range(3):
            yolo.predict(frame, **kwargs)
        out[name] = lambda y=yolo: y.predict(frame, **kwargs)
    return out


def _layout_process(model: str, frame: np.ndarray, frames: int, threads: int, start: Any, queue: Any) -> None:
    from vision.config import ModelConfig
    from vision.detector import OnnxDetector

    detector = OnnxDetector(model, ModelConfig(intra_op_threads=threads))
    for _ in range(3):
        detector.detect(frame)
    start.wait()
    t0 = time.perf_counter()
    for _ in range(frames):
        detector.detect(frame)
    queue.put((t0, time.perf_counter()))


def bench_layout(model: Path, frame: np.ndarray, frames: int, cores: int) -> dict[str, Any]:
    """Aggregate detections/s: one process with a ``cores``-thread session vs ``cores`` 1-thread processes."""
    ctx = mp.get_context("spawn")

    def run(processes: int, threads: int) -> float:
        queue, start = ctx.Queue(), ctx.Event()
        procs = [
            ctx.Process(target=_layout_process, args=(str(model), frame, frames, threads, start, queue))
            for _ in range(processes)
        ]
        for p in procs:
            p.start()
        time.sleep(1.0)
        start.set()
        spans = [queue.get(timeout=600) for _ in procs]
        for p in procs:
            p.join(60)
        return processes * frames / (max(e for _, e in spans) - min(s for s, _ in spans))

    one = run(1, cores)
    many = run(cores, 1)
    return {
        f"one_process_{cores}_threads_fps": round(one, 2),
        f"{cores}_processes_1_thread_fps": round(many, 2),
        "processes_over_threads": round(many / one, 3),
    }


# ------------------------------------------------------------------------------------- pipeline
def _trial_process(
    cameras_path: str, camera_ids: list[str], model: str, warmup_s: float, measure_s: float, queue: Any
) -> None:
    """One worker process of a pipeline trial: run the cameras, report counters after the window."""
    from streams.status import StatusBoard
    from streams.worker import DetectorPool, StreamWorker
    from vision.config import load_cameras

    cameras_file = load_cameras(cameras_path)
    board = StatusBoard()
    worker = StreamWorker(
        cameras_file, DetectorPool(cameras_file, model_path=model), None, camera_ids=camera_ids, board=board
    ).start()
    try:
        time.sleep(warmup_s)
        before = {s.camera_id: s for s in board.snapshots()}
        t0 = time.monotonic()
        time.sleep(measure_s)
        after = {s.camera_id: s for s in board.snapshots()}
        span = time.monotonic() - t0
    finally:
        worker.stop(timeout_s=10)
    out = []
    for cid in camera_ids:
        a, b = before.get(cid), after.get(cid)
        if a is None or b is None:
            out.append({"camera_id": cid, "processed_fps": 0.0, "dropped": 0, "sampled": 0, "detected": 0})
            continue
        processed = b.frames_processed - a.frames_processed
        dropped = b.dropped_frames - a.dropped_frames
        out.append(
            {
                "camera_id": cid,
                "processed_fps": processed / span,
                "dropped": dropped,
                "sampled": processed + dropped,
                "detected": b.frames_detected - a.frames_detected,
            }
        )
    queue.put(out)


def pipeline_trial(
    clip: Path, cameras: int, processes: int, model: Path, warmup_s: float, measure_s: float
) -> dict:
    """Run ``cameras`` looping copies of ``clip`` split over ``processes`` processes; measure rates."""
    import yaml

    doc = {
        "version": 1,
        "model": {"path": str(model), "intra_op_threads": 1},
        "cameras": [
            {"id": f"bench-{i:02d}", "source": {"url": str(clip), "loop": True}, "detect_fps": DETECT_FPS}
            for i in range(cameras)
        ],
    }
    path = _bench_dir() / f"bench-cameras-{cameras}.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    ids = [c["id"] for c in doc["cameras"]]
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [
        ctx.Process(
            target=_trial_process, args=(str(path), ids[j::processes], str(model), warmup_s, measure_s, queue)
        )
        for j in range(processes)
        if ids[j::processes]
    ]
    for p in procs:
        p.start()
    rows: list[dict] = []
    for _ in procs:
        rows += queue.get(timeout=warmup_s + measure_s + 120)
    for p in procs:
        p.join(60)
    fps = [r["processed_fps"] for r in rows]
    sampled = sum(r["sampled"] for r in rows)
    dropped = sum(r["dropped"] for r in rows)
    keeps_up = min(fps) >= KEEP_UP_FRACTION * DETECT_FPS and dropped <= MAX_DROP_FRACTION * max(sampled, 1)
    return {
        "cameras": cameras,
        "keeps_up": keeps_up,
        "detect_fps_min": round(min(fps), 2),
        "detect_fps_mean": round(statistics.fmean(fps), 2),
        "dropped_frames": dropped,
        "sampled_frames": sampled,
        "detector_calls": sum(r["detected"] for r in rows),
    }


def bench_pipeline(model: Path, processes: int, quick: bool) -> dict[str, Any]:
    clip = camera_clip_1080p(20)
    warmup_s, measure_s = (4.0, 8.0) if quick else (8.0, 20.0)
    trials = []
    best: dict | None = None
    counts = [2, 4, 6, 8, 10, 12, 14, 16] if not quick else [2, 4]
    for n in counts:
        trial = pipeline_trial(clip, n, processes, model, warmup_s, measure_s)
        log.info("pipeline trial: %s", trial)
        trials.append(trial)
        if not trial["keeps_up"]:
            break
        best = trial
    last = best or trials[0]
    return {
        "clip": clip.name,
        "frame_wh": [1920, 1080],
        "input_fps": 25,
        "detect_fps_target": DETECT_FPS,
        "processes": processes,
        "cpu_count": os.cpu_count(),
        "motion_gating": True,
        "cameras_realtime": best["cameras"] if best else 0,
        "detect_fps_achieved": last["detect_fps_min"],
        "dropped_frames": last["dropped_frames"],
        "trials": trials,
    }


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


def run_bench(model_path: str | None = None, quick: bool = False, sections: list[str] | None = None) -> dict:
    sections = sections or ["detector", "pipeline", "motion_gating"]
    model = _model_path(model_path) if {"detector", "pipeline", "motion_gating"} & set(sections) else None
    # Load average: the numbers below only mean something on a machine that is otherwise idle.
    result: dict[str, Any] = {"cpu_count": os.cpu_count(), "quick": quick, "load_avg_before": os.getloadavg()}
    t0 = time.perf_counter()
    if "detector" in sections:
        frame = first_frame(camera_clip_1080p(20))
        threads = min(os.cpu_count() or 1, 2)
        result["detector"] = bench_detector(model, frame, frames=20 if quick else 100, threads=threads)
    if "pipeline" in sections:
        processes = min(os.cpu_count() or 1, 2)
        result["pipeline"] = bench_pipeline(model, processes, quick)
    if "motion_gating" in sections:
        result["motion_gating"] = bench_motion_gating(model, quick)
    if "static_objects" in sections:
        result["static_objects"] = bench_static_objects(quick)
    if "config_poll" in sections:
        import tempfile

        url = os.environ.get("URBANEYE_BENCH_DATABASE_URL", "")
        with tempfile.TemporaryDirectory() as tmp:
            db_url = url or f"sqlite:///{Path(tmp) / 'bench.db'}"
            result["config_poll"] = {"database": db_url.split(":", 1)[0], **bench_config_poll(db_url)}
    result["wall_s"] = round(time.perf_counter() - t0, 1)
    result["load_avg_after"] = os.getloadavg()
    return result
