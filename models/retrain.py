"""One retraining run for a camera group: dataset -> fine-tune -> evaluate -> gate -> registry (-> promote).

    parent = the group's active model (the shipped bootstrap is registered on first use)
    dataset = build_dataset(reviewed cases, pseudo-labels by the parent, labelled real frames, synthetic share)
              (or a given version)
    new = train_model(dataset, init_weights=parent.pt, recipe="finetune")   (ONNX at the parent's shape)
    both models evaluated through our ONNX path (models.evaluate) on the dataset's val split and on a fixed
    synthetic regression set (seed REGRESSION_SEED) -> models.gate.decide -> registry.register(new);
    the real frames of val (the annotation queue's) are also scored alone: metrics["real_frames"]
    gate passed and promote=True -> registry.promote(new): stream workers hot-reload it

The Celery task (``models.tasks.retrain_task``) and ``urbaneye retrain`` both call ``run_retraining``.
A PostgreSQL advisory lock per camera group keeps two runs of one group from overlapping.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import logging
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import onnxruntime as ort
import yaml
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from datasets.builder import BuildOptions, build_dataset, datasets_store, load_manifest, materialize
from datasets.real_frames import SPLIT as REAL_FRAMES_SPLIT
from datasets.real_frames import write_real_frames_split
from datasets.synth import generate_images
from models.evaluate import evaluate_model
from models.gate import MAX_CLASS_DROP_AP50, MIN_VAL_GAIN_MAP50, GateDecision, decide
from models.train import load_recipe, train_model
from urbaneye import registry
from urbaneye.db.models import ModelVersion
from urbaneye.db.session import session_factory as make_session_factory
from urbaneye.model_card import hardware_summary
from urbaneye.settings import REPO_ROOT, Settings, get_settings
from urbaneye.storage import get_store
from vision.config import ModelConfig
from vision.detector import OnnxDetector

log = logging.getLogger(__name__)

#: The fixed regression set: same seed, count and style every run, so numbers compare across versions.
#: 480 images (about 5000 objects): the gate's 1-point rule needs per-class AP50 differences steadier than
#: one point. Measured on the three 160-image slices of this set, the IR demo's promoted fine-tune against
#: its parent: e_bike -1.8 / +1.4 / +1.3 pt, smoke -1.3 / +0.1 / -0.3, garbage -1.2 / 0.0 / -0.9 (on all
#: 480: worst class -0.6), so at 160 images the gate's verdict depended on which slice it saw. Scoring both
#: models on 480 takes about 40 s on the 2-core CPU (18 s each, measured).
REGRESSION_SEED = 20240601
REGRESSION_COUNT = 480
REGRESSION_SIZE = (640, 360)
BOOTSTRAP_DIR = REPO_ROOT / "models" / "bootstrap"
#: Retraining trains with the ``finetune`` recipe, written for starting from a trained model. Given a
#: from-scratch recipe (cpu, gpu, tiny) instead, its learning rate would first wreck what the parent knows
#: (and forget the classes the new cases do not show), so it is scaled down by this and warm-up is dropped.
FINETUNE_LR_SCALE = 0.25
#: Training arguments the registry keeps with a retrained model (``metrics.training.train_args``).
RECORDED_TRAIN_ARGS = (
    "imgsz",
    "epochs",
    "batch",
    "lr0",
    "lrf",
    "optimizer",
    "warmup_epochs",
    "warmup_bias_lr",
    "freeze",
    "time",
)
#: Detections below this never become pseudo-labels; the builder's ``pseudo_conf`` decides the rest.
PSEUDO_DETECT_THRESHOLD = 0.25

Progress = Callable[[str, int, int], None]


class RetrainError(RuntimeError):
    """The run cannot proceed; the message says what is missing and how to provide it."""


class RetrainBusy(RetrainError):
    """Another retraining of the same camera group holds the lock."""


@dataclass(frozen=True)
class RetrainOptions:
    camera_group: str = "default"
    dataset_version: str | None = None  # reuse a built dataset; None = build one now
    build: BuildOptions = field(default_factory=BuildOptions)
    recipe: str = "finetune"
    epochs: int | None = None
    imgsz_px: int | None = None
    batch: int | None = None
    device: str | None = None
    time_h: float | None = None  # wall-clock budget; None = the recipe's, or none when ``epochs`` is given
    finetune_lr_scale: float = FINETUNE_LR_SCALE  # x lr0 of a from-scratch recipe (not of ``finetune``)
    train_args: dict[str, Any] = field(default_factory=dict)  # more/overriding ultralytics train arguments
    regression_data: Path | None = None  # a YOLO data.yaml; None = the synthetic set with REGRESSION_SEED
    regression_seed: int = REGRESSION_SEED
    regression_count: int = REGRESSION_COUNT
    promote: bool = True  # promote automatically when the gate passes
    max_class_drop_ap50: float = MAX_CLASS_DROP_AP50
    min_val_gain_map50: float = MIN_VAL_GAIN_MAP50
    work_dir: Path | None = None  # kept after the run if given; else a temp dir
    actor: str = "system:retrain"


@dataclass
class RetrainResult:
    version: str
    parent: str
    dataset_version: str
    gate: GateDecision
    promoted: bool
    metrics: dict[str, Any]
    training_time_s: float
    onnx_path: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "parent": self.parent,
            "dataset_version": self.dataset_version,
            "promoted": self.promoted,
            "gate": self.gate.to_json(),
            "metrics": self.metrics,
            "training_time_s": round(self.training_time_s, 1),
        }


# ------------------------------------------------------------------------------------------------ helpers


@contextlib.contextmanager
def group_lock(engine: Engine, camera_group: str) -> Iterator[None]:
    """Advisory lock per camera group on PostgreSQL, held on a dedicated connection for the whole run.

    If the worker dies the connection drops and PostgreSQL releases the lock. No-op on other databases.
    """
    if engine.dialect.name != "postgresql":
        yield
        return
    key = int.from_bytes(
        hashlib.sha256(f"urbaneye-retrain:{camera_group}".encode()).digest()[:8], "big", signed=True
    )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        if not conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar():
            raise RetrainBusy(
                f"a retraining of camera group {camera_group!r} is already running; wait for it to finish"
            )
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})


def ensure_parent(session: Session, camera_group: str, settings: Settings) -> ModelVersion:
    """The group's active model; on first use the shipped bootstrap model is registered and activated."""
    mv = registry.active_version(session, camera_group)
    if mv is not None:
        return mv
    mv = registry.ensure_bootstrap(session, camera_group, settings)
    if mv is None:
        raise RetrainError(
            f"camera group {camera_group!r} has no active model and the bootstrap model "
            f"{settings.model_path} is missing; import and activate a model first "
            "(`urbaneye models import PATH --name NAME --group GROUP --activate`) or restore the bootstrap files"
        )
    return mv


