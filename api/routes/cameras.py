"""Cameras, their zones, live status and a snapshot with zones drawn.

Bodies are validated with ``vision.config`` (the same models a cameras file uses) plus the API's size
caps; a source must be a network URL of an allowed scheme (and, in production, inside the camera
networks). RTSP credentials are write-only: stored in ``Camera.config`` for the workers, never returned,
masked in logs; the (masked) source URL is shown to admins only. Rows are read and written only through
``urbaneye.cameras_repo`` (the same mapping the stream workers use). The list also shows the cameras that
cannot run as configured (``CamerasPublic.invalid``): a ``cameras`` row that no longer validates, and an
invalid camera of the cameras file that ``urbaneye run`` set aside and reported only in ``camera_status``.
"""

from __future__ import annotations

import datetime as dt
import logging

from fastapi import APIRouter, HTTPException, Query, Response
from fastapi.exceptions import RequestValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.deps import AdminUser, SessionDep, SettingsDep, StoreDep, WorkerOrReader
from api.schemas.cameras import (
    CameraCreate,
    CameraPublic,
    CamerasPublic,
    CameraStatusPublic,
    InvalidCameraPublic,
    SourcePublic,
    ZoneIn,
    ZonesPublic,
)
from api.schemas.common import AUTH_ERRORS, errors
from api.services.audit import record
from api.services.snapshot import SnapshotError, draw_zones
from urbaneye import cameras_repo
from urbaneye.camera_sources import SourceRefused, check_source_url
from urbaneye.cameras_repo import INVALID_IN_FILE, LoadedCamera
from urbaneye.db.models import CameraStatus, Role, User
from urbaneye.redact import mask_url
from urbaneye.settings import Settings
from vision.config import CameraConfig, ZoneConfig

log = logging.getLogger(__name__)
router = APIRouter(prefix="/cameras", tags=["cameras"], responses=AUTH_ERRORS)


def _camera(session: Session, camera_id: str) -> LoadedCamera:
    """The camera (its zone rows that do not validate logged and skipped, as the workers do), or 404."""
    cam = cameras_repo.get(session, camera_id)
    if cam is None:
        raise HTTPException(404, f"no camera '{camera_id}'; list cameras with GET /api/v1/cameras")
    for problem in cam.problems:
        log.error("%s", problem)
    return cam


def _valid(cam: LoadedCamera) -> CameraConfig:
    """The camera's validated config with its valid zones (in the order workers use), or 409."""
    if cam.config is None:
        raise HTTPException(409, cam.problems[0])
    return cam.config


def _status(camera_id: str, row: CameraStatus | None) -> CameraStatusPublic:
    if row is None:
        return CameraStatusPublic(camera_id=camera_id)
    out = CameraStatusPublic.model_validate(row)
    return out.model_copy(update={"has_snapshot": bool(row.snapshot_key)})


def _public(
    cfg: CameraConfig, updated_at: dt.datetime | None, status: CameraStatus | None, viewer: User
) -> CameraPublic:
    src = cfg.source
    masked = mask_url(src.url)
    return CameraPublic(
        id=cfg.id,
        name=cfg.name,
        group=cfg.group,
        enabled=cfg.enabled,
        detect_fps=cfg.detect_fps,
        timezone=cfg.timezone,
        start_time=cfg.start_time,
        bike_operator_routing=cfg.bike_operator_routing,
        location=cfg.location,
        motion=cfg.motion,
        source=SourcePublic(
            # where a camera is (an address on the city network) is for admins only
            url=masked if viewer.role == Role.ADMIN.value else "",
            has_credentials=bool(src.username or src.password) or masked != src.url,
            loop=src.loop,
            rtsp_transport=src.rtsp_transport,
        ),
        zones=cfg.zones,
        status=_status(cfg.id, status),
        updated_at=updated_at,
    )


def _shown(session: Session, camera_id: str, viewer: User) -> CameraPublic:
    cam = _camera(session, camera_id)
    return _public(_valid(cam), cam.updated_at, session.get(CameraStatus, camera_id), viewer)


