"""Motion gating: run the detector only where something changes, plus a periodic full-frame scan.

Change is measured on a small grey frame (320 px wide, blurred) against a running-average background.
That alone would miss what appears slowly (a stall set up bit by bit, a garbage pile growing: the
background absorbs it) and would stop confirming objects that stand still (Frigate issue #2261), so a
full scan runs at least every ``scan_interval_s`` whatever the motion says.

When a frame is not detected the per-camera loop feeds the rules the *last* detections again, so dwell
keeps counting for stationary objects. Carried detections are never older than ``scan_interval_s``, which
is capped at half the rules' grace window: an object that vanished without visible change is dropped by
the next scan, well before the grace window would close its violation anyway.

Only motion in (or right next to) the camera's zones counts: rules judge objects in zones, so cars on the
road beside a watched sidewalk need no detector run.

Motion that goes on (people walking through a zone) is detected at most every ``motion_interval_s``
(default 1 s) rather than on every sampled frame: the rules judge things that *stay* — a stall, a pile, a
parked bike, a grill — over tens of seconds, so a box up to one interval old changes no decision, while
the first motion after a still spell is detected at once (something arrived) and one more detection runs
right after motion ends (the settled picture: where the arrival came to rest). A gate that only asks
"did anything move?" re-detects a busy street 5 times a second and saves nothing exactly where the
cameras are busiest.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import cv2
import numpy as np

from vision.config import MotionConfig
from vision.geometry import polygon_px_int

#: Width of the analysis frame, px. 320 rather than 160: a garbage bag far down the street (~0.5 % of
#: the frame) must still change enough analysis pixels to count; at 160 px blurring wipes it out and
#: only the periodic scan would find it, up to ``scan_interval_s`` late.
MOTION_WIDTH_PX = 320
#: Running-average background learning rate per analysed frame. High on purpose: an object that arrives
#: and stays stops counting as motion after ~4 analysed frames (the periodic scan keeps confirming it),
#: while the average still smooths single-frame noise better than plain previous-frame differencing.
BACKGROUND_ALPHA = 0.5


class GateReason(StrEnum):
    FIRST = "first"  # no background yet (start, reconnect, resolution change)
    MOTION = "motion"
    SETTLED = "settled"  # motion was throttled and has stopped: detect the settled picture once
    CONFIRM = "confirm"  # the rules asked: a new object is settling or a due violation awaits confirmation
    SCAN = "scan"  # periodic full-frame scan
    DISABLED = "disabled"  # gating off: every sampled frame is detected
    STILL = "still"  # skipped: carry the last detections


@dataclass(frozen=True)
class GateDecision:
    detect: bool
    reason: GateReason
    motion_ratio: float  # fraction of analysis pixels that changed, [0, 1]


class MotionDetector:
    """Changed-area ratio of a frame against a running background.

    Example:
        >>> md = MotionDetector(MotionConfig())
        >>> md.update(np.zeros((240, 320, 3), np.uint8))
        1.0
        >>> md.update(np.zeros((240, 320, 3), np.uint8))
        0.0
    """

    def __init__(
        self,
        config: MotionConfig,
        width_px: int = MOTION_WIDTH_PX,
        alpha: float = BACKGROUND_ALPHA,
        zones: list[list[list[float]]] | None = None,
    ) -> None:
        self.threshold = config.threshold
        self.width_px = width_px
        self.alpha = alpha
        self.zones = [np.asarray(z, np.float64) for z in (zones or [])]
        self._background: np.ndarray | None = None
        self._mask: np.ndarray | None = None

    def reset(self) -> None:
        self._background = None

    def _small_grey(self, frame_bgr: np.ndarray) -> np.ndarray:
        h, w = frame_bgr.shape[:2]
        out_w = min(self.width_px, w)
        out_h = max(1, round(h * out_w / w))
        # Area averaging (~1.8 ms from 1080p) rather than bilinear sampling (~0.3 ms): sampling keeps the
        # sensor/compression noise of single pixels and tripled false motion on the scenario suite.
        small = cv2.resize(frame_bgr, (out_w, out_h), interpolation=cv2.INTER_AREA)
        grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY) if small.ndim == 3 else small
        return cv2.GaussianBlur(grey, (3, 3), 0)

    def update(self, frame_bgr: np.ndarray) -> float:
        """Fraction of pixels that differ from the background by more than ``threshold`` (1.0 on the first frame)."""
        grey = self._small_grey(frame_bgr)
        if self._background is None or self._background.shape != grey.shape:
            self._background = grey.astype(np.float32)
            self._mask = self._zone_mask(grey.shape) if self.zones else None
            return 1.0
        diff = cv2.absdiff(grey, cv2.convertScaleAbs(self._background))
        moved = diff > self.threshold
        if self._mask is not None:
            moved &= self._mask
        changed = np.count_nonzero(moved)
        cv2.accumulateWeighted(grey, self._background, self.alpha)
        return changed / diff.size

    def _zone_mask(self, shape: tuple[int, ...]) -> np.ndarray:
        """Where motion counts: the camera's zones, grown by ~3 % of the width so that objects entering a
        zone count a frame early. Traffic on the road beside a watched sidewalk wakes no detector."""
        h, w = shape[:2]
        mask = np.zeros((h, w), np.uint8)
        for poly in self.zones:
            cv2.fillPoly(mask, [polygon_px_int(poly, (w, h))], 255)
        grow = max(3, round(w * 0.03)) | 1
        return cv2.dilate(mask, np.ones((grow, grow), np.uint8)) > 0


class MotionGate:
    """Decides per sampled frame whether to run the detector.

    Args:
        config: the camera's motion settings (``enabled``, ``threshold``, ``min_area_ratio``,
            ``full_scan_interval_s``).
        grace_s: the rules' grace window; the scan interval is capped at half of it so carried
            detections can never keep a violation alive on their own.
        zones: the camera's zone polygons (normalised); motion elsewhere is ignored. None/empty = the
            whole frame.

    Example:
        >>> gate = MotionGate(MotionConfig(full_scan_interval_s=10), grace_s=20)
        >>> frame = np.zeros((240, 320, 3), np.uint8)
        >>> [gate.decide(frame, t).reason.value for t in (0.0, 0.2, 10.0)]
        ['first', 'still', 'scan']
    """

    def __init__(
        self, config: MotionConfig, grace_s: float = 20.0, zones: list[list[list[float]]] | None = None
    ) -> None:
        self.enabled = config.enabled
        self.min_area_ratio = config.min_area_ratio
        cap = grace_s / 2 if grace_s > 0 else config.full_scan_interval_s
        self.scan_interval_s = max(min(config.full_scan_interval_s, cap), 0.5)
        self.motion_interval_s = config.motion_interval_s
        self.detector = MotionDetector(config, zones=zones)
        self._last_detect_s: float | None = None
        self._throttled = False  # motion seen since the last detection but not detected yet
        self._was_moving = False  # the previous analysed frame had motion

    def reset(self) -> None:
        """Forget the background and force a detection (after a reconnect or a loop of a file)."""
        self.detector.reset()
        self._last_detect_s = None
        self._throttled = False
        self._was_moving = False

    def decide(self, frame_bgr: np.ndarray, ts_s: float, confirm: bool = False) -> GateDecision:
        """Detect this frame or carry the last detections? ``confirm``: the rules want this frame detected
        (``CameraPipeline.wants_detection``), whatever the motion says."""
        if not self.enabled:
            self._last_detect_s = ts_s
            return GateDecision(True, GateReason.DISABLED, 1.0)
        ratio = self.detector.update(frame_bgr)
        moving = ratio >= self.min_area_ratio and ratio > 0
        onset, self._was_moving = moving and not self._was_moving, moving
        if self._last_detect_s is None or ts_s < self._last_detect_s:
            reason = GateReason.FIRST
            self._was_moving = False  # the first frame's 1.0 is "no background yet", not motion
        else:
            since = ts_s - self._last_detect_s
            due = since >= self.motion_interval_s - 1e-6
            if confirm:
                reason = GateReason.CONFIRM
            elif moving and (onset or due):
                reason = GateReason.MOTION
            elif moving:
                self._throttled = True
                return GateDecision(False, GateReason.STILL, ratio)
            elif self._throttled and due:
                reason = GateReason.SETTLED
            elif since >= self.scan_interval_s - 1e-6:
                reason = GateReason.SCAN
            else:
                return GateDecision(False, GateReason.STILL, ratio)
        self._last_detect_s = ts_s
        self._throttled = False
        return GateDecision(True, reason, ratio)
