"""Synthetic street scenes: training images for the bootstrap detector and scenario videos.

Public entry points:
    generate_images(out_dir, count, seed, ...) -> Path of data.yaml (YOLO layout)
    render_scenario(scenario_path, out_mp4, seed, ...) -> ScenarioResult (video, truth, cameras)
"""

from __future__ import annotations

from pathlib import Path

from datasets.synth.objects import CLASS_NAMES

__all__ = ["CLASS_NAMES", "generate_images"]


def generate_images(
    out_dir: Path | str,
    count: int,
    seed: int,
    val_fraction: float = 0.1,
    size: tuple[int, int] = (960, 540),
    workers: int = 1,
    progress: bool = False,
    style: str | None = None,
) -> Path:
    """Write a YOLO dataset of ``count`` images from ``seed``; returns the data.yaml path.

    ``style`` fixes the time of day ("day", "dusk" or "night") or asks for "ir", a CCTV camera in infrared
    night mode (greyscale, lit by its own illuminator); None mixes day, dusk and night.
    """
    from datasets.synth.images import write_dataset

    return write_dataset(Path(out_dir), count, seed, val_fraction, size, workers, progress, style)