def fetch_weights(mv: ModelVersion, settings: Settings, dest_dir: Path) -> Path:
    """A local copy of the parent's .pt weights (needed to fine-tune)."""
    if not mv.weights_uri:
        raise RetrainError(
            f"model {mv.version} has no .pt weights in the registry, so it cannot be fine-tuned; "
            "register it with its weights (models/bootstrap/urbaneye-bootstrap.pt for the bootstrap)"
        )
    if mv.weights_uri.startswith("s3://"):
        bucket, _, key = mv.weights_uri.removeprefix("s3://").partition("/")
        dest = dest_dir / "parent.pt"
        dest.write_bytes(get_store(settings, bucket=bucket).get(key))
        return dest
    path = Path(mv.weights_uri)
    if not path.is_file():
        raise RetrainError(f"weights {path} of model {mv.version} are missing on this machine")
    return path


def regression_set(
    seed: int, count: int, settings: Settings, size: tuple[int, int] = REGRESSION_SIZE
) -> Path:
    """The fixed synthetic regression set (generated once per seed/count/size, cached in ``models_dir``).

    All images are in its ``val`` split. The generator is deterministic per seed, so every run and every
    machine scores models on the same pictures.
    """
    root = Path(settings.models_dir) / "regression" / f"seed{seed}-n{count}-{size[0]}x{size[1]}"
    data_yaml = root / "data.yaml"
    if data_yaml.is_file():
        return data_yaml
    tmp = root.with_name(root.name + f".tmp-{uuid.uuid4().hex[:6]}")
    generate_images(tmp, count=count, seed=seed, val_fraction=0.0, size=size)
    if root.exists():  # another run finished first
        shutil.rmtree(tmp, ignore_errors=True)
        return data_yaml
    tmp.rename(root)
    doc = yaml.safe_load((root / "data.yaml").read_text()) or {}
    doc.update(path=str(root.resolve()), val="images/train", regression_seed=seed)
    data_yaml.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False))
    return data_yaml


