"""Draw a camera's zones on its latest snapshot (cv2), for the camera page and operators."""

from __future__ import annotations

import cv2
import numpy as np

from vision.config import ZoneConfig, ZoneKind
from vision.geometry import polygon_px_int

#: BGR colour per zone kind: forbidding zones warm, exempt zones green/blue.
ZONE_COLOURS_BGR: dict[ZoneKind, tuple[int, int, int]] = {
    ZoneKind.NO_VENDING: (40, 40, 230),
    ZoneKind.NO_PARKING: (0, 140, 255),
    ZoneKind.MONITORED: (0, 215, 255),
    ZoneKind.ALLOWED_VENDING: (80, 200, 60),
    ZoneKind.BIKE_BAY: (200, 160, 40),
    ZoneKind.BIN_AREA: (160, 120, 160),
}


class SnapshotError(ValueError):
    pass


def draw_zones(jpeg: bytes, zones: list[ZoneConfig], fill_alpha: float = 0.25, quality: int = 85) -> bytes:
    """Return a JPEG of ``jpeg`` with each zone's polygon outlined, lightly filled and labelled by id.

    Example:
        >>> out = draw_zones(snapshot_bytes, [zone])  # doctest: +SKIP
    """
    frame = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    if frame is None:
        raise SnapshotError(
            "the stored snapshot is not a decodable image; wait for the worker's next snapshot"
        )
    h, w = frame.shape[:2]
    overlay = frame.copy()
    polys = []
    for zone in zones:
        pts = polygon_px_int(zone.polygon, (w, h))
        colour = ZONE_COLOURS_BGR.get(zone.kind, (255, 255, 255))
        cv2.fillPoly(overlay, [pts], colour)
        polys.append((zone, pts, colour))
    frame = cv2.addWeighted(overlay, fill_alpha, frame, 1 - fill_alpha, 0)
    thickness = max(2, round(min(w, h) / 300))
    scale = max(0.5, min(w, h) / 900)
    for zone, pts, colour in polys:
        cv2.polylines(frame, [pts], isClosed=True, color=colour, thickness=thickness, lineType=cv2.LINE_AA)
        # zone ids are ASCII by the config pattern, so Hershey fonts can draw them
        x, y = int(pts[:, 0].min()), int(pts[:, 1].min())
        label = f"{zone.id} [{zone.kind.value}]"
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        y = max(y, th + base + 2)
        cv2.rectangle(frame, (x, y - th - base - 2), (x + tw + 4, y), colour, -1)
        cv2.putText(
            frame, label, (x + 2, y - base), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA
        )
    ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise SnapshotError("could not encode the snapshot as JPEG")
    return buf.tobytes()
