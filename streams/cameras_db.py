"""Cameras and zones in the database: the live source of what stream workers run.

The ``cameras`` / ``zones`` tables are what the API's camera pages and zone editor write. A worker:

1. **seeds** them from the cameras file at start (``CameraRegistry.seed``): a camera the database does not
   know yet is inserted with its zones; a camera it knows is left as the database has it (edits made in
   the UI survive restarts), unless ``file_wins`` (``--cameras-file-wins``) makes the file overwrite it,
   zones included;
2. **runs** the database's version of every camera (``load_all``);
3. **polls** a cheap version of each camera every few seconds (``versions``: one row per camera and one
   per zone of the cameras it runs, ids and ``updated_at`` only, no JSON) and reloads only the cameras
   whose version changed (``load``).

A zone row that does not parse (invalid JSON, an invalid polygon) is skipped with an error naming the
camera and the zone; the camera runs its other zones. A camera row that does not validate keeps running
with what it had (``LoadedCamera.config`` is None and ``problems`` says why).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Text, cast, select
from sqlalchemy.exc import IntegrityError

from urbaneye.db.models import Camera, Zone
from vision.config import CameraConfig, CamerasFile, ZoneConfig

log = logging.getLogger(__name__)

#: Per camera: (camera row updated_at, enabled, ((zone row id, updated_at), ...) or None when the zones
#: of that camera are not watched). Compared for equality only, so clock skew between API hosts (an
#: edit stamped earlier than the previous one) still counts as a change.
CameraVersion = tuple[Any, ...]
#: Above this many watched cameras one scan of the zones table beats binding a long IN list.
ZONE_FILTER_MAX = 200


@dataclass(frozen=True)
class LoadedCamera:
    """One camera as the database has it.

    Attributes:
        camera_id: the camera.
        config: the validated camera with its valid zones, or None if the camera row itself is invalid.
        problems: one message per skipped zone (or the camera's own problem), naming camera, zone and fix.
    """

    camera_id: str
    config: CameraConfig | None
    problems: tuple[str, ...] = ()


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
        config = cam.model_dump(mode="json", exclude={"zones"})
        zones = {z.id: z.model_dump(mode="json") for z in cam.zones}
        with self.sessions() as session:
            row = session.get(Camera, cam.id)
            if row is None:
                row = Camera(id=cam.id, name=cam.name, group=cam.group, enabled=cam.enabled, config=config)
                row.zones = [Zone(zone_id=zid, config=data) for zid, data in zones.items()]
                session.add(row)
                session.commit()
                return "inserted"
            if not file_wins:
                return "kept"
            # Write only what differs, so updated_at (what every worker polls) moves only on a change.
            if (row.name, row.group, row.enabled, row.config) != (cam.name, cam.group, cam.enabled, config):
                row.name, row.group, row.enabled, row.config = cam.name, cam.group, cam.enabled, config
            existing = {z.zone_id: z for z in row.zones}
            for zid, z in existing.items():
                if zid not in zones:
                    row.zones.remove(z)
                elif z.config != zones[zid]:
                    z.config = zones[zid]
            for zid, data in zones.items():
                if zid not in existing:
                    row.zones.append(Zone(zone_id=zid, config=data))
            session.commit()
            return "overwritten"

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
                select(Camera.id, Camera.name, Camera.group, Camera.enabled, cast(Camera.config, Text)).where(
                    Camera.id.in_(ids)
                )
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
        for cid, name, group, enabled, raw in cams:
            out[cid] = self._camera(cid, name, group, enabled, raw, zones.get(cid, []))
        return out

    def load_all(self) -> tuple[dict[str, CameraVersion], dict[str, LoadedCamera]]:
        """Every camera with its zones, and the versions they were read at (taken first, so an edit
        racing with this read shows up as a change at the next poll)."""
        with self.sessions() as session:
            ids = list(session.scalars(select(Camera.id)))
        versions = self.versions(zones_of=ids)
        return versions, self.load(versions)

    @staticmethod
    def _camera(
        cid: str, name: str, group: str, enabled: bool, raw: Any, zone_rows: list[tuple[str, Any]]
    ) -> LoadedCamera:
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
            return LoadedCamera(cid, None, (f"camera '{cid}': its config is not valid JSON ({exc}); {fix}",))
        if not isinstance(data, dict):
            return LoadedCamera(cid, None, (f"camera '{cid}': its config is not a JSON object; {fix}",))
        # Columns are what the API edits; the copies inside the JSON follow them.
        data = {**data, "id": cid, "name": name, "group": group, "enabled": bool(enabled), "zones": zones}
        try:
            return LoadedCamera(cid, CameraConfig.model_validate(data), tuple(problems))
        except ValidationError as exc:
            return LoadedCamera(cid, None, (f"camera '{cid}': {_validation_text(exc)}; {fix}", *problems))
