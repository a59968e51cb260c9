"""Model registry: every model version, which one is active per camera group, shadows and rollbacks.

Tables: ``ModelVersion`` (one row per trained model, with metrics, gate decision, sha256, parent, dataset
version), ``ActiveModel`` (per camera group: active version + optional shadow version and cameras; stream
workers poll it through ``urbaneye.hot_reload.ModelWatcher``), ``ShadowCount`` (would-be cases of a shadow).

Functions take a SQLAlchemy session and flush, never commit: the caller (API handler, CLI, Celery task)
owns the transaction, so a promotion and its audit row land together or not at all.

Status of a version: ``active`` (active in some group), ``shadow`` (shadow in some group), ``candidate``
(never promoted; gate reason in ``gate``), ``retired`` (was active, replaced or rolled back).

Artefacts: ``register`` copies the ONNX (and .pt weights) under ``settings.models_dir/<version>/``; when the
evidence backend is S3 it also uploads them to the datasets bucket under ``models/<version>/`` and records
``s3://bucket/key`` so workers on other machines can fetch them (``fetch_onnx`` checks the sha256).

The shipped bootstrap model is always known: ``ensure_bootstrap`` registers it (as ``bootstrap-<sha12>``)
and makes it the default group's active model while no other model is; the CLI calls it, so on a fresh
database ``urbaneye models list`` shows it. A model imported with a class map (``models.importer``) keeps
the map in ``metrics["class_map"]``; ``class_map_of`` reads it and the hot reload applies it.

A version whose promotion gate decided against it is promoted only with ``force=True`` (an admin's
explicit choice, kept in the audit row and in ``gate["promoted"]``).
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from urbaneye.audit import append_audit
from urbaneye.db.locks import lock_for_transaction
from urbaneye.db.models import ActiveModel, ModelVersion, ShadowCount, utcnow
from urbaneye.model_card import ModelCard, hardware_summary
from urbaneye.settings import Settings, get_settings
from urbaneye.storage import get_store
from vision.digest import sha256_file, sha256_hex

log = logging.getLogger(__name__)

ACTIVE, CANDIDATE, SHADOW, RETIRED = "active", "candidate", "shadow", "retired"
DEFAULT_GROUP = "default"
#: Key of ``ModelVersion.metrics`` holding an imported model's ``{label: kind or None}`` class map.
CLASS_MAP_KEY = "class_map"
#: Arbitrary constant key of the PostgreSQL advisory lock that serialises bootstrap registration.
_BOOTSTRAP_LOCK_KEY = 0x75652D_626F6F74


class RegistryError(ValueError):
    """A registry operation that cannot be done, with a message naming the fix."""


class ModelNotFound(RegistryError, LookupError):
    """No such model version (API: 404)."""


class ModelConflict(RegistryError):
    """The operation conflicts with the registry's state, e.g. nothing to roll back to (API: 409)."""


class GateRefused(ModelConflict):
    """Promoting a version whose gate failed, without ``force`` (API: 409)."""


def make_version(camera_group: str, sha256: str, now: dt.datetime | None = None) -> str:
    """``<group>-<UTC yyyymmdd-HHMMSS>-<sha8>``; unique, sortable by time, at most 64 chars.

    Example:
        >>> make_version("default", "ab" * 32, dt.datetime(2025, 1, 2, 3, 4, 5))
        'default-20250102-030405-abababab'
    """
    now = now or utcnow()
    group = re.sub(r"[^A-Za-z0-9_.\-]", "_", camera_group)[:36]
    return f"{group}-{now:%Y%m%d-%H%M%S}-{sha256[:8]}"


# --------------------------------------------------------------------------------------------- artefacts


def publish_artefact(path: Path, version: str, name: str, settings: Settings) -> str:
    """Copy ``path`` to the registry and return its URI (a local path, or ``s3://bucket/key``)."""
    dest_dir = Path(settings.models_dir) / version
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / name
    if Path(path).resolve() != dest.resolve():
        shutil.copyfile(path, dest)
    if settings.evidence_backend != "s3":
        return str(dest.resolve())
    key = f"models/{version}/{name}"
    content_type = "application/octet-stream"
    # models and datasets share the datasets bucket
    get_store(settings, bucket=settings.s3_datasets_bucket).put(
        key, dest.read_bytes(), content_type, {"version": version}
    )
    return f"s3://{settings.s3_datasets_bucket}/{key}"


