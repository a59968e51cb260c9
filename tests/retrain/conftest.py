"""Fixtures of the retraining tests: a database with all tables, stores, a tiny parent model, case factories."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np
import pytest

from vision.types import OBJECT_KINDS

T0 = dt.datetime(2025, 3, 1, 8, 0, tzinfo=dt.UTC)


def make_tiny_model(
    out_dir: Path, imgsz_px: int = 128, export_hw: tuple[int, int] = (96, 128)
) -> tuple[Path, Path]:
    """An untrained YOLOv8n with our 8 classes: ``(pt, onnx)``; the ONNX input is ``export_hw``
    (non-square like the bootstrap's, so a retrained model that changes the input shape shows)."""
    from copy import deepcopy

    from models.export import export_onnx, prepare_offline_ultralytics

    prepare_offline_ultralytics()
    import torch
    from ultralytics.nn.tasks import DetectionModel

    torch.manual_seed(0)
    model = DetectionModel("yolov8n.yaml", nc=len(OBJECT_KINDS), verbose=False)
    model.names = {i: str(k) for i, k in enumerate(OBJECT_KINDS)}
    model.args = {"imgsz": imgsz_px, "task": "detect"}
    out_dir.mkdir(parents=True, exist_ok=True)
    pt = out_dir / "parent.pt"
    torch.save({"model": deepcopy(model).half(), "train_args": {"imgsz": imgsz_px, "task": "detect"}}, pt)
    onnx = out_dir / "parent.onnx"
    export_onnx(pt, onnx, imgsz_px=export_hw, name="tiny-parent", version="tiny-parent")
    return pt, onnx


@pytest.fixture(scope="session")
def tiny_parent(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_tiny_model(tmp_path_factory.mktemp("parent"))


@pytest.fixture
def db(pg_url: str, settings_env):
    """Session factory over a fresh PostgreSQL database with every table; settings point at it."""
    from urbaneye.db.session import get_engine, session_factory
    from urbaneye.db.tables import metadata

    settings_env(database_url=pg_url)
    metadata.create_all(get_engine(pg_url))
    return session_factory(pg_url)


@pytest.fixture
def s3_settings(s3_server, settings_env):
    """Settings on the S3 backend (moto over HTTP); returns the Settings."""
    return settings_env(
        evidence_backend="s3",
        s3_endpoint=s3_server["endpoint"],
        s3_access_key=s3_server["access_key"],
        s3_secret_key=s3_server["secret_key"],
        s3_region=s3_server["region"],
    )


def jpeg(seed: int, wh: tuple[int, int] = (160, 96)) -> bytes:
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 255, (wh[1], wh[0], 3), dtype=np.uint8)
    ok, buf = cv2.imencode(".jpg", img)
    assert ok
    return buf.tobytes()


def add_case(
    session,
    store,
    *,
    camera_id: str = "cam-1",
    kind: str = "exposed_garbage",
    status: str = "confirmed",
    reject_reason: str | None = None,
    at: dt.datetime = T0,
    bbox=(20, 20, 60, 60),
    frame_wh=(160, 96),
    corrections=None,
    object_count: int = 1,
    frames: int = 1,
    image: bytes | None = None,
    seed: int = 0,
):
    """A reviewed case with ``frames`` clean evidence frames in ``store`` (rows as the cases service writes)."""
    from urbaneye.db.models import Case, Evidence, new_id

    case = Case(
        id=new_id(),
        violation_id=new_id(),
        camera_id=camera_id,
        kind=kind,
        gbt_code="0102",
        gbt_name="暴露垃圾",
        started_at=at,
        bbox_xyxy=list(bbox),
        frame_wh=list(frame_wh),
        status=status,
        reject_reason=reject_reason,
        reviewed_at=None if status == "pending_review" else at + dt.timedelta(minutes=5),
        reviewed_by="u1",
        corrections=corrections or [],
        object_count=object_count,
        model_version="tiny-parent",
    )
    session.add(case)
    for seq in range(1, frames + 1):
        data = image if image is not None else jpeg(seed * 10 + seq, tuple(frame_wh))
        key = f"{camera_id}/{at:%Y/%m/%d}/{case.id}/{seq}-clean.jpg"
        sha = store.put(key, data, "image/jpeg", {})
        assert sha == hashlib.sha256(data).hexdigest()
        session.add(
            Evidence(
                case_id=case.id,
                seq=seq,
                variant="clean",
                key=key,
                sha256=sha,
                size_bytes=len(data),
                frame_ts=at + dt.timedelta(seconds=10 * (seq - 1)),
                uploaded=True,
            )
        )
    session.flush()
    return case


@pytest.fixture
def fs_store(settings_env) -> Iterator:
    from urbaneye.storage import get_store

    yield get_store()


def export_untrained(out_dir: Path, task: str, *, names: Sequence[str], imgsz_px: int = 64) -> Path:
    """An untrained ultralytics YOLOv8n of ``task`` (detect / segment / classify) exported to ONNX, as a
    city would download one: built from the architecture yaml (no weights download), tiny input for speed."""
    from copy import deepcopy

    from models.export import prepare_offline_ultralytics

    prepare_offline_ultralytics()
    import torch
    from ultralytics import YOLO
    from ultralytics.nn.tasks import ClassificationModel, DetectionModel, SegmentationModel

    kinds = {
        "detect": (DetectionModel, "yolov8n.yaml"),
        "segment": (SegmentationModel, "yolov8n-seg.yaml"),
        "classify": (ClassificationModel, "yolov8n-cls.yaml"),
    }
    model_cls, arch = kinds[task]
    torch.manual_seed(0)
    model = model_cls(arch, nc=len(names), verbose=False)
    model.names = dict(enumerate(names))
    model.args = {"imgsz": imgsz_px, "task": task}
    out_dir.mkdir(parents=True, exist_ok=True)
    pt = out_dir / f"{task}.pt"
    torch.save({"model": deepcopy(model).half(), "train_args": {"imgsz": imgsz_px, "task": task}}, pt)
    exported = YOLO(str(pt)).export(
        format="onnx", imgsz=imgsz_px, opset=17, simplify=False, device="cpu", verbose=False
    )
    return Path(exported)


@pytest.fixture(scope="session")
def coco_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """COCO-80-named YOLOv8n exports: ``{"detect": onnx, "segment": onnx, "classify": onnx, "detect_pt": pt}``."""
    from vision.class_maps import COCO80_LABELS

    out = tmp_path_factory.mktemp("coco")
    models = {
        task: export_untrained(out, task, names=COCO80_LABELS) for task in ("detect", "segment", "classify")
    }
    models["detect_pt"] = out / "detect.pt"
    return models
