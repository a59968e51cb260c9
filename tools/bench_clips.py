"""Inputs of ``urbaneye bench``: the model, scenario clips (rendered once, cached under ``var/bench``) and
the camera clips of the pipeline trials (1080p main stream, 640x360 sub-stream)."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from urbaneye.settings import get_settings

PIPELINE_SCENARIO = "passers_by"  # constant motion: near worst case for gating
SCENARIOS_DIR = Path(__file__).resolve().parent.parent / "datasets" / "scenarios"
MAIN_WH = (1920, 1080)
SUBSTREAM_WH = (640, 360)
CAMERA_FPS = 25


def bench_dir() -> Path:
    d = get_settings().data_dir / "bench"
    d.mkdir(parents=True, exist_ok=True)
    return d


def model_path(path: str | None) -> Path:
    found = Path(path or get_settings().model_path)
    if not found.is_file():
        raise SystemExit(
            f"urbaneye bench: model {found} does not exist; pass --model M.onnx (any YOLO detection export) "
            "or ship models/bootstrap/urbaneye-bootstrap.onnx"
        )
    return found


def int8_model_path(model: Path) -> Path | None:
    """The int8 variant next to ``model`` (``M.int8.onnx`` beside ``M.onnx``), if one was made."""
    if model.name.endswith(".int8.onnx"):
        return None
    candidate = model.with_name(model.name.removesuffix(".onnx") + ".int8.onnx")
    return candidate if candidate.is_file() else None


def scenario_clip(
    name: str, size: tuple[int, int], fps: float = 5.0, seed: int = 0
) -> tuple[Path, Path, Path]:
    """``(video, truth, cameras)`` of the scenario ``datasets/scenarios/<name>.yaml`` rendered at ``size``."""
    return scene_render(SCENARIOS_DIR / f"{name}.yaml", size, fps, seed)


def scene_render(
    scene: Path, size: tuple[int, int], fps: float = 5.0, seed: int = 0
) -> tuple[Path, Path, Path]:
    """``(video, truth, cameras)`` of a scenario file rendered at ``size`` (cached under ``var/bench``)."""
    from tools.evaluate_events import render_cached

    return render_cached(scene, seed, bench_dir(), fps, size)


@dataclass(frozen=True)
class ClipSpec:
    """A camera clip cut from a scenario render: ``seconds`` from ``start_s``, scaled to ``wh``, 25 fps."""

    scene: Path
    render_wh: tuple[int, int]
    seconds: float
    start_s: float
    wh: tuple[int, int]


def camera_clip(spec: ClipSpec) -> Path:
    """The clip as H.264 at 25 fps (GOP 50, no B-frames, like an IP camera's main stream or sub-stream)."""
    w, h = spec.wh
    out = bench_dir() / f"{spec.scene.stem}-{w}x{h}p{CAMERA_FPS}-{spec.start_s:g}+{spec.seconds:g}s.mp4"
    if out.is_file():
        return out
    src, _, _ = scene_render(spec.scene, spec.render_wh)
    ffmpeg = shutil.which("ffmpeg")
    if not ffmpeg:
        raise SystemExit(
            "urbaneye bench: ffmpeg is needed to make the camera clips; install it (apt install ffmpeg)"
        )
    tmp = out.with_suffix(".part.mp4")
    subprocess.run(
        [ffmpeg, "-loglevel", "error", "-y", "-ss", f"{spec.start_s:g}", "-t", f"{spec.seconds:g}", "-i", str(src),
         "-vf", f"scale={w}:{h}:flags=bicubic,fps={CAMERA_FPS}", "-c:v", "libx264", "-preset", "veryfast",
         "-crf", "23", "-g", "50", "-bf", "0", "-pix_fmt", "yuv420p", str(tmp)],
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
