"""Static-object detector: something new was left here and stays, whatever it is (issue 14).

A second pair of eyes beside the trained detector, for objects it has no class for (a pile of cardboard,
a folding table, a mattress). Per camera, at a reduced working resolution (default 240 px wide):

1. **Illumination normalisation.** Each grey frame is divided by its own local mean (a box blur wider than
   most objects), so a cloud, a street lamp's pool, headlights or a soft shadow, which multiply the picture
   by a smooth gain, barely change the normalised image; an object's edges and texture do.
2. **Dual background** (Porikli's short- and long-term backgrounds). The short-term background follows
   the normalised image within seconds; the long-term one within minutes, and only where nothing is in
   front of it. A pixel that differs from the long-term background but not from the short-term one is
   *static foreground*: something that was not there and has stopped moving.
3. **Evidence.** Static foreground accumulates seconds of evidence per pixel; evidence pauses while a
   person box (the trained detector's, passed in) covered the pixel within ``person_hold_s`` or while
   something moves over it, and it drains where the pixel is background again. Regions with at least
   ``still_s`` of evidence are reported as ``unknown_object`` boxes.
4. **Adapting.** Static foreground older than ``absorb_s`` (a new bench, a parked container) becomes
   background, and so does whatever a reviewer marked as fixed (``absorb(box)``). A region whose picture
   correlates with the background's once the gain is fitted is a lighting change and is absorbed at once.

Everything is pure: frames and ``now_s`` are arguments; no clock, disk or network. One detector per camera:

    det = StaticObjectDetector()
    found = det.update(frame_bgr, now_s, person_boxes)   # Detections, label unknown_object

Measured on the rendered static-object scenarios (``urbaneye eval-events``); see docs/static-objects.md.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from vision.geometry import iou_matrix
from vision.types import (
    OBJECT_KINDS,
    STILL_S_KEY,
    UNKNOWN_OBJECT,
    UNKNOWN_OBJECT_CLASS_ID,
    Detections,
    ObjectKind,
)

_PERSON = OBJECT_KINDS.index(ObjectKind.PERSON)


@dataclass(frozen=True)
class StaticObjectConfig:
    """Settings of one camera's static-object detector. Times in seconds of ``now_s``."""

    work_width_px: int = 240  # working resolution (boxes are mapped back exactly)
    method: Literal["dual", "reference"] = "dual"  # long-term background: slow blend, or periodic refresh
    short_tau_s: float = 2.0  # short-term background time constant
    long_tau_s: float = 60.0  # long-term background time constant (where nothing is in front)
    refresh_s: float = 30.0  # method "reference": how often stable background pixels are copied
    warmup_s: float = 8.0  # first seconds: the long-term background follows quickly, nothing is reported
    diff_threshold: float = 0.07  # normalised difference that counts as foreground (region growing)
    core_threshold: float = 0.12  # ... and that a reported region must have somewhere (hysteresis seed)
    min_core_px: int = 96  # full-frame pixels above core_threshold a reported region needs
    still_s: float = 20.0  # seconds of static evidence before a region is reported
    absorb_s: float = 3600.0  # static foreground older than this becomes background
    person_hold_s: float = 10.0  # a person box masks its area this long after it was last seen
    person_pad: float = 0.25  # person boxes grow by this fraction of their size (shadow, bags)
    min_area_px: int = 400  # smallest reported region, in full-frame pixels
    min_side_px: int = (
        12  # a reported box is at least this wide and high (slivers along edges are not objects)
    )
    lighting_ncc: float = 0.8  # region vs background correlation above which it is a lighting change
    norm_blur_px: int = 15  # local-mean window of the illumination normalisation (working pixels)

    def __post_init__(self) -> None:
        if not 64 <= self.work_width_px <= 960:
            raise ValueError(f"work_width_px={self.work_width_px} is out of range; use 64..960 (default 240)")
        if self.absorb_s <= self.still_s:
            raise ValueError(
                f"absorb_s={self.absorb_s} must be longer than still_s={self.still_s}: an object has to be "
                "reported before it becomes background"
            )


