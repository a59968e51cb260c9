"""Precision variants in the model registry: register an int8 model, and pick what a worker runs.

An int8 model quantised from an fp32 version (``urbaneye quantize``) is a ``ModelVersion`` of its own: its
``parent`` is the fp32 version and its ``gate`` is the int8 gate's decision against that parent (at most
0.5 pt mAP50 and 1 pt AP50 per class lost, ``models.gate.decide_int8``), so ``registry.promote`` refuses
a variant that failed like any other model. A ``model_variants`` row marks it as the int8 variant.

``resolve_precision`` is the one rule for what runs: per camera group ``model.precision`` is ``fp32``
(the fp32 model, even when an int8 variant was promoted), ``int8`` (the newest int8 variant that passed
its gate, else fp32 with a warning) or ``auto`` (int8 as for ``int8`` where the detector runs on the CPU,
fp32 on an accelerator; no warning when there is no variant).

The shipped bootstrap model has a shipped int8 variant (``models/bootstrap/urbaneye-bootstrap.int8.onnx``
and its card); ``ensure_shipped_int8`` registers it as ``bootstrap-<sha12>-int8`` with the gate recorded
in its card.
"""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from urbaneye.db.model_variants import ModelVariant
from urbaneye.db.models import ModelVersion
from urbaneye.model_card import ModelCard, int8_card_path
from urbaneye.registry import (
    CANDIDATE,
    CLASS_MAP_KEY,
    RegistryError,
    bootstrap_version,
    gate_failure,
    get_version,
    register,
)
from urbaneye.settings import Settings, get_settings

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "int8", "fp32")


def int8_sibling(fp32_path: str | Path) -> Path:
    """Where the int8 variant of a model file is shipped: ``m.onnx`` -> ``m.int8.onnx``."""
    return Path(fp32_path).with_suffix(".int8.onnx")


def shipped_int8_passed(fp32_path: str | Path) -> Path | None:
    """The int8 sibling of ``fp32_path`` if it exists, its card names that very file as parent and the
    int8 gate passed; else None. For workers without a registry (``--model``, replay, no database).

    Example:
        >>> shipped_int8_passed("models/bootstrap/urbaneye-bootstrap.onnx").name  # doctest: +SKIP
        'urbaneye-bootstrap.int8.onnx'
    """
    from vision.digest import sha256_file

    path = int8_sibling(fp32_path)
    card_path = int8_card_path(path)
    if not (path.is_file() and card_path.is_file() and Path(fp32_path).is_file()):
        return None
    q = ModelCard.load(card_path).quantization
    if q is None or not q.passed or q.parent_sha256 != sha256_file(fp32_path):
        return None
    return path


def register_int8(
    session: Session,
    *,
    onnx_path: str | Path,
    fp32_version: str,
    card: ModelCard,
    version: str | None = None,
    settings: Settings | None = None,
    actor: str = "system:registry",
) -> ModelVersion:
    """Register an int8 model as a candidate variant of ``fp32_version``; returns its version row.

    ``card`` is the int8 card (``urbaneye quantize`` writes it); its ``quantization.gate`` becomes the
    version's gate (a variant never measured gets a failed gate). Raises ``RegistryError`` if the card is
    not an int8 card or the model was quantised from another file than ``fp32_version``'s.
    """
    q = card.quantization
    if card.precision != "int8" or q is None:
        raise RegistryError(f"card of {onnx_path} is not an int8 card; quantise with `urbaneye quantize`")
    parent = get_version(session, fp32_version)
    if session.get(ModelVariant, fp32_version) is not None:
        raise RegistryError(f"{fp32_version!r} is itself an int8 variant; register against its fp32 parent")
    if q.parent_sha256 != parent.sha256:
        raise RegistryError(
            f"{onnx_path} was quantised from sha256 {q.parent_sha256[:12]}…, not from {fp32_version!r} "
            f"({parent.sha256[:12]}…); quantise that version's ONNX"
        )
    unmeasured = {
        "decision": CANDIDATE,
        "promote": False,
        "reason": "int8 never measured against its fp32 parent; quantise with --data to run the gate",
    }
    metrics = {k: v for k, v in (parent.metrics or {}).items() if k == CLASS_MAP_KEY}
    mv = register(
        session,
        onnx_path=onnx_path,
        parent=fp32_version,
        camera_group=parent.camera_group,
        dataset_version=parent.dataset_version,
        classes=parent.classes,
        metrics={**metrics, "int8": q.accuracy},
        gate=q.gate or unmeasured,
        hardware=parent.hardware,
        version=version or f"{fp32_version[:59]}-int8",
        settings=settings,
        actor=actor,
    )
    session.add(
        ModelVariant(
            version=mv.version,
            precision="int8",
            fp32_version=fp32_version,
            calibration=q.calibration,
            comparison=q.accuracy,
        )
    )
    session.flush()
    return mv


def ensure_shipped_int8(session: Session, fp32: ModelVersion, settings: Settings | None = None) -> None:
    """Register the shipped int8 model as the variant of the shipped bootstrap version ``fp32``, once.

    Does nothing for other versions, or when the int8 file or its card is not shipped.
    """
    settings = settings or get_settings()
    shipped = Path(settings.model_path)
    int8_path = int8_sibling(shipped)
    if fp32.version != bootstrap_version(fp32.sha256) or not int8_card_path(int8_path).is_file():
        return
    version = f"{fp32.version}-int8"
    if session.get(ModelVersion, version) is not None or not int8_path.is_file():
        return
    card = ModelCard.load(int8_card_path(int8_path))
    if card.quantization is None or card.quantization.parent_sha256 != fp32.sha256:
        return  # shipped int8 belongs to another fp32 file
    register_int8(session, onnx_path=int8_path, fp32_version=fp32.version, card=card, version=version)


def variant_of(session: Session, version: str) -> ModelVariant | None:
    """The ``model_variants`` row of ``version`` (None for an fp32 model)."""
    return session.get(ModelVariant, version)


def int8_variant(session: Session, fp32_version: str) -> ModelVersion | None:
    """The newest int8 variant of ``fp32_version`` whose int8 gate passed, or None."""
    rows = session.scalars(
        select(ModelVersion)
        .join(ModelVariant, ModelVariant.version == ModelVersion.version)
        .where(ModelVariant.fp32_version == fp32_version, ModelVariant.precision == "int8")
        .order_by(ModelVersion.created_at.desc(), ModelVersion.version.desc())
    )
    for mv in rows:
        if gate_failure(mv) is None and (mv.gate or {}).get("promote") is True:
            return mv
    return None


def resolve_precision(session: Session, mv: ModelVersion, precision: str, *, on_cpu: bool) -> ModelVersion:
    """The version a worker should run for the active version ``mv`` under ``model.precision``.

    May register the shipped int8 model (``ensure_shipped_int8``): the caller commits the session.

    Example:
        >>> resolve_precision(session, get_version(session, "bootstrap-3abb1cd1bd0c"), "auto", on_cpu=True)
        <ModelVersion bootstrap-3abb1cd1bd0c-int8>  # doctest: +SKIP
    """
    if precision not in PRECISIONS:
        raise ValueError(f"model.precision {precision!r} is not one of {PRECISIONS}")
    variant = variant_of(session, mv.version)
    fp32 = get_version(session, variant.fp32_version) if variant else mv
    if precision == "fp32" or (precision == "auto" and not on_cpu):
        return fp32
    ensure_shipped_int8(session, fp32)
    chosen = int8_variant(session, fp32.version)
    if chosen is None and precision == "int8":
        log.warning("model %s has no int8 variant that passed its gate; running fp32", fp32.version)
    return chosen or fp32