def reviewed_classes(manifest: dict[str, Any], split: str) -> set[str]:
    """Classes with at least one reviewer-made box (case, correction, or a real frame labelled in the
    annotation queue; not pseudo/synth) in ``split``."""
    return {
        lb["label"]
        for it in manifest.get("items", [])
        if it.get("split") == split
        for lb in it.get("labels", [])
        if lb.get("source") in ("case", "correction", "annotation")
    }


def restrict_to_classes(report: dict[str, Any], classes: set[str]) -> dict[str, Any]:
    """``report`` with ``map50`` recomputed as the mean AP50 over ``classes`` (those with a defined AP).

    Example:
        >>> r = {"map50": 0.9, "per_class": {"garbage": {"ap50": 0.4}, "person": {"ap50": 1.0}}}
        >>> restrict_to_classes(r, {"garbage"})["map50"]
        0.4
    """
    aps = [
        float(row["ap50"])
        for name, row in (report.get("per_class") or {}).items()
        if name in classes and row and row.get("ap50") is not None
    ]
    out = dict(report)
    out["map50"] = sum(aps) / len(aps) if aps else None
    out["per_class"] = {k: v for k, v in (report.get("per_class") or {}).items() if k in classes}
    return out


def evaluate_real_frames(
    evaluate: Callable[[Path, Path, str], dict[str, Any]],
    new_onnx: Path,
    parent_onnx: Path,
    manifest: dict[str, Any],
    data_yaml: Path,
) -> dict[str, Any]:
    """Both models on the real frames of val alone (``datasets.real_frames``: frames from the cameras,
    labelled in full in the annotation queue), reported apart from the val split as a whole and from the
    synthetic regression set: ``{"images", "negatives", "new", "parent"}`` (``new``/``parent`` None when
    val holds no real frame)."""
    n = write_real_frames_split(manifest, data_yaml)
    negatives = sum(
        1
        for it in manifest["items"]
        if it["source"] == "real_frame" and it["split"] == "val" and not it["labels"]
    )
    if not n:
        return {"images": 0, "negatives": 0, "new": None, "parent": None}
    return {
        "images": n,
        "negatives": negatives,
        "new": _slim(evaluate(new_onnx, data_yaml, REAL_FRAMES_SPLIT)),
        "parent": _slim(evaluate(parent_onnx, data_yaml, REAL_FRAMES_SPLIT)),
    }


def finetune_train_args(options: RetrainOptions) -> dict[str, Any]:
    """Ultralytics arguments a fine-tune adds to its recipe, then ``options.train_args`` on top.

    A fine-tune recipe (``finetune: true``, e.g. ``finetune``) is used as written. A from-scratch recipe
    gets a scaled-down lr0 and no warm-up: its warm-up ramps the bias learning rate down from
    ``warmup_bias_lr`` (0.1), which would knock a trained detection head off before the first real step.

    Example:
        >>> finetune_train_args(RetrainOptions())  # the finetune recipe: lr0 0.0005, warm-up from 0
        {}
        >>> finetune_train_args(RetrainOptions(recipe="cpu"))  # the cpu recipe trains at lr0 0.002
        {'lr0': 0.0005, 'warmup_epochs': 0.0}
    """
    recipe = load_recipe(options.recipe)
    args: dict[str, Any] = {}
    if not recipe.finetune:
        recipe_lr0 = float(recipe.train_args().get("lr0", 0.01))
        args.update(lr0=recipe_lr0 * options.finetune_lr_scale, warmup_epochs=0.0)
    args.update(options.train_args)
    return args


