"""The ``pipeline`` section of ``urbaneye bench``: how many cameras one machine keeps in real time.

A trial runs N looping copies of a 25-fps camera clip at ``DETECT_FPS`` in the documented worker layout
(``processes`` worker processes, 1-thread sessions) and says whether every camera kept up. The ceiling is
found by ``search_ceiling``: grow from a first guess until a trial falls behind, then bisect between the
last count that kept up and the first that did not; no fixed cap, bounded by a number of trials and a time
budget (the result says when a bound stopped it).
"""

from __future__ import annotations

import math
import multiprocessing as mp
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tools.bench_clips import bench_dir

DETECT_FPS = 5.0
KEEP_UP_FRACTION = 0.9  # a camera keeps up when it processes >= 90 % of its detect fps …
MAX_DROP_FRACTION = 0.05  # … and drops <= 5 % of its sampled frames
READY_TIMEOUT_S = 60.0  # a trial's cameras must all be processing by then, or the trial counts them behind


@dataclass
class CeilingSearch:
    """What ``search_ceiling`` found.

    Attributes:
        ceiling: the largest count that kept up (0 when even the smallest tried fell behind).
        first_behind: the smallest count that fell behind, None if none did.
        trials: every trial's result, in the order run.
        bounded: the trial or time budget ended the search before ``first_behind - ceiling`` was within
            tolerance (the ceiling is then a lower bound).
    """

    ceiling: int = 0
    first_behind: int | None = None
    trials: list[dict[str, Any]] = field(default_factory=list)
    bounded: bool = False


def search_ceiling(
    trial: Callable[[int], dict[str, Any]],
    *,
    start: int = 2,
    grow: float = 2.0,
    tolerance: float = 0.1,
    max_trials: int = 10,
    min_trials: int = 1,
    time_left_s: Callable[[], float] = lambda: math.inf,
) -> CeilingSearch:
    """Largest ``n`` with ``trial(n)["keeps_up"]``, assuming more cameras never keep up better.

    ``start`` is the first guess; counts grow by ``grow`` (at least +1) until a trial falls behind, then
    bisection closes the bracket to ``max(1, tolerance x ceiling)`` cameras. ``time_left_s`` is asked before
    each trial after the first ``min_trials``; at <= 0, or after ``max_trials``, the search stops with
    ``bounded=True``.

    Example:
        >>> found = search_ceiling(lambda n: {"cameras": n, "keeps_up": n <= 13}, start=4)
        >>> found.ceiling, found.first_behind, [t["cameras"] for t in found.trials]
        (13, 14, [4, 8, 16, 12, 14, 13])
    """
    if start < 1 or grow <= 1.0:
        raise ValueError(f"search_ceiling needs start >= 1 and grow > 1; got start={start}, grow={grow}")
    found = CeilingSearch()

    def run(n: int) -> bool | None:
        out_of_time = len(found.trials) >= min_trials and time_left_s() <= 0
        if len(found.trials) >= max_trials or out_of_time:
            found.bounded = True
            return None
        result = trial(n)
        found.trials.append(result)
        if result["keeps_up"]:
            found.ceiling = max(found.ceiling, n)
        else:
            found.first_behind = n if found.first_behind is None else min(found.first_behind, n)
        return bool(result["keeps_up"])

    n = start
    while found.first_behind is None:
        if run(n) is None:
            return found
        n = max(n + 1, math.ceil(n * grow))
    while found.first_behind - found.ceiling > max(1, int(tolerance * found.ceiling)):
        if run((found.ceiling + found.first_behind) // 2) is None:
            return found
    return found


# ------------------------------------------------------------------------------------------ trials
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
        # Model load and the first decodes take seconds on a busy machine: the warm-up counts from the
        # moment every camera has processed a frame, not from the start.
        ready_by = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < ready_by and not _all_running(board.snapshots(), camera_ids):
            time.sleep(0.2)
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


def _all_running(snapshots: list[Any], camera_ids: list[str]) -> bool:
    processed = {s.camera_id: s.frames_processed for s in snapshots}
    return all(processed.get(cid, 0) > 0 for cid in camera_ids)


def trial_verdict(rows: list[dict[str, Any]], cameras: int) -> dict[str, Any]:
    """Whether every camera kept up, from the per-camera rows of a trial's processes."""
    fps = [r["processed_fps"] for r in rows] or [0.0]
    sampled = sum(r["sampled"] for r in rows)
    dropped = sum(r["dropped"] for r in rows)
    complete = len(rows) == cameras
    keeps_up = (
        complete
        and min(fps) >= KEEP_UP_FRACTION * DETECT_FPS
        and dropped <= MAX_DROP_FRACTION * max(sampled, 1)
    )
    return {
        "cameras": cameras,
        "keeps_up": keeps_up,
        "detect_fps_min": round(min(fps), 2),
        "detect_fps_mean": round(statistics.fmean(fps), 2),
        "dropped_frames": dropped,
        "sampled_frames": sampled,
        "detector_calls": sum(r["detected"] for r in rows),
    }


def precision_of(model: Path) -> str:
    """``int8`` for an ``M.int8.onnx`` file, else ``fp32``."""
    return "int8" if model.name.endswith(".int8.onnx") else "fp32"


def pipeline_trial(
    clip: Path, cameras: int, processes: int, model: Path, warmup_s: float, measure_s: float
) -> dict[str, Any]:
    """Run ``cameras`` looping copies of ``clip`` split over ``processes`` processes; measure rates."""
    import yaml

    doc = {
        "version": 1,
        # the precision named, so that ``auto`` does not swap an fp32 trial's model for its int8 sibling
        "model": {"path": str(model), "intra_op_threads": 1, "precision": precision_of(model)},
        "cameras": [
            {"id": f"bench-{i:03d}", "source": {"url": str(clip), "loop": True}, "detect_fps": DETECT_FPS}
            for i in range(cameras)
        ],
    }
    path = bench_dir() / f"bench-cameras-{cameras}.yaml"
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
    try:
        for _ in procs:
            rows += queue.get(timeout=READY_TIMEOUT_S + warmup_s + measure_s + 120)
    finally:
        for p in procs:
            p.join(60)
            if p.is_alive():
                p.kill()
    return trial_verdict(rows, cameras)


def bench_ceiling(
    clip: Path,
    model: Path,
    processes: int,
    *,
    guess: int,
    windows_s: tuple[float, float],
    budget_s: float,
    max_trials: int,
) -> dict[str, Any]:
    """``search_ceiling`` over ``pipeline_trial``s of ``clip``, starting at ``guess`` cameras."""
    warmup_s, measure_s = windows_s
    deadline = time.monotonic() + budget_s
    t0 = time.monotonic()
    found = search_ceiling(
        lambda n: pipeline_trial(clip, n, processes, model, warmup_s, measure_s),
        start=max(1, guess),
        grow=1.5 if guess > 4 else 2.0,
        max_trials=max_trials,
        min_trials=min(2, max_trials),  # a first guess that fails is followed by one smaller trial
        time_left_s=lambda: deadline - time.monotonic(),
    )
    best = max((t for t in found.trials if t["keeps_up"]), key=lambda t: t["cameras"], default=None)
    return {
        "clip": clip.name,
        "model": model.name,
        "cameras_realtime": found.ceiling,
        "first_behind": found.first_behind,
        "bounded": found.bounded,
        "detect_fps_achieved": best["detect_fps_min"] if best else None,
        "dropped_frames": best["dropped_frames"] if best else None,
        "sampled_frames": best["sampled_frames"] if best else None,
        "trials": found.trials,
        "search_s": round(time.monotonic() - t0, 1),
    }
