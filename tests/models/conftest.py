"""A tiny hand-made YOLO dataset: coloured shapes on noise, one shape kind per class, seconds to train on."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from vision.types import OBJECT_KINDS

IMAGE_WH = (128, 96)
#: One BGR colour per class so a model could in principle learn them apart.
_COLOURS = [
    (0, 0, 255),
    (0, 255, 0),
    (255, 0, 0),
    (0, 255, 255),
    (255, 0, 255),
    (255, 255, 0),
    (0, 128, 255),
    (200, 200, 200),
]


def write_tiny_dataset(root: Path, *, n_train: int = 6, n_val: int = 4, seed: int = 0) -> Path:
    """Write ``root/data.yaml`` with ``n_train``/``n_val`` 128x96 images; returns the data.yaml path."""
    rng = np.random.default_rng(seed)
    w, h = IMAGE_WH
    for split, count in (("train", n_train), ("val", n_val)):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            img = rng.integers(60, 120, size=(h, w, 3), dtype=np.uint8)
            lines = []
            for _ in range(int(rng.integers(1, 4))):
                cls = int(rng.integers(0, len(OBJECT_KINDS)))
                bw, bh = int(rng.integers(16, 40)), int(rng.integers(16, 40))
                x1, y1 = int(rng.integers(0, w - bw)), int(rng.integers(0, h - bh))
                cv2.rectangle(img, (x1, y1), (x1 + bw, y1 + bh), _COLOURS[cls], thickness=-1)
                cx, cy = (x1 + bw / 2) / w, (y1 + bh / 2) / h
                lines.append(f"{cls} {cx:.6f} {cy:.6f} {bw / w:.6f} {bh / h:.6f}")
            cv2.imwrite(str(root / "images" / split / f"{i:04d}.jpg"), img)
            (root / "labels" / split / f"{i:04d}.txt").write_text("\n".join(lines) + "\n")
    data = {
        "path": str(root),
        "train": "images/train",
        "val": "images/val",
        "names": {i: str(k) for i, k in enumerate(OBJECT_KINDS)},
        "seed": seed,
    }
    data_yaml = root / "data.yaml"
    data_yaml.write_text(yaml.safe_dump(data, sort_keys=False))
    return data_yaml


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_dataset(tmp_path_factory.mktemp("tiny-ds"))