def fetch_onnx(uri: str, sha256: str, settings: Settings | None = None) -> Path:
    """A local, sha256-verified copy of a registered ONNX file.

    S3 objects are cached under ``models_dir/cache/<sha256>.onnx`` (written atomically). Raises
    ``RegistryError`` if the bytes do not hash to ``sha256`` (a corrupt or replaced artefact).
    """
    settings = settings or get_settings()
    if uri.startswith("s3://"):
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        cache = Path(settings.models_dir) / "cache" / f"{sha256}.onnx"
        if cache.exists() and sha256_file(cache) == sha256:
            return cache
        data = get_store(settings, bucket=bucket).get(key)
        got = sha256_hex(data)
        if got != sha256:
            raise RegistryError(
                f"model object {uri} has sha256 {got[:12]}…, registry says {sha256[:12]}…; re-register it"
            )
        cache.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache.parent, suffix=".part")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, cache)
        return cache
    path = Path(uri.removeprefix("file://"))
    if not path.exists():
        raise RegistryError(f"model file {path} is missing on this machine; copy it there or use S3 storage")
    got = sha256_file(path)
    if got != sha256:
        raise RegistryError(
            f"model file {path} has sha256 {got[:12]}…, registry says {sha256[:12]}…; re-register it"
        )
    return path


# ---------------------------------------------------------------------------------------------- versions


def register(
    session: Session,
    *,
    onnx_path: str | Path,
    weights_path: str | Path | None = None,
    parent: str | None = None,
    camera_group: str = DEFAULT_GROUP,
    dataset_version: str = "",
    classes: Iterable[str] = (),
    metrics: dict[str, Any] | None = None,
    gate: dict[str, Any] | None = None,
    training_time_s: float = 0.0,
    hardware: str = "",
    version: str | None = None,
    settings: Settings | None = None,
    actor: str = "system:registry",
) -> ModelVersion:
    """Record a new model as a ``candidate``; artefacts are copied into the registry storage.

    Example:
        >>> mv = register(session, onnx_path="runs/x/best.onnx", parent="default-2025…", classes=["person", …])
    """
    settings = settings or get_settings()
    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise RegistryError(f"ONNX file {onnx_path} does not exist; export the model first")
    sha = sha256_file(onnx_path)
    version = version or make_version(camera_group, sha)
    if session.get(ModelVersion, version) is not None:
        raise RegistryError(f"model version {version!r} is already registered; pick another version name")
    if parent is not None and session.get(ModelVersion, parent) is None:
        raise RegistryError(f"parent model {parent!r} is not in the registry; register it first")
    onnx_uri = publish_artefact(onnx_path, version, "model.onnx", settings)
    weights_uri = ""
    if weights_path:
        weights_uri = publish_artefact(Path(weights_path), version, "model.pt", settings)
    mv = ModelVersion(
        version=version,
        parent=parent,
        status=CANDIDATE,
        camera_group=camera_group,
        dataset_version=dataset_version,
        onnx_uri=onnx_uri,
        weights_uri=weights_uri,
        sha256=sha,
        classes=list(classes),
        metrics=metrics or {},
        gate=gate or {},
        training_time_s=float(training_time_s),
        hardware=hardware[:120],
    )
    session.add(mv)
    session.flush()
    _audit(session, actor, "register", version, "", CANDIDATE, {"parent": parent, "sha256": sha})
    return mv


def get_version(session: Session, version: str) -> ModelVersion:
    mv = session.get(ModelVersion, version)
    if mv is None:
        raise ModelNotFound(f"model version {version!r} is not in the registry; see `urbaneye models list`")
    return mv


def list_versions(
    session: Session, camera_group: str | None = None, status: str | None = None
) -> list[ModelVersion]:
    """All versions, newest first (optionally of one camera group / one status)."""
    stmt = select(ModelVersion).order_by(ModelVersion.created_at.desc(), ModelVersion.version.desc())
    if camera_group:
        stmt = stmt.where(ModelVersion.camera_group == camera_group)
    if status:
        stmt = stmt.where(ModelVersion.status == status)
    return list(session.scalars(stmt))


