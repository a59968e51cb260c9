"""Write a YOLO-layout training set of synthetic street images.

Layout (what ultralytics expects)::

    DIR/data.yaml                 path, train, val, names
    DIR/images/{train,val}/*.jpg
    DIR/labels/{train,val}/*.txt  "class cx cy w h", normalised
    DIR/manifest.json             seed, count, size, instances per class

Image ``i`` depends on ``(seed, i)`` only, so ``workers`` never changes the bytes written.
"""

from __future__ import annotations

import json
import multiprocessing as mp
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from datasets.synth.objects import CLASS_NAMES
from datasets.synth.scene import VIEW_GROUP, render_image

#: Bumped whenever the pictures or the label rules change (recorded in manifest.json).
GENERATOR_VERSION = "1"
#: Styles a dataset can be fixed to: a time of day, or ``ir`` (a CCTV camera in infrared night mode,
#: greyscale). Unset mixes day, dusk and night; ``ir`` is only ever rendered when asked for.
STYLES = ("day", "dusk", "night", "ir")
_CHUNK = VIEW_GROUP * 4  # contiguous, view-aligned chunks so each worker reuses its street view


def is_val(seed: int, index: int, val_fraction: float) -> bool:
    """Validation split by street view, so train and val never share a background."""
    if val_fraction <= 0:
        return False
    return bool(np.random.default_rng([seed, index // VIEW_GROUP, 3]).random() < val_fraction)


def jpeg_quality(seed: int, index: int) -> int:
    """Per-image JPEG quality: compression artefacts are part of the augmentation."""
    return int(np.random.default_rng([seed, index, 4]).integers(45, 96))


def yolo_lines(labels: list[tuple[int, tuple[int, int, int, int]]], width_px: int, height_px: int) -> str:
    lines = []
    for cls, (x0, y0, x1, y1) in labels:
        cx, cy = (x0 + x1) / 2 / width_px, (y0 + y1) / 2 / height_px
        w, h = (x1 - x0) / width_px, (y1 - y0) / height_px
        lines.append(f"{cls} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}")
    return "\n".join(lines) + ("\n" if lines else "")


def image_name(seed: int, index: int) -> str:
    return f"s{seed}_{index:07d}"


def render_one(
    seed: int, index: int, width_px: int, height_px: int, style: str | None = None
) -> tuple[bytes, str, list[int]]:
    """(jpeg bytes, label text, class ids) of one image."""
    frame = render_image(seed, index, width_px, height_px, style)
    ok, jpg = cv2.imencode(".jpg", frame.image, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality(seed, index)])
    if not ok:
        raise RuntimeError(f"JPEG encoding failed for image {index} of seed {seed}")
    labels = frame.labels()
    return jpg.tobytes(), yolo_lines(labels, width_px, height_px), [c for c, _ in labels]


def _chunk_job(job: tuple[Path, int, int, int, int, int, float, str | None]) -> tuple[int, list[int]]:
    out_dir, seed, start, stop, width_px, height_px, val_fraction, style = job
    classes: list[int] = []
    for i in range(start, stop):
        jpg, text, cls = render_one(seed, i, width_px, height_px, style)
        split = "val" if is_val(seed, i, val_fraction) else "train"
        name = image_name(seed, i)
        (out_dir / "images" / split / f"{name}.jpg").write_bytes(jpg)
        (out_dir / "labels" / split / f"{name}.txt").write_text(text, encoding="utf-8")
        classes.extend(cls)
    return stop - start, classes


def _init_worker() -> None:
    cv2.setNumThreads(1)


def _jobs(
    out_dir: Path, count: int, seed: int, size: tuple[int, int], val_fraction: float, style: str | None
) -> Iterator[tuple]:
    for start in range(0, count, _CHUNK):
        yield (out_dir, seed, start, min(count, start + _CHUNK), size[0], size[1], val_fraction, style)


def write_data_yaml(out_dir: Path) -> Path:
    import yaml

    data = {
        "path": str(out_dir.resolve()),
        "train": "images/train",
        "val": "images/val",
        "nc": len(CLASS_NAMES),
        "names": {i: n for i, n in enumerate(CLASS_NAMES)},
    }
    path = out_dir / "data.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def write_dataset(
    out_dir: Path,
    count: int,
    seed: int,
    val_fraction: float = 0.1,
    size: tuple[int, int] = (960, 540),
    workers: int = 1,
    progress: bool = True,
    style: str | None = None,
) -> Path:
    """Render ``count`` images of ``seed`` into ``out_dir``; returns the path of data.yaml.

    Example:
        >>> write_dataset(Path("/tmp/ds"), count=8, seed=1, progress=False)  # doctest: +SKIP
        PosixPath('/tmp/ds/data.yaml')
    """
    from tqdm import tqdm

    if count < 1:
        raise ValueError(f"--count must be at least 1, got {count}")
    if not 0 <= val_fraction < 1:
        raise ValueError(f"--val-fraction must be in [0, 1), got {val_fraction}")
    if style is not None and style not in STYLES:
        raise ValueError(f"style {style!r} is unknown; use one of {', '.join(STYLES)} or leave it unset")
    width_px, height_px = size
    if not (64 <= width_px <= 2047 and 64 <= height_px <= 2047):
        raise ValueError(
            f"--size {width_px}x{height_px} is out of range; use 64..2047 px per side, e.g. 960x540"
        )
    out_dir = Path(out_dir)
    for split in ("train", "val"):
        (out_dir / "images" / split).mkdir(parents=True, exist_ok=True)
        (out_dir / "labels" / split).mkdir(parents=True, exist_ok=True)
    counts: Counter[int] = Counter()
    jobs = list(_jobs(out_dir, count, seed, size, val_fraction, style))
    bar = tqdm(total=count, desc=f"synth images seed={seed}", unit="img", disable=not progress)
    if workers <= 1:
        _init_worker()
        for job in jobs:
            n, cls = _chunk_job(job)
            counts.update(cls)
            bar.update(n)
    else:
        with mp.get_context("fork").Pool(workers, initializer=_init_worker) as pool:
            for n, cls in pool.imap_unordered(_chunk_job, jobs):
                counts.update(cls)
                bar.update(n)
    bar.close()
    manifest = {
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "count": count,
        "size": [width_px, height_px],
        "val_fraction": val_fraction,
        "style": style,
        "instances": {CLASS_NAMES[i]: int(counts.get(i, 0)) for i in range(len(CLASS_NAMES))},
    }
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return write_data_yaml(out_dir)
