"""``urbaneye models import``: a detector trained elsewhere into the registry in one step.

    PATH (.onnx; a .pt is exported to ONNX first, train extra needed)
      -> loaded by ``vision.detector.OnnxDetector``: a YOLO detection export, or one error line naming
         what it is instead (classifier, segmentation, pose, names that do not match the head)
      -> class map (built-in ``coco`` or a YAML file) checked against the model's labels
      -> model card (labels, input size, sha256, source, the class map applied)
      -> registry version NAME in camera group G (``urbaneye.registry.register``)
      -> with ``activate``: G's active model; stream workers hot-reload it with its class map

Example:
    >>> with session_scope() as s:                                                   # doctest: +SKIP
    ...     r = import_model(s, "yolov8n.onnx", name="coco-v8n", class_map="coco", activate=True)
    >>> r.kinds                                                                      # doctest: +SKIP
    ['bicycle', 'e_bike', 'person']
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy.orm import Session

from models.export import export_onnx, prepare_offline_ultralytics
from urbaneye import registry
from urbaneye.db.models import ModelVersion
from urbaneye.model_card import ArtifactInfo, ModelCard, ModelSource
from urbaneye.settings import Settings, get_settings
from vision.class_maps import BUILTIN_CLASS_MAPS, ClassMapError, builtin_class_map, resolve_class_map
from vision.config import ModelConfig
from vision.detector import ModelLoadError, OnnxDetector
from vision.digest import sha256_file

#: A version name is a folder name in the registry storage and a key in every case row.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
#: Key of ``ModelVersion.metrics`` holding where an imported model came from (``ModelSource``).
SOURCE_KEY = "import"


class ModelImportError(ValueError):
    """The file cannot be imported; the message is one line naming the problem and the fix."""


@dataclass(frozen=True)
class ImportResult:
    """What ``import_model`` registered.

    Attributes:
        version: the registry version (NAME).
        camera_group: its camera group.
        sha256: hex digest of the registered ONNX.
        labels: model labels in class-id order.
        imgsz_px: ONNX input ``(h, w)``.
        class_map: every label -> the object kind it becomes, or None (ignored).
        kinds: the object kinds the model can report, sorted.
        card_uri: where the model card was published (local path or ``s3://``).
        activated: True if it became the group's active model.
    """

    version: str
    camera_group: str
    sha256: str
    labels: list[str]
    imgsz_px: tuple[int, int]
    class_map: dict[str, str | None]
    kinds: list[str]
    card_uri: str
    activated: bool

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def load_class_map(spec: str | None, labels: Sequence[str]) -> tuple[dict[str, str | None], str]:
    """``(label -> kind or None, source)`` for ``--class-map``: a built-in name, a YAML file, or None.

    A YAML file is a mapping ``label: kind`` (or null to ignore the label), optionally under a top-level
    ``class_map:`` key like the cameras file's ``model.class_map``. Labels it does not list keep the
    defaults of ``vision.class_maps.resolve_class_map``.

    Raises:
        ModelImportError: unknown built-in name, unreadable file, or a map that does not fit ``labels``.
    """
    if not spec:
        return {}, ""
    try:
        if spec in BUILTIN_CLASS_MAPS:
            return builtin_class_map(spec, labels), spec
        path = Path(spec)
        if path.suffix.lower() not in (".yaml", ".yml") or not path.is_file():
            raise ModelImportError(
                f"class map {spec!r} is neither a built-in map ({', '.join(sorted(BUILTIN_CLASS_MAPS))}) "
                "nor an existing .yaml file of 'label: kind' lines"
            )
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ModelImportError(
                f"class map {path} is not valid YAML ({str(exc).splitlines()[0]})"
            ) from None
        if isinstance(raw, Mapping) and set(raw) == {"class_map"}:
            raw = raw["class_map"]
        if not isinstance(raw, Mapping) or not all(isinstance(v, str) or v is None for v in raw.values()):
            raise ModelImportError(
                f"class map {path} must be a mapping of model label to object kind or null, "
                "e.g. 'motorcycle: e_bike' and 'car: null'"
            )
        mapping = {str(k): v for k, v in raw.items()}
        resolve_class_map(labels, mapping)  # checks labels and kinds
        return mapping, str(path)
    except ClassMapError as exc:
        raise ModelImportError(str(exc)) from None


def _export_pt(pt_path: Path, out_dir: Path, name: str) -> Path:
    """Export an ultralytics detection ``.pt`` to ONNX at its training size (train extra needed)."""
    if importlib.util.find_spec("ultralytics") is None:
        raise ModelImportError(
            f"{pt_path}: importing a .pt needs the train extra (pip install 'urbaneye[train]'); or export it "
            "yourself with `yolo export model=FILE.pt format=onnx` and import the .onnx"
        )
    prepare_offline_ultralytics()
    from ultralytics import YOLO  # the optional train extra (checked above); only .pt imports need it

    try:
        model = YOLO(str(pt_path))
    except Exception as exc:  # ultralytics raises many kinds for a file that is not its checkpoint
        raise ModelImportError(
            f"{pt_path} could not be loaded as an ultralytics checkpoint ({str(exc).splitlines()[0][:160]})"
        ) from None
    if model.task != "detect":
        raise ModelImportError(
            f"{pt_path} is an ultralytics '{model.task}' model, not a detection model; UrbanEye needs a "
            "YOLO detection model (yolo detect train ..., e.g. yolov8n.pt or yolo11n.pt)"
        )
    imgsz = model.overrides.get("imgsz") or 640  # the size it was trained at; ultralytics' default
    size = (imgsz, imgsz) if isinstance(imgsz, int) else (int(imgsz[0]), int(imgsz[1]))
    return export_onnx(pt_path, out_dir / "model.onnx", imgsz_px=size, name=name, version=name).path


def _validate(onnx_path: Path) -> OnnxDetector:
    """Load the ONNX as our runtime will; a model that is not a YOLO detector fails in one line."""
    try:
        return OnnxDetector(onnx_path, ModelConfig())
    except ModelLoadError as exc:
        raise ModelImportError(" ".join(str(exc).split())) from None


def import_model(
    session: Session,
    path: str | Path,
    *,
    name: str,
    class_map: str | None = None,
    camera_group: str = registry.DEFAULT_GROUP,
    activate: bool = False,
    actor: str = "cli:admin",
    settings: Settings | None = None,
) -> ImportResult:
    """Validate, describe and register a detector; with ``activate``, make it ``camera_group``'s model.

    Flushes, never commits: the caller owns the transaction (the registry row, its audit rows and the
    activation land together). The shipped bootstrap model is registered first (``ensure_bootstrap``), so
    ``urbaneye models rollback`` returns to it.

    Raises:
        ModelImportError: the file, its kind of model or the class map is wrong (one line, with the fix).
        registry.RegistryError: NAME is taken.
    """
    settings = settings or get_settings()
    source = Path(path)
    if not NAME_PATTERN.match(name):
        raise ModelImportError(
            f"model name {name!r} must be 1-64 letters, digits, '_', '.' or '-' starting with a letter or "
            "digit, e.g. coco-yolov8n-2025"
        )
    if not source.is_file():
        raise ModelImportError(f"{source} does not exist; give the path of a .onnx (or .pt) detector")
    fmt = source.suffix.lower().lstrip(".")
    if fmt not in ("onnx", "pt"):
        raise ModelImportError(
            f"{source}: expected a .onnx file (or a .pt with the train extra installed), got '.{fmt}'"
        )
    registry.ensure_bootstrap(session, registry.DEFAULT_GROUP, settings)
    if session.get(ModelVersion, name) is not None:
        raise registry.RegistryError(f"model version {name!r} is already registered; pick another --name")

    with tempfile.TemporaryDirectory(prefix="ue-import-") as tmp:
        onnx_path = _export_pt(source, Path(tmp), name) if fmt == "pt" else source
        detector = _validate(onnx_path)
        mapping, map_source = load_class_map(class_map, detector.labels)
        resolved = resolve_class_map(detector.labels, mapping)
        effective = {
            label: None if kind is None else str(kind)
            for label, kind in zip(detector.labels, resolved, strict=True)
        }
        kinds = sorted({k for k in effective.values() if k is not None})
        if not kinds:
            raise ModelImportError(
                f"none of the model's {len(detector.labels)} labels ({', '.join(detector.labels[:8])}"
                f"{' …' if len(detector.labels) > 8 else ''}) becomes an UrbanEye object kind; pass "
                "--class-map coco for a COCO-trained model or --class-map FILE.yaml (label: kind lines)"
            )
        origin = ModelSource(
            path=str(source.resolve()),
            sha256=sha256_file(source),
            format=fmt,
            class_map=map_source,
            imported_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        )
        mv = registry.register(
            session,
            onnx_path=onnx_path,
            weights_path=source if fmt == "pt" else None,
            camera_group=camera_group,
            classes=detector.labels,
            metrics={registry.CLASS_MAP_KEY: effective, SOURCE_KEY: asdict(origin)},
            version=name,
            settings=settings,
            actor=actor,
        )
        card = ModelCard(
            name=name,
            classes=list(detector.labels),
            imgsz_px=list(detector.imgsz),
            architecture=detector.metadata.get("description", ""),
            dataset={},
            recipe={},
            training={},
            artifacts={
                "onnx": ArtifactInfo(file="model.onnx", sha256=mv.sha256, size_bytes=onnx_path.stat().st_size)
            },
            class_map=effective,
            source=origin,
        )
        card_path = card.save(Path(tmp) / "card.json")
        card_uri = registry.publish_artefact(card_path, name, "card.json", settings)
    if activate:
        registry.promote(session, name, camera_group, actor=actor, reason=f"imported from {source.name}")
    return ImportResult(
        version=name,
        camera_group=camera_group,
        sha256=mv.sha256,
        labels=list(detector.labels),
        imgsz_px=detector.imgsz,
        class_map=effective,
        kinds=kinds,
        card_uri=card_uri,
        activated=activate,
    )
