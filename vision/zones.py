"""Zone membership: which of a camera's zones each box belongs to, and which zones are in force now.

Geometry is precomputed once per frame size (pixel polygons, rasterised masks as integral images) so
that every test is a few vectorised numpy operations. Membership uses the object kind's anchor
(``vision.config.DEFAULT_ANCHORS``): bikes and people count where they stand (bottom-centre), stalls,
garbage and grills by the fraction of their box inside the polygon.

Exemption zones (``allowed_vending`` 便民摊区/夜市, ``bike_bay``, ``bin_area``) never watch anything;
while in force they exempt objects inside them from the violations they permit.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import cv2
import numpy as np

from vision.config import DEFAULT_ANCHORS, Anchor, CameraConfig, ZoneConfig, ZoneKind
from vision.geometry import polygon_px
from vision.kinds import BUILTIN_KINDS, KindSpec, unknown_may_raise, zone_exempts, zone_watches
from vision.types import OBJECT_KINDS, UNKNOWN_OBJECT, UNKNOWN_OBJECT_CLASS_ID, Detections, ViolationKind

#: Box fraction inside a polygon for overlap-anchored kinds (stalls, garbage, grills).
OVERLAP_MIN = 0.5
#: Looser test used only to decide whether a box is worth following at all.
RELEVANT_OVERLAP_MIN = 0.05
#: Rasterised masks are at most this many pixels on their long side (keeps ~0.2 MB per zone).
MASK_MAX_SIDE_PX = 400

#: What each exemption zone kind permits when its ``violations`` list is not given.
EXEMPTION_DEFAULTS: dict[ZoneKind, tuple[ViolationKind, ...]] = {
    ZoneKind.ALLOWED_VENDING: (ViolationKind.STREET_VENDING,),
    ZoneKind.BIKE_BAY: (ViolationKind.BIKE_MISPARKING,),
    ZoneKind.BIN_AREA: (ViolationKind.EXPOSED_GARBAGE,),
}

#: ``Detections.data`` key of the (n, z) zone-touch matrix the pipeline computes once per frame.
TOUCH_KEY = "zone_touch"

_BOTTOM, _CENTER, _OVERLAP = 0, 1, 2
_ANCHOR_CODE = np.array(
    [
        {Anchor.BOTTOM_CENTER: _BOTTOM, Anchor.CENTER: _CENTER, Anchor.OVERLAP: _OVERLAP}[
            DEFAULT_ANCHORS[str(k)]
        ]
        for k in (*OBJECT_KINDS, UNKNOWN_OBJECT)  # class ids of the model's kinds, then unknown_object
    ],
    np.intp,
)
#: Class ids rules may see: the model's kinds and the static-object detector's unknown_object.
N_CLASS_IDS = UNKNOWN_OBJECT_CLASS_ID + 1


def is_exemption(zone: ZoneConfig) -> bool:
    return zone.kind in EXEMPTION_DEFAULTS


def exempted_kinds(zone: ZoneConfig) -> tuple[ViolationKind, ...]:
    """Violations an exemption zone permits while in force (its ``violations`` list, if given)."""
    if not is_exemption(zone):
        return ()
    return tuple(zone.violations) if zone.violations is not None else EXEMPTION_DEFAULTS[zone.kind]


def watched_kinds(zone: ZoneConfig) -> tuple[ViolationKind, ...]:
    """Violations a zone watches while in force; exemption zones watch nothing."""
    return () if is_exemption(zone) else zone.watches()


def points_in_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Even-odd test of many points against one polygon.

    Args:
        points: (n, 2) pixel coordinates.
        polygon: (m, 2) pixel vertices in order.

    Returns:
        (n,) bool.

    Example:
        >>> points_in_polygon(np.array([[5.0, 5.0], [20.0, 5.0]]), np.array([[0, 0], [10, 0], [10, 10], [0, 10.0]]))
        array([ True, False])
    """
    if len(points) == 0:
        return np.zeros(0, bool)
    x = points[:, 0:1]
    y = points[:, 1:2]
    x1, y1 = polygon[:, 0], polygon[:, 1]
    x2, y2 = np.roll(x1, -1), np.roll(y1, -1)
    crosses = (y1 > y) != (y2 > y)
    dy = np.where(y2 == y1, 1e-12, y2 - y1)
    x_at = x1 + (y - y1) * (x2 - x1) / dy
    return ((crosses & (x < x_at)).sum(axis=1) % 2) == 1


