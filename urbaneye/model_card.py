"""Model card: what a shipped detector is, how it was made, and how well it does.

The card is a JSON file beside the model (``card.json``). It is written by ``urbaneye train`` and
updated by ``urbaneye eval --card`` when the model is measured on a held-out set, so a reviewer can
reproduce both the model and its figures from the card alone. ``urbaneye models import`` writes one for a
model trained elsewhere: its labels, input size, sha256, where it came from and the class map applied.
The model registry (``urbaneye.registry``) reads the shipped model's card to register it. An int8 model
(``urbaneye quantize``) has a card of its own, ``<stem>.card.json`` beside it (``int8_card_path``), with
``precision: "int8"`` and its ``quantization`` (parent, calibration set, accuracy delta, gate).
"""

from __future__ import annotations

import json
import os
import platform
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vision.digest import sha256_file

CARD_SCHEMA_VERSION = 1


def int8_card_path(onnx_path: str | Path) -> Path:
    """Where an int8 model's card lives: ``m.int8.onnx`` -> ``m.int8.card.json`` (beside the model).

    Example:
        >>> int8_card_path("models/bootstrap/urbaneye-bootstrap.int8.onnx").name
        'urbaneye-bootstrap.int8.card.json'
    """
    return Path(onnx_path).with_suffix(".card.json")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe_hardware(device: str = "cpu") -> dict[str, Any]:
    """The machine a model was trained on: CPU model, usable cores, torch threads, GPU if any.

    ``device`` is the ultralytics device string the run used (``"cpu"``, ``"0"``, ``"cuda:0"``).
    """
    info: dict[str, Any] = {
        "device": device,
        "cpu": _cpu_model(),
        "cpu_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }
    try:  # torch and ultralytics are the optional training extras: imported only to name their versions
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        if device != "cpu" and torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    try:
        import ultralytics

        info["ultralytics"] = ultralytics.__version__
    except ImportError:
        pass
    return info


def hardware_summary(hw: Any) -> str:
    """One line of a card's ``training.hardware``, e.g. ``"AMD EPYC 7B13, 2 cores, device cpu"``."""
    if not isinstance(hw, dict):
        return str(hw or "")
    parts = [
        hw.get("gpu") or hw.get("cpu") or "",
        f"{hw.get('cpu_cores', '?')} cores",
        f"device {hw.get('device', '?')}",
    ]
    return ", ".join(p for p in parts if p)[:120]


@dataclass(frozen=True)
class ModelSource:
    """Where an imported model came from.

    Attributes:
        path: the file as given to ``urbaneye models import``.
        sha256: hex digest of that file (for a .pt: of the weights; the ONNX has its own artifact hash).
        format: ``"onnx"`` or ``"pt"``.
        class_map: ``"coco"``, the YAML file given, or ``""`` when the labels were used as they are.
        imported_at: UTC ISO time of the import.
    """

    path: str
    sha256: str
    format: str
    class_map: str
    imported_at: str


@dataclass(frozen=True)
class Quantization:
    """How an int8 model was made from its fp32 parent, and what it costs in accuracy.

    Attributes:
        parent_file / parent_sha256: the fp32 ONNX it was quantised from.
        method: e.g. ``"onnxruntime static QDQ, minmax"``; ``activation_type`` ``uint8``/``int8``; weights are
            int8 per channel.
        calibration: ``{"source": "reviews"|"dir"|"synthetic", "frames", "detail"}``.
        float_nodes: nodes kept in float (the detect head's decode).
        accuracy: fp32 vs int8 on the held-out set (``models.quantize.PrecisionComparison.to_json``:
            ``fp32_map50``, ``int8_map50``, ``map50_delta``, ``per_class_ap50_delta``, ``fp32_ms``, ...).
        gate: the int8 gate's decision against the parent (``models.gate.decide_int8``).
    """

    parent_file: str
    parent_sha256: str
    method: str
    activation_type: str
    calibration: dict[str, Any]
    float_nodes: list[str]
    accuracy: dict[str, Any] = field(default_factory=dict)
    gate: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """True when the int8 gate accepted the model (an unmeasured model never passes)."""
        return self.gate.get("promote") is True


@dataclass
class ArtifactInfo:
    """One file of the model: where it is (relative to the card), its hash and size."""

    file: str
    sha256: str
    size_bytes: int
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, path: str | Path, relative_to: str | Path, **extra: Any) -> ArtifactInfo:
        path = Path(path)
        try:
            name = str(path.resolve().relative_to(Path(relative_to).resolve()))
        except ValueError:
            name = str(path)
        return cls(file=name, sha256=sha256_file(path), size_bytes=path.stat().st_size, extra=dict(extra))