def active_models(session: Session) -> list[ActiveModel]:
    """Every camera group's active row (version, shadow), by group."""
    return list(session.scalars(select(ActiveModel).order_by(ActiveModel.camera_group)))


def active_for_group(session: Session, camera_group: str = DEFAULT_GROUP) -> ActiveModel | None:
    return session.get(ActiveModel, camera_group)


def active_version(session: Session, camera_group: str = DEFAULT_GROUP) -> ModelVersion | None:
    row = active_for_group(session, camera_group)
    return None if row is None else session.get(ModelVersion, row.version)


def to_json(mv: ModelVersion) -> dict[str, Any]:
    """The registry row as ``urbaneye models list --json`` and the API show it."""
    return {
        "version": mv.version,
        "status": mv.status,
        "camera_group": mv.camera_group,
        "parent": mv.parent,
        "dataset_version": mv.dataset_version,
        "sha256": mv.sha256,
        "onnx_uri": mv.onnx_uri,
        "weights_uri": mv.weights_uri,
        "classes": mv.classes,
        "metrics": mv.metrics,
        "gate": mv.gate,
        "training_time_s": mv.training_time_s,
        "hardware": mv.hardware,
        "created_at": mv.created_at.isoformat() if mv.created_at else None,
        "promoted_at": mv.promoted_at.isoformat() if mv.promoted_at else None,
    }


def class_map_of(mv: ModelVersion) -> dict[str, str | None]:
    """An imported model's ``{label: kind or None}`` class map; ``{}`` for our own models (labels are kinds).

    Example:
        >>> class_map_of(get_version(session, "city-yolo"))["motorcycle"]
        'e_bike'
    """
    recorded = (mv.metrics or {}).get(CLASS_MAP_KEY)
    return dict(recorded) if isinstance(recorded, Mapping) else {}


def gate_failure(mv: ModelVersion) -> str | None:
    """Why the promotion gate kept ``mv`` as a candidate, or None if it passed or never judged it.

    Reads what ``models.gate.GateDecision.to_json`` wrote (``decision``/``promote``/``reason``).
    """
    gate = mv.gate or {}
    if gate.get("decision") == CANDIDATE or gate.get("promote") is False:
        return str(gate.get("reason") or "the gate kept it as a candidate")
    return None


# ------------------------------------------------------------------------------------------- bootstrap


def bootstrap_version(sha256: str) -> str:
    """Registry name of the shipped bootstrap model, e.g. ``bootstrap-3abb1cd1bd0c``."""
    return f"bootstrap-{sha256[:12]}"


@functools.lru_cache(maxsize=4)
def _sha256_cached(path: str, size_bytes: int, mtime_ns: int) -> str:
    # Keyed on size and mtime too: a replaced file is hashed again.
    return sha256_file(path)


def _lock_bootstrap(session: Session) -> None:
    """Serialise the first registration across processes (workers and CLIs starting together)."""
    lock_for_transaction(session, _BOOTSTRAP_LOCK_KEY, "model_versions", "version")


def ensure_bootstrap(
    session: Session, camera_group: str = DEFAULT_GROUP, settings: Settings | None = None
) -> ModelVersion | None:
    """The shipped model (``settings.model_path``) as a registry version, active in ``camera_group`` while
    that group has no other active model. None (and a warning) if the file is missing.

    Idempotent: registered once as ``bootstrap-<sha12>`` with its card's classes and metrics and its .pt
    weights (so it can be fine-tuned), promoted only into a group with no active model.

    Example:
        >>> ensure_bootstrap(session).version
        'bootstrap-3abb1cd1bd0c'
    """
    settings = settings or get_settings()
    onnx = Path(settings.model_path)
    if not onnx.is_file():
        log.warning("bootstrap model %s is missing; the registry cannot list it", onnx)
        return None
    stat = onnx.stat()
    version = bootstrap_version(_sha256_cached(str(onnx.resolve()), stat.st_size, stat.st_mtime_ns))
    if session.get(ModelVersion, version) is not None and active_for_group(session, camera_group):
        return session.get(ModelVersion, version)
    _lock_bootstrap(session)
    mv = session.get(ModelVersion, version)  # again under the lock: another process may have made it
    if mv is None:
        card_path = onnx.parent / "card.json"
        card = ModelCard.load(card_path) if card_path.is_file() else None
        weights = onnx.with_suffix(".pt")
        mv = register(
            session,
            onnx_path=onnx,
            weights_path=weights if weights.is_file() else None,
            camera_group=camera_group,
            classes=card.classes if card else [],
            metrics=card.metrics if card else {},
            training_time_s=float(card.training.get("time_s", 0.0)) if card else 0.0,
            hardware=hardware_summary(card.training.get("hardware")) if card else "",
            version=version,
            settings=settings,
        )
    if active_for_group(session, camera_group) is None:
        promote(
            session, version, camera_group, reason="bootstrap: the shipped model until another is promoted"
        )
    return mv


