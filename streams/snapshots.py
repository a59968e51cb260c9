"""Camera snapshots: the latest frame of each camera, now and then, for the camera page and zone editor.

The processing thread offers every processed frame; at most one per ``interval_s`` per camera is JPEG
encoded and queued; a background thread puts it into the evidence store under
``snapshots/<camera_id>/<UTC time>.jpg`` and records the key in the camera's status (``snapshot_key``),
which the API serves with the zones drawn. Keys are timestamped, never overwritten, so write-once (object
lock / WORM) stores accept them; expire the ``snapshots/`` prefix with a bucket lifecycle rule.
"""

from __future__ import annotations

import datetime as dt
import logging
import queue
import threading
import time
from typing import Any

import cv2
import numpy as np

from streams.status import CameraHealth

log = logging.getLogger(__name__)

SNAPSHOT_INTERVAL_S = 300.0
SNAPSHOT_JPEG_QUALITY = 80


def snapshot_key(camera_id: str, at: dt.datetime) -> str:
    """Example: ``snapshot_key("cam-1", dt.datetime(2025, 6, 1, 2, 0, tzinfo=dt.UTC))`` →
    ``'snapshots/cam-1/20250601T020000Z.jpg'``."""
    return f"snapshots/{camera_id}/{at.astimezone(dt.UTC):%Y%m%dT%H%M%SZ}.jpg"


class SnapshotWriter:
    """Encodes and stores camera snapshots off the hot path; never raises into the caller."""

    def __init__(self, store: Any, interval_s: float = SNAPSHOT_INTERVAL_S) -> None:
        self.store = store
        self.interval_s = interval_s
        self._due: dict[str, float] = {}
        self._queue: queue.Queue = queue.Queue(maxsize=8)
        self._thread = threading.Thread(target=self._run, name="snapshots", daemon=True)
        self._failing = False

    def start(self) -> SnapshotWriter:
        self._thread.start()
        return self

    def offer(self, camera_id: str, image: np.ndarray, health: CameraHealth) -> None:
        """Called by the processing thread for each processed frame; cheap unless a snapshot is due."""
        now = time.monotonic()
        if now < self._due.get(camera_id, 0.0):
            return
        self._due[camera_id] = now + self.interval_s
        ok, jpg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, SNAPSHOT_JPEG_QUALITY])
        if not ok:
            return
        try:
            self._queue.put_nowait((camera_id, jpg.tobytes(), dt.datetime.now(dt.UTC), health))
        except queue.Full:  # the store is slow; the next interval tries again
            self._due[camera_id] = now + min(self.interval_s, 10.0)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            camera_id, data, at, health = item
            key = snapshot_key(camera_id, at)
            try:
                self.store.put(key, data, "image/jpeg", {"camera_id": camera_id, "kind": "snapshot"})
            except Exception as exc:  # an evidence store outage costs a stale snapshot only
                if not self._failing:
                    log.warning("camera snapshot not stored (%s); keeping the previous one", exc)
                self._failing = True
                self._due[camera_id] = 0.0  # retry with the next frame once the store is back
                continue
            self._failing = False
            health.snapshot_stored(key)

    def close(self, timeout_s: float = 10.0) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout_s)