def _onnx_imgsz(onnx_path: Path) -> tuple[int, int]:
    """``(h, w)`` input of an ONNX detector (e.g. 288x512 for the bootstrap; 640 if dynamic)."""
    shape = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"]).get_inputs()[0].shape
    h, w = (int(v) if isinstance(v, int) else 640 for v in shape[2:4])
    return h, w


# ---------------------------------------------------------------------------------------------------- run


def run_retraining(
    options: RetrainOptions | None = None,
    *,
    session_factory: sessionmaker[Session] | None = None,
    settings: Settings | None = None,
    progress: Progress | None = None,
) -> RetrainResult:
    """Run one retraining; commits the dataset, the new version, the gate decision and any promotion."""
    options = options or RetrainOptions()
    settings = settings or get_settings()
    progress = progress or (lambda *_: None)
    session_factory = session_factory or make_session_factory()
    keep = options.work_dir is not None
    work = Path(options.work_dir or tempfile.mkdtemp(prefix="ue-retrain-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        with group_lock(session_factory.kw["bind"], options.camera_group):
            return _run(options, session_factory, settings, progress, work)
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


def _run(
    options: RetrainOptions,
    sessions: sessionmaker[Session],
    settings: Settings,
    progress: Progress,
    work: Path,
) -> RetrainResult:
    group = options.camera_group
    steps = 7
    progress("parent", 0, steps)
    with sessions() as s:
        parent = ensure_parent(s, group, settings)
        s.commit()
        parent_onnx = registry.fetch_onnx(parent.onnx_uri, parent.sha256, settings)
        parent_pt = fetch_weights(parent, settings, work)
        parent_version = parent.version

    progress("dataset", 1, steps)
    store = datasets_store(settings)
    with sessions() as s:
        if options.dataset_version:
            manifest = load_manifest(s, options.dataset_version, store)
            data_yaml = materialize(manifest, work / "dataset", store)
            dataset_version = options.dataset_version
        else:
            labeller = OnnxDetector(parent_onnx, ModelConfig(default_score_threshold=PSEUDO_DETECT_THRESHOLD))
            build = replace(options.build, camera_group=options.build.camera_group or group)
            result = build_dataset(
                s, options=build, detector=labeller, store=store, settings=settings, out_dir=work / "dataset"
            )
            s.commit()
            data_yaml, dataset_version, manifest = result.data_yaml, result.version, result.manifest
    if not manifest["counts"]["val"]["images"]:
        log.warning(
            "dataset %s has no val images; the gate will keep the new model as a candidate", dataset_version
        )

    progress("regression set", 2, steps)
    reg_yaml = options.regression_data or regression_set(
        options.regression_seed, options.regression_count, settings
    )

    progress("train", 3, steps)
    version = registry.make_version(group, uuid.uuid4().hex)
    export_hw = _onnx_imgsz(parent_onnx)  # same input shape as the deployed model: same runtime cost
    finetune_args = finetune_train_args(options)
    trained = train_model(
        data_yaml,
        work / "train",
        recipe=options.recipe,
        epochs=options.epochs,
        imgsz_px=options.imgsz_px,
        export_imgsz_px=export_hw,
        init_weights=parent_pt,
        batch=options.batch,
        device=options.device,
        # an explicit epoch count means exactly that many epochs; a recipe's time budget would re-plan it
        time_h=options.time_h if options.time_h is not None else (0.0 if options.epochs else None),
        name="urbaneye",
        version=version,
        evaluate=False,
        extra_train_args=finetune_args,
    )

    def evaluate(onnx: Path, data: Path, split: str) -> dict[str, Any]:
        # always at the ONNX input size: the figures describe what the stream workers run
        return evaluate_model(onnx, data, split)

    has_val = bool(manifest["counts"]["val"]["images"])
    progress("evaluate val", 4, steps)
    empty = {"map50": None, "map50_95": None, "per_class": {}}
    new_val = evaluate(trained.onnx_path, data_yaml, "val") if has_val else empty
    parent_val = evaluate(parent_onnx, data_yaml, "val") if has_val else empty
    real_frames = evaluate_real_frames(evaluate, trained.onnx_path, parent_onnx, manifest, data_yaml)
    progress("evaluate regression", 5, steps)
    new_reg = evaluate(trained.onnx_path, reg_yaml, "val")
    parent_reg = evaluate(parent_onnx, reg_yaml, "val")

    # The val split's other objects are the parent's own pseudo-labels: scored on them the parent matches
    # itself. The gate's val comparison uses only the classes reviewers labelled in val.
    val_classes = reviewed_classes(manifest, "val")
    gate_new_val = restrict_to_classes(new_val, val_classes)
    gate_parent_val = restrict_to_classes(parent_val, val_classes)
    decision = decide(
        new_val=gate_new_val,
        active_val=gate_parent_val,
        new_regression=new_reg,
        active_regression=parent_reg,
        max_class_drop_ap50=options.max_class_drop_ap50,
        min_val_gain_map50=options.min_val_gain_map50,
    )
    metrics = {
        "val": _slim(new_val),
        "regression": _slim(new_reg),
        "parent": {"version": parent_version, "val": _slim(parent_val), "regression": _slim(parent_reg)},
        "val_dataset": dataset_version,
        "real_frames": real_frames,
        "val_gate": {
            "classes": sorted(val_classes),
            "map50": gate_new_val.get("map50"),
            "parent_map50": gate_parent_val.get("map50"),
        },
        "training": {
            "recipe": options.recipe,
            "epochs": (trained.card.training or {}).get("epochs"),
            "train_args": {
                k: v
                for k, v in ((trained.card.recipe or {}).get("train_args") or {}).items()
                if k in RECORDED_TRAIN_ARGS
            },
        },
        "regression_set": {
            "data": str(reg_yaml),
            "seed": options.regression_seed,
            "count": options.regression_count,
        },
    }
    training = trained.card.training or {}
    progress("register", 6, steps)
    with sessions() as s:
        mv = registry.register(
            s,
            onnx_path=trained.onnx_path,
            weights_path=trained.pt_path,
            parent=parent_version,
            camera_group=group,
            dataset_version=dataset_version,
            classes=trained.card.classes,
            metrics=metrics,
            gate={**decision.to_json(), "decided_at": dt.datetime.now(dt.UTC).isoformat()},
            training_time_s=float(training.get("time_s", 0.0)),
            hardware=hardware_summary(training.get("hardware")),
            version=version,
            settings=settings,
        )
        promoted = False
        if decision.promote and options.promote:
            current = registry.active_for_group(s, group)
            if current is not None and current.version != parent_version:
                # someone promoted another model while we trained: our comparison is stale
                gate = dict(mv.gate)
                gate["reason"] += f"; not promoted: active model changed to {current.version} during training"
                mv.gate = gate
            else:
                registry.promote(s, version, group, actor=options.actor, reason=decision.reason)
                promoted = True
        s.commit()
    progress("done", steps, steps)
    log.info("retrain %s: %s", version, decision.reason)
    return RetrainResult(
        version=version,
        parent=parent_version,
        dataset_version=dataset_version,
        gate=decision,
        promoted=promoted,
        metrics=metrics,
        training_time_s=float(training.get("time_s", 0.0)),
        onnx_path=str(trained.onnx_path),
    )


def _slim(report: dict[str, Any]) -> dict[str, Any]:
    """What the registry keeps of an evaluation: overall and per-class AP/precision/recall."""
    keep = ("map50", "map50_95", "precision", "recall", "images", "instances")
    out = {k: report.get(k) for k in keep if k in report}
    out["per_class"] = {
        name: {k: row.get(k) for k in ("ap50", "ap50_95", "precision", "recall", "instances") if k in row}
        for name, row in (report.get("per_class") or {}).items()
    }
    return out