# ------------------------------------------------------------------------------------ promote / rollback


def promote(
    session: Session,
    version: str,
    camera_group: str | None = None,
    actor: str = "system:registry",
    reason: str = "",
    force: bool = False,
) -> ActiveModel:
    """Make ``version`` the active model of ``camera_group`` (default: the version's own group).

    Workers of that group pick it up on their next poll. A shadow of the same version is cleared.
    A version the promotion gate kept as a candidate needs ``force=True`` (admins only: the API and CLI
    check the role); the forced promotion and the gate's reason are written to the audit log.
    """
    mv = get_version(session, version)
    group = camera_group or mv.camera_group
    failed = gate_failure(mv)
    if failed and not force:
        raise GateRefused(
            f"model {version!r} failed its promotion gate ({failed}); an admin can promote it anyway with "
            'force (`urbaneye models promote --force`, or "force": true in the API)'
        )
    row = session.execute(
        select(ActiveModel).where(ActiveModel.camera_group == group).with_for_update()
    ).scalar()
    previous = None
    if row is None:
        row = ActiveModel(camera_group=group, version=version, shadow_version=None, shadow_cameras=[])
        session.add(row)
    else:
        if row.version == version:
            raise ModelConflict(f"model {version!r} is already active in group {group!r}")
        previous = row.version
        row.version = version
        if row.shadow_version == version:
            row.shadow_version, row.shadow_cameras = None, []
    row.updated_at = utcnow()
    mv.promoted_at = utcnow()
    gate = dict(mv.gate or {})
    gate.pop("rolled_back", None)
    gate["promoted"] = {"at": mv.promoted_at.isoformat(), "group": group, "by": actor, "replaced": previous}
    if reason:
        gate["promoted"]["reason"] = reason
    detail: dict[str, Any] = {"group": group, "reason": reason}
    if failed:
        gate["promoted"]["forced"] = True
        detail.update(forced=True, gate_reason=failed)
    mv.gate = gate
    session.flush()
    _refresh_status(session, version)
    if previous:
        _refresh_status(session, previous)
    _audit(session, actor, "promote", version, previous or "", ACTIVE, detail)
    return row


def rollback(
    session: Session, camera_group: str = DEFAULT_GROUP, actor: str = "system:registry"
) -> ActiveModel:
    """Re-activate the model that was active before the current one in ``camera_group``.

    The rolled-back version is retired and marked so that a later rollback never returns to it.
    """
    row = session.execute(
        select(ActiveModel).where(ActiveModel.camera_group == camera_group).with_for_update()
    ).scalar()
    if row is None:
        raise ModelNotFound(f"camera group {camera_group!r} has no active model; promote one first")
    current = get_version(session, row.version)
    target = _previous_active(session, camera_group, current)
    if target is None:
        raise ModelConflict(
            f"no earlier model was active in group {camera_group!r} before {current.version!r}; "
            "promote a specific version instead"
        )
    row.version = target.version
    row.updated_at = utcnow()
    gate = dict(current.gate or {})
    gate["rolled_back"] = {
        "at": utcnow().isoformat(),
        "group": camera_group,
        "by": actor,
        "to": target.version,
    }
    current.gate = gate
    session.flush()
    _refresh_status(session, current.version)
    _refresh_status(session, target.version)
    _audit(
        session,
        actor,
        "rollback",
        current.version,
        ACTIVE,
        RETIRED,
        {"group": camera_group, "to": target.version},
    )
    return row