@dataclass
class ModelCard:
    """Everything needed to trust, reproduce and load one trained detector.

    Attributes:
        name: model name, e.g. ``"urbaneye-bootstrap"``.
        classes: model labels in class-id order (``OBJECT_KINDS`` order for our models).
        imgsz_px: ONNX input size ``[h, w]``.
        architecture: ultralytics model yaml, e.g. ``"yolov8n.yaml"``; ``init_weights`` when fine-tuned.
        dataset: ``{"data_yaml", "seed", "train_images", "val_images", ...}`` of the training data.
        recipe: the full training recipe (name and every ultralytics override used).
        training: ``{"time_s", "epochs", "hardware": {...}}``.
        artifacts: ``{"onnx": ArtifactInfo, "pt": ..., "onnx_dynamic": ...}``.
        metrics: named evaluations, e.g. ``{"val": {...}, "holdout": {...}}``; each holds the
            ``evaluate_model`` JSON plus how it was produced (``command``, ``data_yaml``, ``split``).
        class_map: every model label -> the object kind it becomes, or None (ignored); empty for our own
            models, whose labels are the kinds.
        source: for an imported model, the file it came from.
        precision: ``"fp32"`` or ``"int8"``.
        quantization: for an int8 model, how it was quantised and its accuracy against the fp32 parent.
    """

    name: str
    classes: list[str]
    imgsz_px: list[int]
    architecture: str
    dataset: dict[str, Any]
    recipe: dict[str, Any]
    training: dict[str, Any]
    artifacts: dict[str, ArtifactInfo] = field(default_factory=dict)
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    init_weights: str | None = None
    class_map: dict[str, str | None] = field(default_factory=dict)
    source: ModelSource | None = None
    precision: str = "fp32"
    quantization: Quantization | None = None
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    schema_version: int = CARD_SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        tmp.replace(path)
        return path

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelCard:
        version = data.get("schema_version")
        if version != CARD_SCHEMA_VERSION:
            raise ValueError(
                f"model card schema_version {version!r} is not supported (expected {CARD_SCHEMA_VERSION}); "
                "re-run `urbaneye train` or upgrade urbaneye"
            )
        data = dict(data)
        data["artifacts"] = {k: ArtifactInfo(**v) for k, v in data.get("artifacts", {}).items()}
        if data.get("source") is not None:
            data["source"] = ModelSource(**data["source"])
        if data.get("quantization") is not None:
            data["quantization"] = Quantization(**data["quantization"])
        return cls(**data)

    @classmethod
    def load(cls, path: str | Path) -> ModelCard:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"model card {path} not found; train a model with `urbaneye train`")
        return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))

    def verify(self, card_dir: str | Path) -> list[str]:
        """Check each artifact's sha256 against the files beside the card; returns a list of problems."""
        problems = []
        for key, art in self.artifacts.items():
            path = Path(card_dir) / art.file
            if not path.is_file():
                problems.append(f"{key}: {path} is missing")
            elif sha256_file(path) != art.sha256:
                problems.append(f"{key}: {path} sha256 differs from the card; re-export or update the card")
        return problems
