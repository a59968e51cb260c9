"""The camera repository: ``cameras`` / ``zones`` rows <-> ``vision.config.CameraConfig``, in one place.

The API's camera routes and the stream workers both read and write cameras only through this module, so
a row is mapped to a config (and back) once. Source of truth: the ``cameras.config`` JSON holds the
camera's settings without its zones (zones live in their own rows); ``name``, ``group`` and ``enabled``
are also columns (the API filters and the workers poll ``enabled`` without reading the JSON). Those three
columns win on read, and every write (``put``, ``seed``) sets the columns and the JSON copies from the
same ``CameraConfig``, so they never disagree.

For a request (one session): ``get``, ``list_all``, ``put``, ``put_zone``, ``delete``, ``delete_zone``.
For the workers (a session factory): ``CameraRegistry``. A worker:

1. **seeds** the tables from the cameras file at start (``CameraRegistry.seed``): a camera the database
   does not know yet is inserted with its zones; a camera it knows is left as the database has it (edits
   made in the UI survive restarts), unless ``file_wins`` (``--cameras-file-wins``) makes the file
   overwrite it, zones included;
2. **runs** the database's version of every camera (``load_all``);
3. **polls** a cheap version of each camera every few seconds (``versions``: one row per camera and one
   per zone of the cameras it runs, ids and ``updated_at`` only, no JSON) and reloads only the cameras
   whose version changed (``load``).

A zone row that does not parse (invalid JSON, an invalid polygon) is skipped with an error naming the
camera and the zone; the camera runs its other zones. A camera row that does not validate keeps running
with what it had (``LoadedCamera.config`` is None and ``problems`` says why).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Text, cast, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from urbaneye.db.models import Camera, Zone
from vision.config import CameraConfig, CamerasFile, ZoneConfig

log = logging.getLogger(__name__)

#: Per camera: (camera row updated_at, enabled, ((zone row id, updated_at), ...) or None when the zones
#: of that camera are not watched). Compared for equality only, so clock skew between API hosts (an
#: edit stamped earlier than the previous one) still counts as a change.
CameraVersion = tuple[Any, ...]
#: Above this many watched cameras one scan of the zones table beats binding a long IN list.
ZONE_FILTER_MAX = 200
#: How ``urbaneye run`` starts the status error of a camera the cameras file holds in an invalid state;
#: such a camera may have no ``cameras`` row, and the API lists it from its status.
INVALID_IN_FILE = "invalid in the cameras file"


@dataclass(frozen=True)
class LoadedCamera:
    """One camera as the database has it.

    Attributes:
        camera_id: the camera.
        config: the validated camera with its valid zones, or None if the camera row itself is invalid.
        problems: one message per skipped zone (or the camera's own problem), naming camera, zone and fix.
        updated_at: when the camera row last changed.
    """

    camera_id: str
    config: CameraConfig | None
    problems: tuple[str, ...] = ()
    updated_at: dt.datetime | None = None


@dataclass
class SeedReport:
    inserted: list[str] = field(default_factory=list)
    overwritten: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # known to the database: its version runs


def _validation_text(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)


def _json(value: Any) -> Any:
    """JSON columns are read as text (see ``load``) so one bad row cannot fail the whole query."""
    return json.loads(value) if isinstance(value, str | bytes) else value


def parse_zone(camera_id: str, zone_id: str, raw: Any) -> tuple[ZoneConfig | None, str]:
    """A zone row's config → ``(ZoneConfig, "")`` or ``(None, message naming camera, zone and fix)``."""
    fix = f"fix it in the zone editor (PUT /api/v1/cameras/{camera_id}/zones/{zone_id})"
    try:
        data = _json(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return (
            None,
            f"camera '{camera_id}' zone '{zone_id}' skipped: its config is not valid JSON ({exc}); {fix}",
        )
    if not isinstance(data, dict):
        return None, (
            f"camera '{camera_id}' zone '{zone_id}' skipped: its config is {type(data).__name__}, "
            f"not a JSON object; {fix}"
        )
    # The row's zone_id is what the API addresses; the copy inside the JSON cannot disagree with it.
    data = {**data, "id": zone_id}
    try:
        return ZoneConfig.model_validate(data), ""
    except ValidationError as exc:
        return None, f"camera '{camera_id}' zone '{zone_id}' skipped: {_validation_text(exc)}; {fix}"


class CameraRegistry:
    """The ``cameras`` / ``zones`` tables as the workers use them (any SQLAlchemy session factory)."""

    def __init__(self, session_factory: Any) -> None:
        self.sessions = session_factory

    # ------------------------------------------------------------------ seeding
    def seed(self, cameras_file: CamerasFile, *, file_wins: bool = False) -> SeedReport:
        """Insert the file's cameras the database does not know; with ``file_wins`` overwrite known ones.

        Several workers seeding at once race harmlessly: a camera another worker inserted first is
        then known (and, with ``file_wins``, overwritten with the same content).
        """
        report = SeedReport()
        for cam in cameras_file.cameras:
            for attempt in range(3):
                try:
                    outcome = self._seed_one(cam, file_wins)
                    getattr(report, outcome).append(cam.id)
                    break
                except IntegrityError:
                    if attempt == 2:
                        log.warning("camera %s not seeded into the database (concurrent writes)", cam.id)
        return report

    def _seed_one(self, cam: CameraConfig, file_wins: bool) -> str:
        with self.sessions() as session:
            known = session.get(Camera, cam.id) is not None
            if known and not file_wins:
                return "kept"
            put(session, cam, prune_zones=True)
            session.commit()
            return "overwritten" if known else "inserted"

    # ------------------------------------------------------------------ polling
    def versions(self, zones_of: Collection[str] = ()) -> dict[str, CameraVersion]:
        """Cheap change detector: every camera's row version, plus its zone rows for ``zones_of``.

        Reads ids and timestamps only (no JSON). A zone added, edited or deleted changes the version of
        its camera; so does any edit of the camera row (enabled, source, detect_fps …).
        """
        watched = set(zones_of)
        with self.sessions() as session:
            cams = session.execute(select(Camera.id, Camera.updated_at, Camera.enabled)).all()
            query = select(Zone.camera_id, Zone.id, Zone.updated_at)
            if len(watched) <= ZONE_FILTER_MAX:
                query = query.where(Zone.camera_id.in_(sorted(watched)))
            rows = session.execute(query).all() if watched else []
        zones: dict[str, list[tuple[int, Any]]] = {}
        for camera_id, row_id, updated in rows:
            if camera_id in watched:
                zones.setdefault(camera_id, []).append((row_id, updated))
        return {
            cid: (
                updated,
                bool(enabled),
                tuple(sorted(zones.get(cid, ()))) if cid in watched else None,
            )
            for cid, updated, enabled in cams
        }

    def load(self, camera_ids: Iterable[str]) -> dict[str, LoadedCamera]:
        """The cameras as the database has them (missing ids are absent from the result)."""
        ids = sorted(set(camera_ids))
        if not ids:
            return {}
        with self.sessions() as session:
            cams = session.execute(
                select(
                    Camera.id,
                    Camera.name,
                    Camera.group,
                    Camera.enabled,
                    cast(Camera.config, Text),
                    Camera.updated_at,
                ).where(Camera.id.in_(ids))
            ).all()
            # Zone order = insertion order: a seeded camera keeps its file's order (ties between
            # overlapping zones go to the first).
            zone_rows = session.execute(
                select(Zone.camera_id, Zone.zone_id, cast(Zone.config, Text))
                .where(Zone.camera_id.in_(ids))
                .order_by(Zone.id)
            ).all()
        zones: dict[str, list[tuple[str, Any]]] = {}
        for camera_id, zone_id, raw in zone_rows:
            zones.setdefault(camera_id, []).append((zone_id, raw))
        out = {}
        for cid, name, group, enabled, raw, updated_at in cams:
            out[cid] = _camera(cid, name, group, enabled, raw, zones.get(cid, []), updated_at)
        return out

    def load_all(self) -> tuple[dict[str, CameraVersion], dict[str, LoadedCamera]]:
        """Every camera with its zones, and the versions they were read at (taken first, so an edit
        racing with this read shows up as a change at the next poll)."""
        with self.sessions() as session:
            ids = list(session.scalars(select(Camera.id)))
        versions = self.versions(zones_of=ids)
        return versions, self.load(versions)


def _camera(
    cid: str,
    name: str,
    group: str,
    enabled: bool,
    raw: Any,
    zone_rows: list[tuple[str, Any]],
    updated_at: dt.datetime | None,
) -> LoadedCamera:
    """One camera row and its zone rows (in order) -> the camera; the only row-to-config mapping."""
    problems: list[str] = []
    zones: list[ZoneConfig] = []
    for zone_id, zraw in zone_rows:
        zone, problem = parse_zone(cid, zone_id, zraw)
        if zone is None:
            problems.append(problem)
        else:
            zones.append(zone)
    fix = f"fix it with PUT /api/v1/cameras/{cid}"
    try:
        data = _json(raw) or {}
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        problem = f"camera '{cid}': its config is not valid JSON ({exc}); {fix}"
        return LoadedCamera(cid, None, (problem,), updated_at)
    if not isinstance(data, dict):
        return LoadedCamera(
            cid, None, (f"camera '{cid}': its config is not a JSON object; {fix}",), updated_at
        )
    # The columns win over the copies inside the JSON (``put`` writes both from one config).
    data = {**data, "id": cid, "name": name, "group": group, "enabled": bool(enabled), "zones": zones}
    try:
        return LoadedCamera(cid, CameraConfig.model_validate(data), tuple(problems), updated_at)
    except ValidationError as exc:
        problem = f"camera '{cid}': {_validation_text(exc)}; {fix}"
        return LoadedCamera(cid, None, (problem, *problems), updated_at)


def _loaded(row: Camera) -> LoadedCamera:
    zones = [(z.zone_id, z.config) for z in sorted(row.zones, key=lambda z: z.id)]
    return _camera(row.id, row.name, row.group, row.enabled, row.config, zones, row.updated_at)


def _row(session: Session, camera_id: str) -> Camera | None:
    return session.get(Camera, camera_id, options=[selectinload(Camera.zones)])


# ---------------------------------------------------------------------- one session (the API)
def get(session: Session, camera_id: str) -> LoadedCamera | None:
    """The camera as the database has it, or None if there is no such camera."""
    row = _row(session, camera_id)
    return None if row is None else _loaded(row)


def list_all(session: Session) -> list[LoadedCamera]:
    """Every camera, by id."""
    rows = session.scalars(select(Camera).options(selectinload(Camera.zones)).order_by(Camera.id)).all()
    return [_loaded(row) for row in rows]


def _write_zones(row: Camera, zones: Sequence[ZoneConfig], *, prune: bool) -> None:
    wanted = {z.id: z.model_dump(mode="json") for z in zones}
    existing = {z.zone_id: z for z in row.zones}
    for zone_id, zone_row in existing.items():
        if prune and zone_id not in wanted:
            row.zones.remove(zone_row)
    for zone_id, data in wanted.items():
        zone_row = existing.get(zone_id)
        if zone_row is None:
            row.zones.append(Zone(zone_id=zone_id, config=data))
        elif zone_row.config != data:
            zone_row.config = data


def put(
    session: Session, config: CameraConfig, *, prune_zones: bool = False, keep_credentials: bool = False
) -> None:
    """Create or replace a camera; the caller commits (with its audit record).

    The columns and the JSON are both set from ``config``, and only what differs is written, so
    ``updated_at`` (what every worker polls) moves only on a change. The zones in ``config`` are created
    or replaced; ``prune_zones`` deletes the camera's other zones. ``keep_credentials``: a source
    username/password that is None keeps the stored one (the API's write-only credentials).
    """
    row = _row(session, config.id)
    if row is None:
        row = Camera(id=config.id, zones=[])
        session.add(row)
    elif keep_credentials:
        previous = _loaded(row).config
        if previous is not None:
            kept = {
                key: getattr(previous.source, key)
                for key in ("username", "password")
                if getattr(config.source, key) is None and getattr(previous.source, key)
            }
            config = config.model_copy(update={"source": config.source.model_copy(update=kept)})
    data = config.model_dump(mode="json", exclude={"zones"})
    if (row.name, row.group, row.enabled, row.config) != (config.name, config.group, config.enabled, data):
        row.name, row.group, row.enabled, row.config = config.name, config.group, config.enabled, data
    _write_zones(row, config.zones, prune=prune_zones)


def put_zone(session: Session, camera_id: str, zone: ZoneConfig) -> bool:
    """Create or replace one zone of a camera (the caller commits); False if there is no such camera."""
    row = _row(session, camera_id)
    if row is None:
        return False
    _write_zones(row, [zone], prune=False)
    return True


def delete(session: Session, camera_id: str) -> bool:
    """Delete a camera and its zones (the caller commits); False if there is no such camera."""
    row = _row(session, camera_id)
    if row is None:
        return False
    session.delete(row)
    return True


def delete_zone(session: Session, camera_id: str, zone_id: str) -> bool:
    """Delete one zone (the caller commits); False if the camera has no such zone."""
    row = _row(session, camera_id)
    zone_row = None if row is None else next((z for z in row.zones if z.zone_id == zone_id), None)
    if row is None or zone_row is None:
        return False
    row.zones.remove(zone_row)
    return True
