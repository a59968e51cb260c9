"""The ``detector`` section of ``urbaneye bench``: our detector against bare ONNX Runtime and ultralytics,
fp32 against int8, and the session layouts (processes x threads, spinning, execution mode).

Contenders run in interleaved rounds of ``ROUND`` calls on the same frame, so whatever else the machine
does (other jobs, the ``--background-load`` processes) is shared by all of them and the ratios stay
meaningful on a busy host.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vision.ort_tuning import SessionTuning

ROUND = 5  # detector calls per contender per interleaved round
#: the ratios a ``loaded`` copy repeats (the figures the targets are about)
RATIO_KEYS = (
    "ours_fps",
    "raw_ort_fps",
    "ours_over_raw",
    "ultralytics_pt_fps",
    "ours_over_ultralytics_pt",
    "ultralytics_onnx_fps",
    "ours_over_ultralytics_onnx",
    "fp32_fps",
    "int8_fps",
    "int8_over_fp32",
)


@dataclass(frozen=True)
class Layout:
    """``processes`` detector processes, each with a session tuned as ``tuning``."""

    processes: int
    tuning: SessionTuning

    def label(self) -> str:
        return f"{self.processes}p-{self.tuning.label()}"


def default_layouts(cores: int) -> list[Layout]:
    """The worker layouts worth comparing on ``cores`` cores (at least the two of issue 17: ``cores``
    processes x 1 thread vs 1 process x ``cores`` threads, spinning on and off, sequential and parallel)."""
    layouts = [Layout(cores, SessionTuning(1))]
    if cores > 1:
        layouts += [
            Layout(1, SessionTuning(cores, allow_spinning=True)),
            Layout(1, SessionTuning(cores, allow_spinning=False)),
            Layout(1, SessionTuning(cores, allow_spinning=False, parallel=True)),
        ]
    return layouts


def _interleaved_fps(contenders: dict[str, Callable[[], Any]], frames: int) -> dict[str, float]:
    spent = dict.fromkeys(contenders, 0.0)
    rounds = max(1, frames // ROUND)
    names = list(contenders)
    for r in range(rounds):
        # Rotate the order and pause between blocks: ONNX Runtime and torch pools may spin-wait for a while
        # after a run, and on 2 cores that would bill one contender for the previous one's idle threads.
        for name in names[r % len(names) :] + names[: r % len(names)]:
            time.sleep(0.05)
            t0 = time.perf_counter()
            for _ in range(ROUND):
                contenders[name]()
            spent[name] += time.perf_counter() - t0
    return {name: round(rounds * ROUND / spent[name], 2) for name in contenders}


def bench_detector(
    model: Path, frame: np.ndarray, frames: int, threads: int, int8_model: Path | None = None
) -> dict[str, Any]:
    """Frames/s of each contender on the same frame, and their ratios (``RATIO_KEYS``)."""
    from vision.config import ModelConfig
    from vision.detector import OnnxDetector

    tuning = SessionTuning(threads)
    detector = OnnxDetector(model, ModelConfig(intra_op_threads=threads), tuning=tuning, adapt=False)
    for _ in range(3):
        detector.detect(frame)
    feed = {detector.input_name: detector.input_tensor(frame)}  # the prepared tensor of this frame
    contenders: dict[str, Callable[[], Any]] = {
        "ours": lambda: detector.detect(frame),
        "raw_ort": lambda: detector.session.run(None, feed),
    }
    if int8_model is not None:
        int8 = OnnxDetector(int8_model, ModelConfig(intra_op_threads=threads), tuning=tuning, adapt=False)
        for _ in range(3):
            int8.detect(frame)
        contenders["int8"] = lambda: int8.detect(frame)
    note = ""
    try:
        contenders.update(_ultralytics_contenders(model, frame, threads, detector.imgsz))
        if "ultralytics_pt" not in contenders:
            note = f"no {model.with_suffix('.pt').name} next to the model: ultralytics_pt_fps not measured"
    except ImportError as exc:
        note = f"ultralytics not installed ({exc.name}); install the train extra"
    detector.times.reset()
    fps = _interleaved_fps(contenders, frames)
    result: dict[str, Any] = {
        "model": model.name,
        "model_version": detector.version,
        "imgsz": list(detector.imgsz),
        "frame_wh": [int(frame.shape[1]), int(frame.shape[0])],
        "threads": threads,
        "session": tuning.label(),
        "frames": max(1, frames // ROUND) * ROUND,
        "ours_fps": fps["ours"],
        "raw_ort_fps": fps["raw_ort"],
        "ours_over_raw": round(fps["ours"] / fps["raw_ort"], 3),
        "ours_stage_ms": detector.times.summary_ms(),
        "ultralytics_onnx_fps": fps.get("ultralytics_onnx"),
        "ultralytics_pt_fps": fps.get("ultralytics_pt"),
        "ultralytics_note": note,
        "fp32_fps": fps["ours"],
        "int8_model": int8_model.name if int8_model else None,
        "int8_fps": fps.get("int8"),
        "int8_over_fp32": round(fps["int8"] / fps["ours"], 3) if "int8" in fps else None,
    }
    for other in ("ultralytics_onnx", "ultralytics_pt"):
        result[f"ours_over_{other}"] = round(fps["ours"] / fps[other], 3) if fps.get(other) else None
    return result


def ratios(result: dict[str, Any]) -> dict[str, Any]:
    """The ``RATIO_KEYS`` of a ``bench_detector`` result (what a ``loaded`` copy holds)."""
    return {key: result.get(key) for key in RATIO_KEYS}


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


# ------------------------------------------------------------------------------------------ layouts
def _layout_process(
    model: str, frame: np.ndarray, frames: int, tuning: SessionTuning, start: Any, queue: Any
) -> None:
    from vision.detector import OnnxDetector

    detector = OnnxDetector(model, tuning=tuning, adapt=False)
    for _ in range(3):
        detector.detect(frame)
    start.wait()
    t0 = time.perf_counter()
    for _ in range(frames):
        detector.detect(frame)
    queue.put((t0, time.perf_counter()))


def layout_fps(model: Path, frame: np.ndarray, frames: int, layout: Layout) -> float:
    """Aggregate detections/s of ``layout.processes`` processes detecting ``frames`` frames each."""
    ctx = mp.get_context("spawn")
    queue, start = ctx.Queue(), ctx.Event()
    procs = [
        ctx.Process(target=_layout_process, args=(str(model), frame, frames, layout.tuning, start, queue))
        for _ in range(layout.processes)
    ]
    for p in procs:
        p.start()
    try:
        time.sleep(1.0)
        start.set()
        spans = [queue.get(timeout=600) for _ in procs]
    finally:
        for p in procs:
            p.join(60)
            if p.is_alive():
                p.kill()
    return layout.processes * frames / (max(e for _, e in spans) - min(s for s, _ in spans))


def bench_layouts(model: Path, frame: np.ndarray, frames: int, layouts: list[Layout]) -> dict[str, float]:
    """Detections/s of each layout, by label (e.g. ``{"2p-1t-nospin-seq": 61.7, ...}``)."""
    return {layout.label(): round(layout_fps(model, frame, frames, layout), 2) for layout in layouts}


def layout_summary(fps: dict[str, float], cores: int) -> dict[str, Any]:
    """The issue's comparison (``cores`` processes x 1 thread vs 1 process x ``cores`` threads) and the best."""
    procs = fps.get(f"{cores}p-1t-nospin-seq")
    threads = max((v for k, v in fps.items() if k.startswith(f"1p-{cores}t-")), default=None)
    return {
        "fps": fps,
        "best": max(fps, key=fps.__getitem__),
        "processes_over_threads": round(procs / threads, 3) if procs and threads else None,
    }
