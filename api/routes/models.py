"""Model registry: versions, the active model per camera group, promote and roll back (admin)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query

from api.deps import AdminUser, SessionDep, WorkerOrReader
from api.schemas.common import AUTH_ERRORS, errors
from api.schemas.models import (
    ActiveModelPublic,
    ActiveModelsPublic,
    ModelReportPublic,
    ModelVersionPublic,
    ModelVersionsPublic,
    PromoteIn,
)
from api.services.audit import actor_of
from urbaneye import registry
from urbaneye.model_report import model_report

router = APIRouter(prefix="/models", tags=["models"], responses=AUTH_ERRORS)


def _http(exc: registry.RegistryError) -> HTTPException:
    return HTTPException(404 if isinstance(exc, registry.ModelNotFound) else 409, str(exc))


@router.get("", response_model=ModelVersionsPublic)
def list_models(
    session: SessionDep,
    _: WorkerOrReader,
    camera_group: Annotated[str | None, Query(max_length=64)] = None,
    status: Annotated[
        str | None, Query(max_length=16, description="active | candidate | shadow | retired")
    ] = None,
) -> ModelVersionsPublic:
    rows = registry.list_versions(session, camera_group, status)
    return ModelVersionsPublic(data=[ModelVersionPublic.model_validate(r) for r in rows], count=len(rows))


@router.get("/active", response_model=ActiveModelsPublic)
def list_active(session: SessionDep, _: WorkerOrReader) -> ActiveModelsPublic:
    rows = registry.active_models(session)
    return ActiveModelsPublic(data=[ActiveModelPublic.model_validate(r) for r in rows], count=len(rows))


@router.get("/{version}", response_model=ModelVersionPublic, responses=errors(404))
def get_model(version: str, session: SessionDep, _: WorkerOrReader) -> ModelVersionPublic:
    try:
        return ModelVersionPublic.model_validate(registry.get_version(session, version))
    except registry.ModelNotFound as exc:
        raise _http(exc) from None


@router.get("/{version}/report", response_model=ModelReportPublic, responses=errors(404))
def report_model(version: str, session: SessionDep, _: WorkerOrReader) -> ModelReportPublic:
    """Reviewer verdicts on the cases this model produced, per violation kind and per camera."""
    try:
        return ModelReportPublic.model_validate(model_report(session, version).to_json())
    except registry.ModelNotFound as exc:
        raise _http(exc) from None


@router.post("/{version}/promote", response_model=ActiveModelPublic, responses=errors(404, 409))
def promote_model(version: str, body: PromoteIn, session: SessionDep, admin: AdminUser) -> ActiveModelPublic:
    """Make a version the active model of a camera group; workers hot-reload it (409 if already active).

    A version whose promotion gate failed is refused (409) unless ``force`` is true; the forced promotion
    and the gate's reason are written to the audit log.
    """
    try:
        active = registry.promote(
            session, version, body.camera_group, actor=actor_of(admin), force=body.force
        )
    except registry.RegistryError as exc:
        session.rollback()
        raise _http(exc) from None
    session.commit()
    return ActiveModelPublic.model_validate(active)


@router.post("/active/{camera_group}/rollback", response_model=ActiveModelPublic, responses=errors(404, 409))
def rollback_model(camera_group: str, session: SessionDep, admin: AdminUser) -> ActiveModelPublic:
    """Re-activate the model that was active before the current one of this camera group.

    The rolled-back model is retired and never returned to by a later rollback (409 when nothing is left).
    """
    try:
        active = registry.rollback(session, camera_group, actor=actor_of(admin))
    except registry.RegistryError as exc:
        session.rollback()
        raise _http(exc) from None
    session.commit()
    return ActiveModelPublic.model_validate(active)
