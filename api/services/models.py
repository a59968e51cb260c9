"""Model registry operations the API needs, over the ``model_versions`` / ``active_models`` tables.

Contract (the retraining area's ``models/registry.py`` may replace this module with the same functions):

    list_versions(session, camera_group=None, status=None) -> list[ModelVersion]   # newest first
    get_version(session, version) -> ModelVersion                                   # ModelNotFound
    active_models(session) -> list[ActiveModel]
    promote(session, version, camera_group, actor) -> ActiveModel                   # ModelNotFound
    rollback(session, camera_group, actor) -> ActiveModel                           # ModelNotFound, ModelConflict

Functions flush but do not commit; the caller commits. Each promote/rollback appends an audit row
(entity ``model``, detail ``{camera_group, version, previous}``); rollback walks that history back:
it re-activates the version that was active before the current one was promoted (else its ``parent``).
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from urbaneye.db.models import ActiveModel, AuditLog, ModelVersion, utcnow


class ModelNotFound(LookupError):
    pass


class ModelConflict(ValueError):
    pass


def list_versions(
    session: Session, camera_group: str | None = None, status: str | None = None
) -> list[ModelVersion]:
    q = select(ModelVersion).order_by(ModelVersion.created_at.desc(), ModelVersion.version)
    if camera_group:
        q = q.where(ModelVersion.camera_group == camera_group)
    if status:
        q = q.where(ModelVersion.status == status)
    return list(session.scalars(q))


def get_version(session: Session, version: str) -> ModelVersion:
    mv = session.get(ModelVersion, version)
    if mv is None:
        raise ModelNotFound(f"no model version '{version}'; list versions with GET /api/v1/models")
    return mv


def active_models(session: Session) -> list[ActiveModel]:
    return list(session.scalars(select(ActiveModel).order_by(ActiveModel.camera_group)))


def _activate(
    session: Session, target: ModelVersion, camera_group: str, actor: str, action: str
) -> ActiveModel:
    from urbaneye.audit import append_audit

    active = session.get(ActiveModel, camera_group)
    previous = active.version if active else None
    if active is None:
        active = ActiveModel(camera_group=camera_group, version=target.version, shadow_cameras=[])
        session.add(active)
    else:
        active.version = target.version
        if active.shadow_version == target.version:
            active.shadow_version, active.shadow_cameras = None, []
    session.flush()
    if previous and previous != target.version:
        still_active = session.scalar(select(ActiveModel).where(ActiveModel.version == previous))
        old = session.get(ModelVersion, previous)
        if old is not None and still_active is None:
            old.status = "retired"
    target.status = "active"
    target.promoted_at = utcnow()
    append_audit(
        session,
        actor,
        action,
        "model",
        target.version,
        previous or "",
        target.version,
        {"camera_group": camera_group, "version": target.version, "previous": previous},
    )
    session.flush()
    return active


def promote(session: Session, version: str, camera_group: str | None, actor: str) -> ActiveModel:
    """Make ``version`` the active model of ``camera_group`` (default: the version's own group)."""
    target = get_version(session, version)
    return _activate(session, target, camera_group or target.camera_group, actor, "promote")


def rollback(session: Session, camera_group: str, actor: str) -> ActiveModel:
    """Re-activate the version that was active before the current one of ``camera_group``."""
    active = session.get(ActiveModel, camera_group)
    if active is None:
        raise ModelNotFound(f"camera group '{camera_group}' has no active model; promote one first")
    previous = None
    promotions = session.scalars(
        select(AuditLog)
        .where(AuditLog.entity == "model", AuditLog.action == "promote")
        .order_by(AuditLog.id.desc())
    )
    for row in promotions:
        detail = row.detail or {}
        if detail.get("camera_group") == camera_group and detail.get("version") == active.version:
            previous = detail.get("previous")
            break
    if previous is None:
        previous = get_version(session, active.version).parent
    if not previous or previous == active.version:
        raise ModelConflict(
            f"camera group '{camera_group}' has no earlier model to roll back to; promote a version instead"
        )
    return _activate(session, get_version(session, previous), camera_group, actor, "rollback")
