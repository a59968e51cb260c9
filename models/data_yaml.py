"""YOLO ``data.yaml`` datasets: their splits' images and what a model card records about them.

Training (``models.train``) and evaluation (``models.evaluate``) both read datasets through these, so
neither imports the other for them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}


def _split_images(root: Path, entry: Any) -> list[Path]:
    """Images of one data.yaml split entry: a folder, a .txt list, or a list of either."""
    entries = entry if isinstance(entry, list) else [entry]
    images: list[Path] = []
    for item in entries:
        p = Path(item)
        p = p if p.is_absolute() else root / p
        if p.is_dir():
            images.extend(sorted(q for q in p.rglob("*") if q.suffix.lower() in _IMAGE_SUFFIXES))
        elif p.suffix == ".txt" and p.is_file():
            for line in p.read_text(encoding="utf-8").splitlines():
                line = line.strip()
                if line:
                    q = Path(line)
                    images.append(q if q.is_absolute() else (p.parent / q).resolve())
        else:
            raise FileNotFoundError(f"data.yaml split {item!r} resolves to {p}, which does not exist")
    return images


def read_data_yaml(data_yaml: str | Path) -> dict[str, Any]:
    """Parse a YOLO data.yaml; adds ``_root`` (the dataset folder) and ``names`` as a list."""
    data_yaml = Path(data_yaml)
    if not data_yaml.is_file():
        raise FileNotFoundError(
            f"dataset {data_yaml} not found; generate one with `urbaneye synth images --out DIR` "
            "and pass DIR/data.yaml"
        )
    data = yaml.safe_load(data_yaml.read_text(encoding="utf-8")) or {}
    if "names" not in data:
        raise ValueError(f"{data_yaml} has no 'names'; a YOLO data.yaml lists class names")
    root = Path(data.get("path") or data_yaml.parent)
    data["_root"] = root if root.is_absolute() else (data_yaml.parent / root).resolve()
    names = data["names"]
    data["names"] = [names[k] for k in sorted(names)] if isinstance(names, dict) else list(names)
    return data


def split_images(data_yaml: str | Path, split: str) -> list[Path]:
    """Image paths of ``split`` (``train``, ``val``, ``test``) of a YOLO dataset."""
    data = read_data_yaml(data_yaml)
    if split not in data or data[split] in (None, ""):
        present = [k for k in ("train", "val", "test") if data.get(k)]
        raise ValueError(f"{data_yaml} has no '{split}' split; it has {present}")
    return _split_images(data["_root"], data[split])


def describe_dataset(data_yaml: str | Path) -> dict[str, Any]:
    """What a card records about a dataset: path, image counts and the generator's seed if it wrote one."""
    data = read_data_yaml(data_yaml)
    info: dict[str, Any] = {"data_yaml": str(Path(data_yaml).resolve()), "names": data["names"]}
    for split in ("train", "val", "test"):
        if data.get(split):
            info[f"{split}_images"] = len(_split_images(data["_root"], data[split]))
    manifest = Path(data_yaml).parent / "manifest.json"
    if manifest.is_file():
        # `urbaneye synth images` writes its provenance here: seed, count, size, generator version.
        meta = json.loads(manifest.read_text(encoding="utf-8"))
        info["generator"] = {k: v for k, v in meta.items() if k != "instances"}
        info["seed"] = meta.get("seed")
        info["instances"] = meta.get("instances")
    # Other generators may write provenance next to the standard keys (seed, count, ...).
    standard = {"path", "train", "val", "test", "names", "nc", "_root", "download"}
    for key, value in data.items():
        if key not in standard and isinstance(value, str | int | float | bool | dict | list):
            info[key] = value
    return info
