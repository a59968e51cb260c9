"""Follow camera and zone edits in the database: which cameras changed since the last poll.

``ConfigWatcher.poll_once`` reads ``CameraRegistry.versions`` (ids and timestamps only) and reloads the
cameras whose version moved; the stream worker polls it from a thread of its own every
``CONFIG_POLL_S`` and applies what comes back between frames (``streams.worker``). A database outage
only delays edits: the cameras keep running what they have.
"""

from __future__ import annotations

import logging
from collections.abc import Collection

from streams.cameras_db import CameraRegistry, CameraVersion, LoadedCamera
from streams.sources import mask_url
from vision.config import CamerasFile

log = logging.getLogger(__name__)

#: How often a worker looks for edits. Each poll is two small indexed queries (no JSON), so a few
#: seconds costs the database little even with many workers; see docs/streams.md for the measurement.
CONFIG_POLL_S = 3.0


class ConfigWatcher:
    """Detects camera/zone edits by version and loads the changed cameras.

    Args:
        registry: the cameras/zones tables.
        baseline: versions of the configs the worker started with (``CameraRegistry.load_all``);
            None = the first poll reloads every camera (the worker ignores what did not change).
        seed_from: a cameras file still to seed into the database (seeding failed at start: the
            worker runs the file until the database can be reached); None = seeded.
        file_wins: seed with the file overwriting the database's version of its cameras.
    """

    def __init__(
        self,
        registry: CameraRegistry,
        baseline: dict[str, CameraVersion] | None = None,
        *,
        seed_from: CamerasFile | None = None,
        file_wins: bool = False,
    ) -> None:
        self.registry = registry
        self._known: dict[str, CameraVersion] = dict(baseline or {})
        self._seed_from = seed_from
        self._file_wins = file_wins
        self._failing = False

    def poll_once(self, running: Collection[str]) -> dict[str, LoadedCamera | None]:
        """Cameras changed since the last poll: id → its new config, or None if deleted.

        ``running``: the cameras whose zones this worker watches (those it runs). Never raises: a
        failed poll logs once and returns nothing; the next one catches up.
        """
        try:
            if self._seed_from is not None:
                report = self.registry.seed(self._seed_from, file_wins=self._file_wins)
                self._seed_from = None
                log.info("cameras seeded into the database: %s new", len(report.inserted))
            changes = self._poll(running)
        except Exception as exc:
            if not self._failing:
                log.warning("camera config not polled (%s); cameras keep their settings", mask_url(str(exc)))
            self._failing = True
            return {}
        if self._failing:
            log.info("camera config polling works again")
            self._failing = False
        return changes

    def _poll(self, running: Collection[str]) -> dict[str, LoadedCamera | None]:
        versions = self.registry.versions(zones_of=running)
        changed = [cid for cid, version in versions.items() if self._known.get(cid) != version]
        out: dict[str, LoadedCamera | None] = {}
        loaded = self.registry.load(changed) if changed else {}
        for cid in changed:
            camera = loaded.get(cid)
            if camera is None:
                continue  # deleted between the two queries: the next poll says so
            self._known[cid] = versions[cid]
            for problem in camera.problems:
                log.error("%s", problem)
            if camera.config is None:
                log.error("camera %s: keeps running its previous settings", cid)
                continue
            out[cid] = camera
        for cid in [c for c in self._known if c not in versions]:
            del self._known[cid]
            out[cid] = None
        return out