def _check_source(body: CameraConfig, settings: Settings) -> None:
    """422 unless the source is an allowed network URL (production: inside the camera networks)."""
    production = settings.environment == "production"
    try:
        check_source_url(
            body.source.url,
            settings.camera_scheme_set(),
            settings.camera_network_list() if production else None,
        )
    except SourceRefused as exc:
        raise RequestValidationError(
            [{"loc": ("body", "source", "url"), "msg": str(exc), "type": "value_error"}]
        ) from None


@router.get("", response_model=CamerasPublic)
def list_cameras(session: SessionDep, user: WorkerOrReader) -> CamerasPublic:
    """The cameras, and under ``invalid`` those that cannot run as configured, with their error."""
    cams = cameras_repo.list_all(session)
    statuses = {s.camera_id: s for s in session.scalars(select(CameraStatus)).all()}
    data, invalid = [], []
    for cam in cams:
        for problem in cam.problems:
            log.error("%s", problem)
        status = statuses.get(cam.camera_id)
        if cam.config is None:
            invalid.append(
                InvalidCameraPublic(
                    id=cam.camera_id,
                    origin="database",
                    error=cam.problems[0],
                    status=_status(cam.camera_id, status),
                )
            )
        else:
            data.append(_public(cam.config, cam.updated_at, status, user))
    known = {cam.camera_id for cam in cams}
    for camera_id, row in sorted(statuses.items()):
        # an invalid camera of the cameras file that no database row describes: only its status tells
        if camera_id not in known and row.error.startswith(INVALID_IN_FILE):
            invalid.append(
                InvalidCameraPublic(
                    id=camera_id, origin="file", error=row.error, status=_status(camera_id, row)
                )
            )
    return CamerasPublic(data=data, count=len(data), invalid=invalid)


@router.post("", response_model=CameraPublic, status_code=201, responses=errors(409))
def create_camera(
    body: CameraCreate, session: SessionDep, settings: SettingsDep, admin: AdminUser
) -> CameraPublic:
    _check_source(body, settings)
    if cameras_repo.get(session, body.id) is not None:
        raise HTTPException(
            409, f"camera '{body.id}' already exists; use PUT /api/v1/cameras/{body.id} to change it"
        )
    cameras_repo.put(session, body)
    record(
        session,
        admin,
        "create",
        "camera",
        body.id,
        {"url": mask_url(body.source.url), "zones": len(body.zones)},
    )
    session.commit()
    log.info("camera %s created by %s (source %s)", body.id, admin.username, mask_url(body.source.url))
    return _shown(session, body.id, admin)


@router.get("/{camera_id}", response_model=CameraPublic, responses=errors(404, 409))
def get_camera(camera_id: str, session: SessionDep, user: WorkerOrReader) -> CameraPublic:
    """The camera; 409 with the error if its stored config no longer validates (fix it with PUT)."""
    return _shown(session, camera_id, user)


@router.put("/{camera_id}", response_model=CameraPublic, responses=errors(404))
def replace_camera(
    camera_id: str, body: CameraCreate, session: SessionDep, settings: SettingsDep, admin: AdminUser
) -> CameraPublic:
    """Replace a camera's settings. Omitted ``source.username``/``password`` keep the stored ones (send ""
    to clear). Zones in the body are created or replaced; an empty list leaves the zones unchanged."""
    if body.id != camera_id:
        raise RequestValidationError(
            [
                {
                    "loc": ("body", "id"),
                    "msg": f"body id '{body.id}' differs from the path '{camera_id}'; "
                    "camera ids cannot change, create a new camera instead",
                    "type": "value_error",
                }
            ]
        )
    _check_source(body, settings)
    _camera(session, camera_id)
    cameras_repo.put(session, body, keep_credentials=True)
    record(session, admin, "update", "camera", camera_id, {"url": mask_url(body.source.url)})
    session.commit()
    log.info("camera %s updated by %s (source %s)", camera_id, admin.username, mask_url(body.source.url))
    return _shown(session, camera_id, admin)


