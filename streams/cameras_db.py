"""Register the cameras a worker runs in the ``cameras`` / ``zones`` tables, so the API lists them.

The cameras file is what workers run; at start ``urbaneye run`` and ``urbaneye stream-worker`` write it
into the database (camera settings with their write-only credentials, zones as configured), so the API
shows each camera with its live status and snapshot. Several workers starting at once race harmlessly:
a camera another worker inserted first is simply updated.
"""

from __future__ import annotations

import logging
from typing import Any

from vision.config import CamerasFile

log = logging.getLogger(__name__)


def sync_cameras_to_db(session_factory: Any, cameras_file: CamerasFile) -> int:
    """Upsert every camera of the file and its zones; returns how many cameras were written."""
    from sqlalchemy.exc import IntegrityError

    from urbaneye.db.models import Camera, Zone

    written = 0
    for cam in cameras_file.cameras:
        config = cam.model_dump(mode="json", exclude={"zones"})
        for attempt in range(2):
            try:
                with session_factory() as session:
                    row = session.get(Camera, cam.id)
                    if row is None:
                        row = Camera(id=cam.id)
                        session.add(row)
                    row.name, row.group, row.enabled, row.config = cam.name, cam.group, cam.enabled, config
                    existing = {z.zone_id: z for z in row.zones}
                    for zone in cam.zones:
                        data = zone.model_dump(mode="json")
                        if zone.id in existing:
                            existing[zone.id].config = data
                        else:
                            row.zones.append(Zone(zone_id=zone.id, config=data))
                    session.commit()
                written += 1
                break
            except IntegrityError:  # another worker inserted it between our read and write: update it
                if attempt:
                    log.warning("camera %s not registered in the database (concurrent writes)", cam.id)
    return written
