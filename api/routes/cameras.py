"""Cameras, their zones, live status and a snapshot with zones drawn.

Bodies are validated with ``vision.config`` (the same models a cameras file uses) plus the API's size
caps; a source must be a network URL of an allowed scheme (and, in production, inside the camera
networks). RTSP credentials are write-only: stored in ``Camera.config`` for the workers, never returned,
masked in logs; the (masked) source URL is shown to admins only.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, HTTPException, Query, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from api.deps import AdminUser, SessionDep, SettingsDep, StoreDep, WorkerOrReader
from api.schemas.cameras import (
    CameraCreate,
    CameraPublic,
    CamerasPublic,
    CameraStatusPublic,
    SourcePublic,
    ZoneIn,
    ZonesPublic,
)
from api.schemas.common import AUTH_ERRORS, errors
from api.services.audit import record
from api.services.snapshot import SnapshotError, draw_zones
from urbaneye.camera_sources import SourceRefused, check_source_url
from urbaneye.db.models import Camera, CameraStatus, Role, User, Zone
from urbaneye.redact import mask_url
from urbaneye.settings import Settings
from vision.config import CameraConfig, LocationConfig, MotionConfig, ZoneConfig

log = logging.getLogger(__name__)
router = APIRouter(prefix="/cameras", tags=["cameras"], responses=AUTH_ERRORS)


def _camera(session: Session, camera_id: str) -> Camera:
    cam = session.get(Camera, camera_id, options=[selectinload(Camera.zones)])
    if cam is None:
        raise HTTPException(404, f"no camera '{camera_id}'; list cameras with GET /api/v1/cameras")
    return cam


def _zones(cam: Camera) -> list[ZoneConfig]:
    """The camera's valid zones in insertion order (the order workers use); a bad row is logged and
    skipped, as the workers do, so one broken zone never hides the camera."""
    zones = []
    for row in sorted(cam.zones, key=lambda z: z.id):
        try:
            zones.append(ZoneConfig.model_validate(row.config))
        except ValidationError as exc:
            log.error(
                "camera '%s' zone '%s' is invalid and skipped: %s; fix it with PUT "
                "/api/v1/cameras/%s/zones/%s",
                cam.id,
                row.zone_id,
                exc.errors()[0]["msg"],
                cam.id,
                row.zone_id,
            )
    return zones


def _status(camera_id: str, row: CameraStatus | None) -> CameraStatusPublic:
    if row is None:
        return CameraStatusPublic(camera_id=camera_id)
    out = CameraStatusPublic.model_validate(row)
    return out.model_copy(update={"has_snapshot": bool(row.snapshot_key)})


def _public(cam: Camera, status: CameraStatus | None, viewer: User) -> CameraPublic:
    cfg = cam.config or {}
    src = cfg.get("source") or {}
    masked = mask_url(src.get("url", ""))
    return CameraPublic(
        id=cam.id,
        name=cam.name,
        group=cam.group,
        enabled=cam.enabled,
        detect_fps=cfg.get("detect_fps", 5.0),
        timezone=cfg.get("timezone", "Asia/Shanghai"),
        start_time=cfg.get("start_time"),
        bike_operator_routing=cfg.get("bike_operator_routing", False),
        location=LocationConfig.model_validate(cfg.get("location") or {}),
        motion=MotionConfig.model_validate(cfg.get("motion") or {}),
        source=SourcePublic(
            # where a camera is (an address on the city network) is for admins only
            url=masked if viewer.role == Role.ADMIN.value else "",
            has_credentials=bool(src.get("username") or src.get("password")) or masked != src.get("url", ""),
            loop=src.get("loop", False),
            rtsp_transport=src.get("rtsp_transport", "tcp"),
        ),
        zones=_zones(cam),
        status=_status(cam.id, status),
        updated_at=cam.updated_at,
    )


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


def _stored_config(body: CameraConfig, previous: dict | None) -> dict:
    """Camera config as stored: without zones; omitted credentials keep the stored ones (write-only)."""
    cfg = body.model_dump(mode="json", exclude={"zones"})
    old_src = (previous or {}).get("source") or {}
    for key in ("username", "password"):
        if cfg["source"].get(key) is None and old_src.get(key):
            cfg["source"][key] = old_src[key]
    return cfg


def _set_zones(session: Session, cam: Camera, zones: list[ZoneConfig]) -> None:
    by_id = {z.zone_id: z for z in cam.zones}
    for zone in zones:
        row = by_id.get(zone.id)
        if row is None:
            cam.zones.append(Zone(zone_id=zone.id, config=zone.model_dump(mode="json")))
        else:
            row.config = zone.model_dump(mode="json")


@router.get("", response_model=CamerasPublic)
def list_cameras(session: SessionDep, user: WorkerOrReader) -> CamerasPublic:
    cams = session.scalars(select(Camera).options(selectinload(Camera.zones)).order_by(Camera.id)).all()
    statuses = {s.camera_id: s for s in session.scalars(select(CameraStatus)).all()}
    return CamerasPublic(data=[_public(c, statuses.get(c.id), user) for c in cams], count=len(cams))


@router.post("", response_model=CameraPublic, status_code=201, responses=errors(409))
def create_camera(
    body: CameraCreate, session: SessionDep, settings: SettingsDep, admin: AdminUser
) -> CameraPublic:
    _check_source(body, settings)
    if session.get(Camera, body.id) is not None:
        raise HTTPException(
            409, f"camera '{body.id}' already exists; use PUT /api/v1/cameras/{body.id} to change it"
        )
    cam = Camera(
        id=body.id, name=body.name, group=body.group, enabled=body.enabled, config=_stored_config(body, None)
    )
    cam.zones = []
    session.add(cam)
    _set_zones(session, cam, body.zones)
    record(
        session,
        admin,
        "create",
        "camera",
        cam.id,
        {"url": mask_url(body.source.url), "zones": len(body.zones)},
    )
    session.commit()
    log.info("camera %s created by %s (source %s)", cam.id, admin.username, mask_url(body.source.url))
    return _public(cam, session.get(CameraStatus, cam.id), admin)


@router.get("/{camera_id}", response_model=CameraPublic, responses=errors(404))
def get_camera(camera_id: str, session: SessionDep, user: WorkerOrReader) -> CameraPublic:
    return _public(_camera(session, camera_id), session.get(CameraStatus, camera_id), user)


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
    cam = _camera(session, camera_id)
    cam.name, cam.group, cam.enabled = body.name, body.group, body.enabled
    cam.config = _stored_config(body, cam.config)
    _set_zones(session, cam, body.zones)
    record(session, admin, "update", "camera", cam.id, {"url": mask_url(body.source.url)})
    session.commit()
    log.info("camera %s updated by %s (source %s)", cam.id, admin.username, mask_url(body.source.url))
    return _public(cam, session.get(CameraStatus, camera_id), admin)


@router.delete("/{camera_id}", status_code=204, responses=errors(404))
def delete_camera(camera_id: str, session: SessionDep, admin: AdminUser) -> Response:
    cam = _camera(session, camera_id)
    session.delete(cam)
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
    responses={200: {"content": {"image/jpeg": {}}, "description": "JPEG snapshot"}, **errors(404, 503)},
)
def camera_snapshot(
    camera_id: str,
    session: SessionDep,
    store: StoreDep,
    _: WorkerOrReader,
    zones: bool = Query(True, description="draw the zones on the image"),
) -> Response:
    """The latest frame the worker kept (``CameraStatus.snapshot_key``), with zones drawn unless zones=false."""
    cam = _camera(session, camera_id)
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
            jpeg = draw_zones(jpeg, _zones(cam))
        except SnapshotError as exc:
            raise HTTPException(503, str(exc)) from None
    return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-store"})


@router.get("/{camera_id}/zones", response_model=ZonesPublic, responses=errors(404))
def list_zones(camera_id: str, session: SessionDep, _: WorkerOrReader) -> ZonesPublic:
    zones = _zones(_camera(session, camera_id))
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
    cam = _camera(session, camera_id)
    _set_zones(session, cam, [body])
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
    cam = _camera(session, camera_id)
    row = next((z for z in cam.zones if z.zone_id == zone_id), None)
    if row is None:
        raise HTTPException(404, f"camera '{camera_id}' has no zone '{zone_id}'")
    cam.zones.remove(row)
    record(session, admin, "delete_zone", "zone", f"{camera_id}/{zone_id}", {})
    session.commit()
    return Response(status_code=204)