@router.delete("/{camera_id}", status_code=204, responses=errors(404))
def delete_camera(camera_id: str, session: SessionDep, admin: AdminUser) -> Response:
    _camera(session, camera_id)
    cameras_repo.delete(session, camera_id)
    record(session, admin, "delete", "camera", camera_id, {})
    session.commit()
    return Response(status_code=204)


@router.get("/{camera_id}/status", response_model=CameraStatusPublic, responses=errors(404))
def camera_status(camera_id: str, session: SessionDep, _: WorkerOrReader) -> CameraStatusPublic:
    _camera(session, camera_id)
    return _status(camera_id, session.get(CameraStatus, camera_id))


@router.get(
    "/{camera_id}/snapshot",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}, "description": "JPEG snapshot"}, **errors(404, 409, 503)},
)
def camera_snapshot(
    camera_id: str,
    session: SessionDep,
    store: StoreDep,
    _: WorkerOrReader,
    zones: bool = Query(True, description="draw the zones on the image"),
) -> Response:
    """The latest frame the worker kept (``CameraStatus.snapshot_key``), with zones drawn unless zones=false."""
    cfg = _valid(_camera(session, camera_id))
    status = session.get(CameraStatus, camera_id)
    if status is None or not status.snapshot_key:
        raise HTTPException(
            404, f"camera '{camera_id}' has no snapshot yet; its stream worker stores one when online"
        )
    try:
        jpeg = store.get(status.snapshot_key)
    except Exception as exc:  # the store is an external system; name it and the key
        log.warning("snapshot %s of camera %s unavailable: %s", status.snapshot_key, camera_id, exc)
        raise HTTPException(
            503, f"snapshot '{status.snapshot_key}' could not be read from the evidence store"
        ) from None
    if zones:
        try:
            jpeg = draw_zones(jpeg, cfg.zones)
        except SnapshotError as exc:
            raise HTTPException(503, str(exc)) from None
    return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-store"})


@router.get("/{camera_id}/zones", response_model=ZonesPublic, responses=errors(404, 409))
def list_zones(camera_id: str, session: SessionDep, _: WorkerOrReader) -> ZonesPublic:
    zones = _valid(_camera(session, camera_id)).zones
    return ZonesPublic(data=zones, count=len(zones))


@router.put("/{camera_id}/zones/{zone_id}", response_model=ZoneConfig, responses=errors(404))
def put_zone(camera_id: str, zone_id: str, body: ZoneIn, session: SessionDep, admin: AdminUser) -> ZoneConfig:
    """Create or replace a zone. The polygon is checked like a cameras file: 3+ points in [0,1], non-zero
    area, no self-intersection; a 422 names the zone and the fix."""
    if body.id != zone_id:
        raise RequestValidationError(
            [
                {
                    "loc": ("body", "id"),
                    "msg": f"zone id '{body.id}' differs from the path '{zone_id}'; send the same id in both",
                    "type": "value_error",
                }
            ]
        )
    _camera(session, camera_id)
    cameras_repo.put_zone(session, camera_id, body)
    record(
        session,
        admin,
        "put_zone",
        "zone",
        f"{camera_id}/{zone_id}",
        {"kind": body.kind.value, "points": len(body.polygon)},
    )
    session.commit()
    return body


@router.delete("/{camera_id}/zones/{zone_id}", status_code=204, responses=errors(404))
def delete_zone(camera_id: str, zone_id: str, session: SessionDep, admin: AdminUser) -> Response:
    _camera(session, camera_id)
    if not cameras_repo.delete_zone(session, camera_id, zone_id):
        raise HTTPException(404, f"camera '{camera_id}' has no zone '{zone_id}'")
    record(session, admin, "delete_zone", "zone", f"{camera_id}/{zone_id}", {})
    session.commit()
    return Response(status_code=204)
