"""Shared fixtures for vision tests: tiny real YOLO ONNX exports made once per session.

The models are built from ultralytics' bundled ``yolov8n.yaml`` (no download) with the 8 UrbanEye kinds.
Random weights give vanishing activations, so BatchNorm statistics are calibrated on two real images and
the class head is scaled so scores spread over ~0.25-0.6: thresholds then select real subsets.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("YOLO_OFFLINE", "1")

URBANEYE_LABELS = ["person", "bicycle", "e_bike", "vending_stall", "garbage", "trash_bin", "grill", "smoke"]
TINY_IMGSZ_PX = 160


def _assets_dir() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("ultralytics")
    assert spec and spec.origin, "ultralytics is needed for test fixtures (pip install -e .[train])"
    return Path(spec.origin).parent / "assets"


@pytest.fixture(scope="session")
def bus_bgr() -> np.ndarray:
    """A real 810x1080 street photo (ultralytics' bundled bus.jpg), BGR uint8."""
    import cv2

    img = cv2.imread(str(_assets_dir() / "bus.jpg"))
    assert img is not None
    return img


@pytest.fixture(scope="session")
def zidane_bgr() -> np.ndarray:
    """A real 1280x720 photo of two people (ultralytics' bundled zidane.jpg), BGR uint8."""
    import cv2

    img = cv2.imread(str(_assets_dir() / "zidane.jpg"))
    assert img is not None
    return img


def _tiny_yolo(workdir: Path, yaml_name: str, nc: int, labels: list[str] | None, seed: int = 0):  # noqa: ANN202
    """A YOLO (ultralytics) model from a bundled yaml with ``nc`` classes and calibrated random weights."""
    import cv2
    import torch
    import yaml
    from ultralytics import YOLO
    from ultralytics.utils import ROOT

    family = "v8"
    base = yaml_name.replace("yolov8n", "yolov8")  # yolov8n-seg -> yolov8-seg.yaml (scale 'n' from the name)
    cfg = yaml.safe_load((ROOT / "cfg" / "models" / family / f"{base}.yaml").read_text())
    cfg["nc"] = nc
    cfg_path = workdir / f"{yaml_name}-ue.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    torch.manual_seed(seed)
    model = YOLO(str(cfg_path))
    if labels:
        model.model.names = dict(enumerate(labels))
    net = model.model
    for mod in net.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.reset_running_stats()
            mod.momentum = None  # cumulative average: one pass sets the statistics
    imgs = [
        cv2.resize(cv2.imread(str(_assets_dir() / n)), (160, 160))[:, :, ::-1]
        for n in ("bus.jpg", "zidane.jpg")
    ]
    x = torch.from_numpy(np.stack(imgs).transpose(0, 3, 1, 2).copy()).float() / 255
    net.train()
    with torch.no_grad():
        net(x)
    net.eval()
    head = net.model[-1]
    if hasattr(head, "cv3") and yaml_name.startswith("yolov8n") and "cls" not in yaml_name:
        for seq in head.cv3:
            seq[-1].weight.data *= 0.05
            seq[-1].bias.data[:] = -1.0
    return model


@pytest.fixture(scope="session")
def export_tiny(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """``export_tiny(kind="yolov8n", **export_kwargs) -> Path`` of a tiny ONNX export; cached per arguments."""
    cache: dict[tuple, Path] = {}
    root = tmp_path_factory.mktemp("tiny_onnx")

    def export(kind: str = "yolov8n", nc: int = 8, labels: list[str] | None = None, **kwargs: object) -> Path:
        labels = labels if labels is not None else (URBANEYE_LABELS if nc == 8 else None)
        key = (kind, nc, tuple(labels or ()), tuple(sorted(kwargs.items())))
        if key not in cache:
            workdir = root / f"m{len(cache)}"
            workdir.mkdir()
            kwargs.setdefault("imgsz", TINY_IMGSZ_PX)
            # ultralytics writes the export next to the yaml name, relative to the cwd: export from workdir.
            cwd = Path.cwd()
            os.chdir(workdir)
            try:
                model = _tiny_yolo(workdir, kind, nc, labels)
                out = Path(model.export(format="onnx", simplify=False, verbose=False, **kwargs)).resolve()
            finally:
                os.chdir(cwd)
            assert out.is_relative_to(workdir), out
            cache[key] = out
        return cache[key]

    return export


@pytest.fixture(scope="session")
def tiny_onnx(export_tiny: Callable[..., Path]) -> Path:
    """Static batch-1 YOLOv8n detection export, 8 UrbanEye classes, imgsz 160."""
    return export_tiny()


def edit_onnx(
    src: Path, dst: Path, *, metadata: dict[str, str | None] | None = None, transpose: bool = False
) -> Path:
    """Copy an ONNX with metadata entries changed (None deletes) and/or its output transposed to (1, N, C)."""
    import onnx
    from onnx import helper

    model = onnx.load(str(src))
    if metadata is not None:
        props = {p.key: p.value for p in model.metadata_props}
        for key, value in metadata.items():
            if value is None:
                props.pop(key, None)
            else:
                props[key] = value
        del model.metadata_props[:]
        for key, value in props.items():
            model.metadata_props.add(key=key, value=value)
    if transpose:
        graph = model.graph
        out = graph.output[0]
        old_name = out.name
        inner = f"{old_name}_channels_first"
        for node in graph.node:
            node.output[:] = [inner if o == old_name else o for o in node.output]
        graph.node.append(helper.make_node("Transpose", [inner], [old_name], perm=[0, 2, 1]))
        dims = out.type.tensor_type.shape.dim
        d1, d2 = dims[1].dim_value, dims[2].dim_value
        dims[1].dim_value, dims[2].dim_value = d2, d1
    onnx.save(model, str(dst))
    return dst
