"""Measure an int8 model against its fp32 parent: accuracy on a held-out set, speed at one thread, the gate.

``compare_precisions`` runs both through ``models.evaluate.evaluate_model`` (our detector, our scoring),
times ``session.run`` of both on the same production input tensors (``inference_ms``), notes the machine's
load around it, and asks ``models.gate.decide_int8``. ``models.quantize`` re-exports these names.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from models.data_yaml import describe_dataset
from models.evaluate import _images_of, evaluate_model
from models.gate import GateDecision, decide_int8
from vision.config import ModelConfig
from vision.detector import OnnxDetector


def inference_ms(
    paths: Sequence[str | Path], frames: Sequence[np.ndarray], *, threads: int = 1, rounds: int = 5
) -> list[float]:
    """Milliseconds of one ``session.run`` of each model in ``paths`` at ``threads`` CPU threads, on the
    production input tensors of ``frames``. The models take turns frame by frame, so a change of machine
    load hits all of them alike; each figure is the lowest of ``rounds`` per-round medians (the least
    disturbed round). For reports, never for logic.

    Example:
        >>> fp32_ms, int8_ms = inference_ms(["m.onnx", "m.int8.onnx"], frames)  # doctest: +SKIP
    """
    config = ModelConfig(intra_op_threads=threads)
    dets = [OnnxDetector(p, config, providers=["CPUExecutionProvider"]) for p in paths]
    feeds = [[{d.input_name: d.input_tensor(f)} for f in frames] for d in dets]
    best = [float("inf")] * len(dets)
    for _ in range(rounds):
        times: list[list[float]] = [[] for _ in dets]
        for i in range(len(frames)):
            for k, det in enumerate(dets):
                t0 = time.perf_counter()
                det.session.run(None, feeds[k][i])
                times[k].append((time.perf_counter() - t0) * 1000.0)
        best = [min(b, statistics.median(t)) for b, t in zip(best, times, strict=True)]
    return best


def loadavg() -> str:
    """``/proc/loadavg`` as read now (the machine's load while measuring), or "" where there is none."""
    try:
        return Path("/proc/loadavg").read_text().strip()
    except OSError:
        return ""


@dataclass(frozen=True)
class PrecisionComparison:
    """An int8 model against its fp32 parent on one held-out set, and the int8 gate's decision."""

    fp32: dict[str, Any]  # evaluate_model report
    int8: dict[str, Any]
    fp32_ms: float
    int8_ms: float
    threads: int
    gate: GateDecision
    loadavg_before: str
    loadavg_after: str
    data_yaml: str = ""
    split: str = ""
    dataset: dict[str, Any] = field(default_factory=dict)  # models.data_yaml.describe_dataset, less names

    @property
    def int8_over_fp32(self) -> float:
        return self.fp32_ms / self.int8_ms if self.int8_ms > 0 else 0.0

    @property
    def map50_delta(self) -> float:
        return float(self.int8["map50"]) - float(self.fp32["map50"])

    def per_class_delta(self) -> dict[str, float | None]:
        out: dict[str, float | None] = {}
        for name, row in self.fp32["per_class"].items():
            a, b = row.get("ap50"), (self.int8["per_class"].get(name) or {}).get("ap50")
            out[name] = None if a is None or b is None else round(float(b) - float(a), 5)
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "fp32_map50": self.fp32["map50"],
            "int8_map50": self.int8["map50"],
            "map50_delta": round(self.map50_delta, 5),
            "per_class_ap50_delta": self.per_class_delta(),
            "fp32_ms": round(self.fp32_ms, 2),
            "int8_ms": round(self.int8_ms, 2),
            "int8_over_fp32": round(self.int8_over_fp32, 3),
            "threads": self.threads,
            "images": self.fp32["images"],
            "data_yaml": self.data_yaml,
            "split": self.split,
            "dataset": self.dataset,
            "gate": self.gate.to_json(),
            "loadavg_before": self.loadavg_before,
            "loadavg_after": self.loadavg_after,
        }


def compare_precisions(
    fp32_path: str | Path,
    int8_path: str | Path,
    data_yaml: str | Path,
    split: str = "all",
    *,
    threads: int = 1,
    speed_frames: int = 20,
) -> PrecisionComparison:
    """Measure ``int8_path`` against ``fp32_path`` on ``split`` of ``data_yaml``: mAP50 and per-class AP50
    through ``models.evaluate.evaluate_model``, ms per inference at ``threads`` on ``speed_frames`` of its
    images (``inference_ms``: fp32 and int8 take turns frame by frame), and the int8 gate."""
    before = loadavg()
    fp32_report = evaluate_model(fp32_path, data_yaml, split, intra_op_threads=threads)
    int8_report = evaluate_model(int8_path, data_yaml, split, intra_op_threads=threads)
    images = _images_of(Path(data_yaml), split)[:speed_frames]
    frames = [f for f in (cv2.imread(str(p), cv2.IMREAD_COLOR) for p in images) if f is not None]
    fp32_ms, int8_ms = inference_ms([fp32_path, int8_path], frames, threads=threads)
    return PrecisionComparison(
        fp32=fp32_report,
        int8=int8_report,
        fp32_ms=fp32_ms,
        int8_ms=int8_ms,
        threads=threads,
        gate=decide_int8(int8=int8_report, fp32=fp32_report),
        loadavg_before=before,
        loadavg_after=loadavg(),
        data_yaml=str(Path(data_yaml).resolve()),
        split=split,
        dataset={k: v for k, v in describe_dataset(data_yaml).items() if k != "names"},
    )