class ZoneGeometry:
    """A camera's zone polygons in pixels for one frame size, with rasterised integral images.

    Attributes:
        frame_wh: (width, height) in pixels.
        polygons_px: one (m, 2) float64 array per zone, in config order.
    """

    def __init__(self, zones: tuple[ZoneConfig, ...], frame_wh: tuple[int, int]) -> None:
        w, h = int(frame_wh[0]), int(frame_wh[1])
        if w <= 0 or h <= 0:
            raise ValueError(f"frame_wh must be positive (width, height) pixels, got {frame_wh}")
        self.frame_wh = (w, h)
        self.polygons_px = [polygon_px(z.polygon, (w, h)) for z in zones]
        self._scale = min(1.0, MASK_MAX_SIDE_PX / max(w, h))
        mw, mh = max(1, round(w * self._scale)), max(1, round(h * self._scale))
        self._mask_wh = (mw, mh)
        self._bounds = np.array([mw, mh, mw, mh], np.float64)
        integrals = np.zeros((len(zones), mh + 1, mw + 1), np.int32)
        shift = 4  # sub-pixel vertex precision when rasterising
        for i, poly in enumerate(self.polygons_px):
            mask = np.zeros((mh, mw), np.uint8)
            pts = np.round(poly * self._scale * (1 << shift)).astype(np.int32)
            cv2.fillPoly(mask, [pts], 1, lineType=cv2.LINE_8, shift=shift)
            integrals[i] = cv2.integral(mask, sdepth=cv2.CV_32S)
        self._integrals = integrals
        # all zones' edges in one array, so a point test is one vectorised pass
        if zones:
            x1 = np.concatenate([p[:, 0] for p in self.polygons_px])
            y1 = np.concatenate([p[:, 1] for p in self.polygons_px])
            x2 = np.concatenate([np.roll(p[:, 0], -1) for p in self.polygons_px])
            y2 = np.concatenate([np.roll(p[:, 1], -1) for p in self.polygons_px])
            dy = np.where(y2 == y1, 1e-12, y2 - y1)
            self._edges = (x1, y1, (x2 - x1) / dy, y2)
            self._edge_starts = np.cumsum([0] + [len(p) for p in self.polygons_px[:-1]])

    def __len__(self) -> int:
        return len(self.polygons_px)

    def contains(self, points: np.ndarray) -> np.ndarray:
        """(n, 2) pixel points -> (n, z) bool, exact polygon test."""
        points = np.asarray(points, np.float64).reshape(-1, 2)
        if len(points) == 0 or len(self) == 0:
            return np.zeros((len(points), len(self)), bool)
        x1, y1, inv_slope, y2 = self._edges
        x = points[:, 0:1]
        y = points[:, 1:2]
        crosses = (y1 > y) != (y2 > y)
        hits = crosses & (x < x1 + (y - y1) * inv_slope)
        return (np.add.reduceat(hits, self._edge_starts, axis=1) % 2) == 1

    def overlap(self, xyxy: np.ndarray) -> np.ndarray:
        """(n, 4) pixel boxes -> (n, z) float32 fraction of each box's area inside each zone.

        Parts of a box outside the frame count as outside every zone. Boxes smaller than one mask
        pixel fall back to their centre point (1.0 or 0.0).
        """
        xyxy = np.asarray(xyxy, np.float64).reshape(-1, 4)
        n, z = len(xyxy), len(self)
        if n == 0 or z == 0:
            return np.zeros((n, z), np.float32)
        scaled = np.rint(xyxy * self._scale)
        full_area = (scaled[:, 2] - scaled[:, 0]) * (scaled[:, 3] - scaled[:, 1])
        x1, y1, x2, y2 = np.minimum(np.maximum(scaled, 0), self._bounds).astype(np.intp).T
        integ = self._integrals
        inside = integ[:, y2, x2] - integ[:, y1, x2] - integ[:, y2, x1] + integ[:, y1, x1]  # (z, n)
        frac = (inside / np.maximum(full_area, 1)).T.astype(np.float32)
        tiny = full_area < 1
        if tiny.any():
            centres = np.stack(
                [(xyxy[tiny, 0] + xyxy[tiny, 2]) / 2, (xyxy[tiny, 1] + xyxy[tiny, 3]) / 2], axis=1
            )
            frac[tiny] = self.contains(centres)
        return frac

    def _member_overlap(self, xyxy: np.ndarray, class_id: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        xyxy = np.asarray(xyxy, np.float64).reshape(-1, 4)
        overlap = self.overlap(xyxy)
        if len(xyxy) == 0 or len(self) == 0:
            return overlap >= OVERLAP_MIN, overlap
        code = _ANCHOR_CODE[np.asarray(class_id, np.intp).reshape(-1)]
        x = (xyxy[:, 0] + xyxy[:, 2]) / 2
        y = np.where(code == _BOTTOM, xyxy[:, 3], (xyxy[:, 1] + xyxy[:, 3]) / 2)
        by_point = self.contains(np.stack([x, y], axis=1))
        member = np.where((code == _OVERLAP)[:, None], overlap >= OVERLAP_MIN, by_point)
        return member, overlap

    def membership(self, xyxy: np.ndarray, class_id: np.ndarray) -> np.ndarray:
        """(n, 4) boxes of kinds ``class_id`` -> (n, z) bool, using each kind's anchor."""
        return self._member_overlap(xyxy, class_id)[0]

    def touches(self, xyxy: np.ndarray, class_id: np.ndarray) -> np.ndarray:
        """(n, z) bool: the box is in the zone by its anchor, or at least 5 % of it overlaps the zone."""
        member, overlap = self._member_overlap(xyxy, class_id)
        return member | (overlap >= RELEVANT_OVERLAP_MIN)


@dataclass(frozen=True)
class ZoneFrame:
    """A camera's zones at one moment for one frame size: what rules receive as ``zones``.

    Attributes:
        camera_id: the camera.
        zones: zone configs in config order; column j of every (n, z) array is ``zones[j]``.
        geometry: pixel polygons and masks for this frame size.
        now_s: stream time these flags hold for.
        active: (z,) bool, zone schedule in force now (always True for zones without a schedule).
    """

    camera_id: str
    zones: tuple[ZoneConfig, ...]
    geometry: ZoneGeometry
    now_s: float
    active: np.ndarray
    _watch: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    _exempt: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    _unknown: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def frame_wh(self) -> tuple[int, int]:
        return self.geometry.frame_wh

    def watching(self, kind: str) -> np.ndarray:
        """(z,) bool: zones that watch ``kind`` (ignoring schedules)."""
        return self._watch[kind]

    def exempting(self, kind: str) -> np.ndarray:
        """(z,) bool: exemption zones that permit ``kind`` (ignoring schedules)."""
        return self._exempt[kind]

    def watching_unknown(self, kind: str) -> np.ndarray:
        """(z,) bool: zones that watch ``kind`` and let an ``unknown_object`` region raise it."""
        found = self._unknown.get(kind)
        return found if found is not None else np.zeros(len(self.zones), bool)

    def membership(self, det: Detections) -> np.ndarray:
        """(n, z) bool membership of detections by their kinds' anchors."""
        return self.geometry.membership(det.xyxy, det.class_id)

    def touches(self, det: Detections) -> np.ndarray:
        """(n, z) bool: in the zone by anchor or overlapping it by 5 %; ``det.data["zone_touch"]`` if set."""
        touch = det.data.get(TOUCH_KEY)
        if touch is None:
            touch = self.geometry.touches(det.xyxy, det.class_id)
        return touch

    def relevant(self, det: Detections, kind: str) -> np.ndarray:
        """(n,) bool: the detection touches a zone that watches ``kind`` (worth following); an
        ``unknown_object`` row only counts in zones that let unknown objects raise ``kind``."""
        watch = self._watch[kind]
        if len(det) == 0 or not watch.any():
            return np.zeros(len(det), bool)
        touch = self.touches(det)
        out = (touch & watch).any(axis=1)
        unknown = det.class_id == UNKNOWN_OBJECT_CLASS_ID
        if unknown.any():
            out[unknown] = (touch[unknown] & self.watching_unknown(kind)).any(axis=1)
        return out

    def rule_rows(self, det: Detections, kind: str, class_ids: tuple[int, ...]) -> np.ndarray:
        """(n,) bool: detections a rule of ``kind`` follows: of its ``class_ids`` (or unknown objects where a
        zone lets them raise the kind), touching a zone that watches it."""
        cid = det.class_id
        mine = cid == class_ids[0]
        for other in class_ids[1:]:
            mine |= cid == other
        if self.watching_unknown(kind).any():
            mine |= cid == UNKNOWN_OBJECT_CLASS_ID
        if mine.any():
            mine &= self.relevant(det, kind)
        return mine

    def with_touch(self, det: Detections, class_ids: Iterable[int] | None = None) -> Detections:
        """``det`` with ``data["zone_touch"]`` (n, z) computed once for all rules of a frame.

        Only rows of ``class_ids`` (all when None) are computed; the others are False.
        """
        touch = np.zeros((len(det), len(self.zones)), bool)
        if len(det) and len(self.zones):
            if class_ids is None:
                rows = np.ones(len(det), bool)
            else:
                wanted = np.zeros(N_CLASS_IDS, bool)
                wanted[list(class_ids)] = True
                rows = wanted[det.class_id]
            if rows.all():
                touch = self.geometry.touches(det.xyxy, det.class_id)
            elif rows.any():
                touch[rows] = self.geometry.touches(det.xyxy[rows], det.class_id[rows])
        return det.with_(data={TOUCH_KEY: touch})


class ZoneIndex:
    """One camera's zones: geometry cached per frame size, schedules evaluated in camera local time.

    Args:
        camera: the camera config (zones, time zone, ``start_time`` for replays).
        live: ``ts_s`` values are epoch seconds rather than seconds since the stream's t=0.
        kinds: the kind catalogue (``vision.kinds.catalogue_of``); None = the built-in four.

    Example:
        >>> index = ZoneIndex(camera)
        >>> zones = index.frame((1920, 1080), now_s=12.0)
        >>> zones.membership(det)            # (n, z) bool
    """

    def __init__(
        self, camera: CameraConfig, live: bool = False, kinds: Mapping[str, KindSpec] | None = None
    ) -> None:
        self.camera = camera
        self.live = live
        self.zones = tuple(camera.zones)
        self._geometry: dict[tuple[int, int], ZoneGeometry] = {}
        self._scheduled = [i for i, z in enumerate(self.zones) if z.schedule is not None]
        self._active_cache: tuple[int, np.ndarray] | None = None
        catalogue: Mapping[str, KindSpec] = kinds if kinds is not None else BUILTIN_KINDS  # type: ignore[assignment]
        self._watch = {k: self._flags(zone_watches, spec) for k, spec in catalogue.items()}
        self._exempt = {k: self._flags(zone_exempts, spec) for k, spec in catalogue.items()}
        self._unknown = {
            k: self._watch[k] & self._flags(unknown_may_raise, spec) for k, spec in catalogue.items()
        }

    def unknown_raises(self, kind: str) -> bool:
        """Whether an ``unknown_object`` region may raise ``kind`` in some zone of this camera."""
        found = self._unknown.get(kind)
        return found is not None and bool(found.any())

    def _flags(self, test: Callable[[ZoneConfig, KindSpec], bool], spec: KindSpec) -> np.ndarray:
        return np.array([test(z, spec) for z in self.zones], bool).reshape(-1)

    def geometry(self, frame_wh: tuple[int, int]) -> ZoneGeometry:
        key = (int(frame_wh[0]), int(frame_wh[1]))
        geo = self._geometry.get(key)
        if geo is None:
            if len(self._geometry) >= 4:  # a camera changes resolution rarely; keep memory bounded
                self._geometry.pop(next(iter(self._geometry)))
            geo = self._geometry[key] = ZoneGeometry(self.zones, key)
        return geo

    def local_time(self, now_s: float) -> dt.datetime:
        return self.camera.local_time(now_s, live=self.live)

    def active(self, now_s: float) -> np.ndarray:
        """(z,) bool schedules in force at ``now_s`` (evaluated at most once per second)."""
        second = int(np.floor(now_s))
        if self._active_cache is not None and self._active_cache[0] == second:
            return self._active_cache[1]
        flags = np.ones(len(self.zones), bool)
        if self._scheduled:
            local = self.local_time(float(second))
            for i in self._scheduled:
                flags[i] = self.zones[i].schedule.is_active(local)
        flags.setflags(write=False)
        self._active_cache = (second, flags)
        return flags

    def frame(self, frame_wh: tuple[int, int], now_s: float) -> ZoneFrame:
        return ZoneFrame(
            camera_id=self.camera.id,
            zones=self.zones,
            geometry=self.geometry(frame_wh),
            now_s=float(now_s),
            active=self.active(now_s),
            _watch=self._watch,
            _exempt=self._exempt,
            _unknown=self._unknown,
        )