def _previous_active(session: Session, camera_group: str, current: ModelVersion) -> ModelVersion | None:
    """The latest version promoted into ``camera_group`` before ``current`` and never rolled back."""
    rows = session.scalars(
        select(ModelVersion)
        .where(ModelVersion.promoted_at.is_not(None), ModelVersion.version != current.version)
        .order_by(ModelVersion.promoted_at.desc())
    )
    for mv in rows:
        promoted = (mv.gate or {}).get("promoted") or {}
        if promoted.get("group", mv.camera_group) != camera_group or (mv.gate or {}).get("rolled_back"):
            continue
        if current.promoted_at is None or mv.promoted_at <= current.promoted_at:
            return mv
    return None


def set_shadow(
    session: Session,
    camera_group: str,
    version: str | None,
    cameras: Iterable[str] = (),
    actor: str = "system:registry",
) -> ActiveModel:
    """Run ``version`` beside the active model on ``cameras`` (``version=None`` stops the shadow).

    Its would-be cases are counted with ``record_shadow_case``, never created.
    """
    row = active_for_group(session, camera_group)
    if row is None:
        raise ModelConflict(
            f"camera group {camera_group!r} has no active model; a shadow needs one to run beside"
        )
    cams = sorted(set(cameras))
    if version is not None:
        get_version(session, version)
        if version == row.version:
            raise ModelConflict(
                f"model {version!r} is already active in {camera_group!r}; shadow another version"
            )
        if not cams:
            raise ModelConflict("a shadow needs at least one camera id; pass the cameras to run it on")
    previous = row.shadow_version
    row.shadow_version, row.shadow_cameras = version, (cams if version else [])
    row.updated_at = utcnow()
    session.flush()
    for v in {previous, version} - {None}:
        _refresh_status(session, v)
    _audit(
        session,
        actor,
        "shadow",
        version or previous or "",
        "",
        SHADOW if version else "",
        {"group": camera_group, "cameras": cams},
    )
    return row


def record_shadow_case(session: Session, version: str, camera_id: str, kind: str, violation_id: str) -> bool:
    """Count one would-be case of a shadow model (idempotent per version and violation). True if new."""
    exists = session.scalar(
        select(ShadowCount.id).where(ShadowCount.version == version, ShadowCount.violation_id == violation_id)
    )
    if exists is not None:
        return False
    session.add(ShadowCount(version=version, camera_id=camera_id, kind=kind, violation_id=violation_id))
    session.flush()
    return True


def shadow_summary(session: Session, version: str) -> dict[str, dict[str, int]]:
    """``{camera_id: {kind: count}}`` of a shadow model's would-be cases."""
    out: dict[str, dict[str, int]] = {}
    rows = session.execute(
        select(ShadowCount.camera_id, ShadowCount.kind, func.count())
        .where(ShadowCount.version == version)
        .group_by(ShadowCount.camera_id, ShadowCount.kind)
    )
    for camera_id, kind, n in rows:
        out.setdefault(camera_id, {})[kind] = int(n)
    return out


def retire(session: Session, version: str, actor: str = "system:registry") -> ModelVersion:
    mv = get_version(session, version)
    if mv.status in (ACTIVE, SHADOW):
        raise ModelConflict(
            f"model {version!r} is {mv.status}; promote another model or stop the shadow first"
        )
    before = mv.status
    mv.status = RETIRED
    session.flush()
    _audit(session, actor, "retire", version, before, RETIRED, {})
    return mv


def _refresh_status(session: Session, version: str) -> None:
    mv = session.get(ModelVersion, version)
    if mv is None:
        return
    if session.scalar(select(func.count()).select_from(ActiveModel).where(ActiveModel.version == version)):
        mv.status = ACTIVE
    elif session.scalar(
        select(func.count()).select_from(ActiveModel).where(ActiveModel.shadow_version == version)
    ):
        mv.status = SHADOW
    elif mv.status in (ACTIVE, SHADOW):
        mv.status = RETIRED if mv.promoted_at is not None else CANDIDATE
    session.flush()


def _audit(
    session: Session,
    actor: str,
    action: str,
    version: str,
    from_status: str,
    to_status: str,
    detail: dict[str, Any],
) -> None:
    append_audit(session, actor, action, "model", version, from_status, to_status, detail)