class StaticObjectDetector:
    """One camera's long-term background model; ``update`` once per detected frame.

    Example:
        >>> det = StaticObjectDetector(StaticObjectConfig(still_s=2.0, absorb_s=60.0, warmup_s=0.5))
        >>> empty = np.full((540, 960, 3), 90, np.uint8)
        >>> len(det.update(empty, 0.0))
        0
    """

    def __init__(self, config: StaticObjectConfig | None = None) -> None:
        self.config = config or StaticObjectConfig()
        self._size: tuple[int, int] | None = None  # full frame (w, h)
        self._work: tuple[int, int] = (0, 0)
        self._t0: float | None = None
        self._last_s = 0.0
        self._next_refresh_s = 0.0

    # ------------------------------------------------------------------------------------- state
    def _reset(self, frame_wh: tuple[int, int], norm: np.ndarray, grey: np.ndarray, now_s: float) -> None:
        w, h = frame_wh
        self._size = frame_wh
        ww = self.config.work_width_px
        self._work = (ww, max(8, int(round(h * ww / w))))
        self._long = norm.copy()
        self._short = norm.copy()
        self._long_grey = grey.copy()
        self._evidence = np.zeros_like(norm)  # seconds of static evidence
        self._reported = np.zeros(norm.shape, bool)  # pixels of regions already reported (not light)
        self._static_since = np.full_like(norm, np.inf)  # when evidence started (absorb clock)
        self._person_until = np.full_like(norm, -np.inf)
        self._stable = np.ones(norm.shape, bool)  # method "reference": background since the last refresh
        self._t0 = now_s
        self._last_s = now_s
        self._next_refresh_s = now_s + self.config.refresh_s

    def _prepare(self, frame_bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(normalised, grey) float32 working images of a frame."""
        h, w = frame_bgr.shape[:2]
        ww = self.config.work_width_px
        wh = max(8, int(round(h * ww / w)))
        small = cv2.resize(frame_bgr, (ww, wh), interpolation=cv2.INTER_AREA)
        grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY).astype(np.float32)
        k = self.config.norm_blur_px
        mean = cv2.blur(grey, (k, k), borderType=cv2.BORDER_REFLECT)
        return grey / (mean + 8.0), grey

    def _box_to_work(
        self, box: np.ndarray | tuple[float, ...], pad: float = 0.0
    ) -> tuple[int, int, int, int]:
        assert self._size is not None
        (w, h), (ww, wh) = self._size, self._work
        x0, y0, x1, y1 = (float(v) for v in box)
        px, py = (x1 - x0) * pad, (y1 - y0) * pad
        return (
            max(0, int(math.floor((x0 - px) * ww / w))),
            max(0, int(math.floor((y0 - py) * wh / h))),
            min(ww, int(math.ceil((x1 + px) * ww / w))),
            min(wh, int(math.ceil((y1 + py) * wh / h))),
        )

    # ------------------------------------------------------------------------------------ public
    def absorb(self, box_xyxy: tuple[float, float, float, float] | np.ndarray) -> None:
        """Make whatever is in ``box_xyxy`` (full-frame pixels) background now: a reviewer marked it fixed."""
        if self._size is None:
            return
        x0, y0, x1, y1 = self._box_to_work(box_xyxy)
        self._long[y0:y1, x0:x1] = self._short[y0:y1, x0:x1]
        self._long_grey[y0:y1, x0:x1] = self._last_grey[y0:y1, x0:x1]
        self._evidence[y0:y1, x0:x1] = 0.0
        self._static_since[y0:y1, x0:x1] = np.inf
        self._reported[y0:y1, x0:x1] = False

    def update(
        self, frame_bgr: np.ndarray, now_s: float, person_boxes: np.ndarray | None = None
    ) -> Detections:
        """Feed one frame; returns the static regions as ``Detections`` labelled ``unknown_object``.

        Args:
            frame_bgr: (h, w, 3) uint8 BGR frame; the size may change (the model then starts over).
            now_s: the frame's time in seconds (monotonic per camera).
            person_boxes: (n, 4) xyxy pixels of people the trained detector found in this frame.

        Returns:
            ``Detections`` with ``class_id == UNKNOWN_OBJECT_CLASS_ID``, ``data["label"]`` = ``unknown_object``
            and ``data["static_s"]``, how long each region has been still.
        """
        cfg = self.config
        h, w = frame_bgr.shape[:2]
        norm, grey = self._prepare(frame_bgr)
        if self._size != (w, h) or self._t0 is None or now_s < self._last_s:
            self._reset((w, h), norm, grey, now_s)
            self._last_grey = grey
            return _empty()
        dt = min(now_s - self._last_s, 5.0)
        self._last_s = now_s
        self._last_grey = grey
        warm = now_s - self._t0 < cfg.warmup_s

        person = self._mask_people(person_boxes, now_s)

        a_short = 1.0 - math.exp(-dt / cfg.short_tau_s)
        d_long = np.abs(norm - self._long)
        d_short = np.abs(norm - self._short)
        fg_long = d_long > cfg.diff_threshold
        moving = d_short > cfg.diff_threshold
        cv2.accumulateWeighted(norm, self._short, a_short)

        if warm:
            a = 1.0 - math.exp(-dt / 1.0)
            keep = ~person
            self._long[keep] += (norm[keep] - self._long[keep]) * a
            self._long_grey[keep] += (grey[keep] - self._long_grey[keep]) * a
            return _empty()

        self._learn_background(norm, grey, ~fg_long & ~person, dt, now_s)
        self._accumulate(fg_long & ~moving & ~person, ~fg_long & ~person, dt, now_s)
        self._absorb_old(norm, grey, now_s)
        ready = (self._evidence >= cfg.still_s).astype(np.uint8)
        if not ready.any():
            return _empty()
        return self._regions(ready, d_long, grey, now_s)

    def _mask_people(self, person_boxes: np.ndarray | None, now_s: float) -> np.ndarray:
        """Person boxes mask their area (padded: shadow, bags, arms) for a while after they were seen."""
        cfg = self.config
        if person_boxes is not None and len(person_boxes):
            for box in np.asarray(person_boxes, np.float32).reshape(-1, 4):
                x0, y0, x1, y1 = self._box_to_work(box, cfg.person_pad)
                self._person_until[y0:y1, x0:x1] = now_s + cfg.person_hold_s
        return self._person_until >= now_s

    def _learn_background(
        self, norm: np.ndarray, grey: np.ndarray, background: np.ndarray, dt: float, now_s: float
    ) -> None:
        cfg = self.config
        if cfg.method == "dual":
            a_long = 1.0 - math.exp(-dt / cfg.long_tau_s)
            self._long[background] += (norm[background] - self._long[background]) * a_long
            self._long_grey[background] += (grey[background] - self._long_grey[background]) * a_long
        else:
            self._stable &= background
            if now_s >= self._next_refresh_s:
                self._long[self._stable] = norm[self._stable]
                self._long_grey[self._stable] = grey[self._stable]
                self._stable[:] = True
                self._next_refresh_s = now_s + cfg.refresh_s

    def _accumulate(self, static: np.ndarray, gone: np.ndarray, dt: float, now_s: float) -> None:
        """Evidence grows on still foreground, pauses under people and motion, drains on background."""
        ev = self._evidence
        ev[static] += dt
        ev[gone] = np.maximum(ev[gone] - 4 * dt, 0.0)
        started = static & np.isinf(self._static_since)
        self._static_since[started] = now_s
        self._static_since[ev <= 0] = np.inf
        self._reported[ev <= 0] = False

    def _absorb_old(self, norm: np.ndarray, grey: np.ndarray, now_s: float) -> None:
        """Static foreground older than ``absorb_s`` becomes background (a new fixed object)."""
        old = (now_s - self._static_since) >= self.config.absorb_s
        if old.any():
            self._long[old] = norm[old]
            self._long_grey[old] = grey[old]
            self._evidence[old] = 0.0
            self._static_since[old] = np.inf
            self._reported[old] = False

    # ----------------------------------------------------------------------------------- regions
    def _regions(self, ready: np.ndarray, d_long: np.ndarray, grey: np.ndarray, now_s: float) -> Detections:
        cfg = self.config
        assert self._size is not None
        (w, h), (ww, wh) = self._size, self._work
        sx, sy = w / ww, h / wh
        ready = cv2.morphologyEx(ready, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
        n, labels, stats, _ = cv2.connectedComponentsWithStats(ready, connectivity=8)
        boxes, conf, ages = [], [], []
        min_area = cfg.min_area_px / (sx * sy)
        core = d_long > cfg.core_threshold
        min_core = cfg.min_core_px / (sx * sy)
        for i in range(1, n):
            x, y, bw, bh, area = (int(v) for v in stats[i])
            if area < min_area:
                continue
            strong = core[y : y + bh, x : x + bw] & (labels[y : y + bh, x : x + bw] == i)
            if np.count_nonzero(strong) < min_core:
                continue  # faint all over: a soft light or shadow edge, not an object
            # A region already reported stays an object when the light changes later (a cloud over it);
            # what newly joined it (a lamp's pool next to it) is tested on its own.
            reported = self._reported[y : y + bh, x : x + bw]
            known, new = strong & reported, strong & ~reported
            if np.count_nonzero(new) >= min_core:
                if self._is_lighting(labels, i, new, (x, y, bw, bh), grey):
                    if not known.any():
                        self._forget(x, y, bw, bh, grey)
                        continue
                    self._forget_pixels(x, y, new, grey)
                    strong = known
            elif known.any():
                strong = known  # too little new to judge yet: the reported part only
            if np.count_nonzero(strong) < min_core:
                continue  # what is left of it is too small to be an object
            reported |= strong
            # The box is the strong part's: the faint rim around an object is partly the normalisation's
            # halo (the object changes the local mean of its surroundings too).
            rows, cols = np.flatnonzero(strong.any(axis=1)), np.flatnonzero(strong.any(axis=0))
            if min((rows[-1] - rows[0] + 1) * sy, (cols[-1] - cols[0] + 1) * sx) < cfg.min_side_px:
                continue  # a sliver along an edge (a car's outline after the light changed)
            strength = float(np.mean(d_long[y : y + bh, x : x + bw])) / (2 * cfg.diff_threshold)
            fill = area / float(bw * bh)
            conf.append(min(1.0, 0.5 * min(1.0, strength) + 0.5 * min(1.0, fill * 1.5)))
            boxes.append(
                ((x + cols[0]) * sx, (y + rows[0]) * sy, (x + cols[-1] + 1) * sx, (y + rows[-1] + 1) * sy)
            )
            since = self._static_since[y : y + bh, x : x + bw]
            ages.append(float(now_s - np.min(since)) if np.isfinite(since).any() else 0.0)
        if not boxes:
            return _empty()
        xyxy, conf_a, age_a = _merge_touching(
            np.array(boxes, np.float32), np.array(conf, np.float32), np.array(ages, np.float32), 2 * sx
        )
        k = len(xyxy)
        return Detections(
            xyxy=xyxy,
            confidence=conf_a,
            class_id=np.full(k, UNKNOWN_OBJECT_CLASS_ID, np.int32),
            data={"label": np.array([UNKNOWN_OBJECT] * k), STILL_S_KEY: age_a},
        )

    def _forget_pixels(self, x: int, y: int, mask: np.ndarray, grey: np.ndarray) -> None:
        """``_forget`` for the pixels of ``mask`` (a box-sized mask at ``x``, ``y``) only."""
        h, w = mask.shape
        sl = (slice(y, y + h), slice(x, x + w))
        self._long[sl][mask] = self._short[sl][mask]
        self._long_grey[sl][mask] = grey[sl][mask]
        self._evidence[sl][mask] = 0.0
        self._static_since[sl][mask] = np.inf
        self._reported[sl][mask] = False

    def _forget(self, x: int, y: int, bw: int, bh: int, grey: np.ndarray) -> None:
        """Make the region's current picture the background and drop its evidence."""
        self._long[y : y + bh, x : x + bw] = self._short[y : y + bh, x : x + bw]
        self._long_grey[y : y + bh, x : x + bw] = grey[y : y + bh, x : x + bw]
        self._evidence[y : y + bh, x : x + bw] = 0.0
        self._static_since[y : y + bh, x : x + bw] = np.inf
        self._reported[y : y + bh, x : x + bw] = False

    def _is_lighting(self, labels: np.ndarray, i: int, strong: np.ndarray, box: tuple[int, int, int, int],
                     grey: np.ndarray) -> bool:  # fmt: skip
        """Whether region ``i`` is the long-term background under other light, not a new thing.

        The same structure as the background's, closely (correlation >= 0.9), is the same surface under
        other light. Otherwise light multiplies smoothly: the region's brightness ratio to the background
        matches the ratio just around it; where the light around did not change, the region must also keep
        the background's structure (correlation >= lighting_ncc, or no structure either way). An object's
        ratio differs from its surroundings', or it brings its own structure."""
        ww, wh = self._work
        x, y, bw, bh = box
        x0, y0, x1, y1 = max(0, x - 6), max(0, y - 6), min(ww, x + bw + 6), min(wh, y + bh + 6)
        mask = (labels[y0:y1, x0:x1] == i).astype(np.uint8)
        ring = (cv2.dilate(mask, np.ones((9, 9), np.uint8)) > 0) & ~(
            cv2.dilate(mask, np.ones((3, 3), np.uint8)) > 0
        )
        inner = np.zeros_like(mask, bool)
        inner[y - y0 : y - y0 + bh, x - x0 : x - x0 + bw] = strong
        cur, bg = grey[y0:y1, x0:x1], self._long_grey[y0:y1, x0:x1]
        a = cur[inner] - cur[inner].mean()
        b = bg[inner] - bg[inner].mean()
        sa, sb = float(np.sqrt(a @ a)), float(np.sqrt(b @ b))
        flat = 2.0 * math.sqrt(a.size)  # below ~2 grey levels of contrast: no structure to compare
        ncc = float(a @ b) / (sa * sb) if sa > 1e-6 and sb > 1e-6 else 0.0
        if sa >= flat and sb >= flat and ncc >= 0.9:
            return True  # the same surface, exactly, under other light (the ring may have adapted already)
        ratio = np.log((cur + 4.0) / (bg + 4.0))
        if not ring.any():
            return False
        r_in, r_ring = float(np.median(ratio[inner])), float(np.median(ratio[ring]))
        if abs(r_in - r_ring) > 0.2:
            return False
        if abs(r_ring) > 0.1:  # the light around changed as much as the region did: a lamp, a shadow
            return True
        return (sa < flat and sb < flat) or ncc >= self.config.lighting_ncc


def _merge_touching(
    xyxy: np.ndarray, conf: np.ndarray, ages: np.ndarray, gap_px: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Merge boxes that overlap or lie within ``gap_px`` of each other (one object split in parts: a
    table's top and its legs); a merged box keeps the highest confidence and the oldest age."""
    boxes, c, a = [list(b) for b in xyxy], list(conf), list(ages)
    merged = True
    while merged and len(boxes) > 1:
        merged = False
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                bi, bj = boxes[i], boxes[j]
                if (
                    bi[0] - gap_px <= bj[2]
                    and bj[0] - gap_px <= bi[2]
                    and bi[1] - gap_px <= bj[3]
                    and bj[1] - gap_px <= bi[3]
                ):
                    boxes[i] = [min(bi[0], bj[0]), min(bi[1], bj[1]), max(bi[2], bj[2]), max(bi[3], bj[3])]
                    c[i], a[i] = max(c[i], c[j]), max(a[i], a[j])
                    del boxes[j], c[j], a[j]
                    merged = True
                    break
            if merged:
                break
    return np.array(boxes, np.float32).reshape(-1, 4), np.array(c, np.float32), np.array(a, np.float32)


#: An unknown region this similar to a model detection (IoU), or holding its centre, is that object.
KNOWN_MATCH_IOU = 0.3


def with_unknown(
    model: Detections, unknown: Detections, explaining: Collection[int] | None = None
) -> Detections:
    """What the rules see: the model's detections plus the unknown regions no known object explains.

    The known label wins: a region that overlaps a model detection of an explaining class (IoU >=
    ``KNOWN_MATCH_IOU``, or the detection's centre inside the region, or the region's centre inside the
    detection) is that object and is dropped; the rules then raise (or not) what the label says.

    Args:
        model: (n,) the trained detector's detections (any kinds).
        unknown: (m,) ``StaticObjectDetector.update`` regions, ``class_id == UNKNOWN_OBJECT_CLASS_ID``.
        explaining: class ids whose detections explain a region: the classes some violation kind is made
            of (a camera passes its kinds'). None = every class but person. People never explain a region
            (the detector masks them); nor, with the kinds' classes, does a ``trash_bin``: the bootstrap
            model's commonest label for a pile it does not know (a cardboard pile was "trash_bin" at 0.4-0.6
            in static_cardboard_day), and a real new bin is one 固定设施 rejection away from background.

    Returns:
        (n + k,) detections, k <= m; ``model`` itself when no region is left.

    Example:
        >>> len(with_unknown(garbage_on_the_pile, pile_region))  # the pile is garbage, not unknown
        1
    """
    if not len(unknown):
        return model
    if explaining is None:
        objects = model.xyxy[model.class_id != _PERSON]
    else:
        objects = model.xyxy[np.isin(model.class_id, np.fromiter(explaining, np.int32))]
    if len(objects):
        explained = iou_matrix(unknown.xyxy, objects) >= KNOWN_MATCH_IOU
        explained |= _centre_inside(objects, unknown.xyxy).T | _centre_inside(unknown.xyxy, objects)
        unknown = unknown[~explained.any(axis=1)]
    if not len(unknown):
        return model
    if not len(model):
        return unknown
    # data keys and tracker ids are kept only where both have them; the regions' stillness must survive
    model = model.with_(data={STILL_S_KEY: np.zeros(len(model), np.float32)})
    return Detections.merge([model, unknown])


def _centre_inside(points_of: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """(n, m) bool: the centre of ``points_of[i]`` lies inside ``boxes[j]``."""
    cx = (points_of[:, 0] + points_of[:, 2]) / 2
    cy = (points_of[:, 1] + points_of[:, 3]) / 2
    return (
        (cx[:, None] >= boxes[None, :, 0])
        & (cx[:, None] <= boxes[None, :, 2])
        & (cy[:, None] >= boxes[None, :, 1])
        & (cy[:, None] <= boxes[None, :, 3])
    )


def _empty() -> Detections:
    return Detections(
        xyxy=np.zeros((0, 4), np.float32),
        confidence=np.zeros(0, np.float32),
        class_id=np.zeros(0, np.int32),
        data={"label": np.zeros(0, "<U14"), STILL_S_KEY: np.zeros(0, np.float32)},
    )
