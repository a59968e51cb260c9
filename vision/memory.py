"""False-alarm memory of one camera: objects a reviewer rejected, recognised by place and appearance.

When a reviewer rejects a case as 误检 (false detection) or 固定设施/常驻物体 (fixed object), the object is
remembered as a ``MemoryEntry``: the violation kind, its box in the frame and a compact appearance
descriptor of its crop. A detection of that kind later matches the entry when it is at the same place
(IoU with the remembered box >= ``MemoryParams.place_min_iou``) **and** looks the same (descriptor
similarity >= ``MemoryParams.appearance_min_sim``). ``MemoryBook.filter`` removes matching detections
before the rules see them, so the remembered object never opens a violation; anything else at that place
(a stall set up where a rock was rejected, a bag dropped beside a planter) is another appearance or
another box, and opens as usual. A memory whose place no longer looks like the entry for
``MemoryParams.gone_after_s`` is *gone* (the object was moved away) and stops matching.

The appearance descriptor (``describe``) was chosen by measurement (docs/real-cameras.md, "False-alarm
memory"): a gradient-orientation histogram of the grey crop (4 x 4 cells x 8 orientations, L2-normalised,
128 floats), compared by cosine. Of the candidates measured (hue/saturation histogram, DCT hash, colour +
gradients) it best survives day/dusk/night/haze lighting of the same object while telling other objects at
the same place apart: colour is what night and infrared take away first.

Pure: no clock, disk or network; time is an argument (the same clock as the pipeline's ``ts_s``).

Example:
    >>> book = MemoryBook([entry_from_crop("m1", "cam-1", ViolationKind.EXPOSED_GARBAGE, box, frame)])
    >>> kept = book.filter(detections, frame, ts_s=12.0)   # the rock's detection is gone from ``kept``
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from vision.geometry import iou_matrix
from vision.rules import RULES
from vision.types import KIND_ID_PATTERN, OBJECT_KINDS, Detections, ObjectKind, ViolationKind, kind_of

#: Version tag of ``describe``'s output; entries with another tag are not compared (re-create them).
DESCRIPTOR_VERSION = "hog4x4o8-l2.v1"
#: Crops are resized to this square before the descriptor is computed, px.
PATCH_PX = 32
HOG_CELLS = 4
HOG_BINS = 8
DESCRIPTOR_LEN = HOG_CELLS * HOG_CELLS * HOG_BINS


class MemoryError_(ValueError):  # noqa: N801 - MemoryError is a builtin
    """A memory entry or memory file that cannot be used, with a message naming the item and the fix."""


@dataclass(frozen=True)
class MemoryParams:
    """How strictly a candidate must match a memory.

    Attributes:
        place_min_iou: IoU of the detection's box with the remembered box (rescaled to the frame).
        appearance_min_sim: ``similarity`` of the detection's crop with the remembered descriptor.
        episode_gap_s: matches further apart than this count as separate suppressions.
        scene_check_s: how often the remembered place is looked at (is the object still there?).
        gone_after_s: a place that has not looked like the entry for this long: the object has gone.
    """

    place_min_iou: float = 0.5
    appearance_min_sim: float = 0.85
    episode_gap_s: float = 120.0
    scene_check_s: float = 30.0
    gone_after_s: float = 900.0


@dataclass(frozen=True)
class MemoryEntry:
    """One remembered false alarm of one camera.

    Attributes:
        entry_id: stable id (the database row's).
        camera_id: the camera whose frames it applies to.
        kind: the violation kind that was rejected (a built-in ``ViolationKind`` or a configured kind's id);
            detections of its rule's object kinds are compared (a configured kind: every kind but people).
        box_xyxy: the object's box in pixels of a ``frame_wh`` frame.
        frame_wh: the frame size the box is in; boxes are rescaled to other frame sizes.
        descriptor: ``describe`` of the crop, ``DESCRIPTOR_LEN`` floats.
        created_s / expires_s: in the pipeline's clock; ``expires_s`` None = never (the worker also
            drops expired entries when it refreshes them from the database).
        reviewer: who rejected the case (display only).
        case_id: the rejected case it was made from (display only).
    """

    entry_id: str
    camera_id: str
    kind: ViolationKind | str
    box_xyxy: tuple[float, float, float, float]
    frame_wh: tuple[int, int]
    descriptor: tuple[float, ...]
    created_s: float = 0.0
    expires_s: float | None = None
    reviewer: str = ""
    case_id: str = ""
    descriptor_version: str = DESCRIPTOR_VERSION

    def __post_init__(self) -> None:
        x1, y1, x2, y2 = self.box_xyxy
        if not (x2 > x1 and y2 > y1):
            raise MemoryError_(
                f"memory '{self.entry_id}': box_xyxy {self.box_xyxy} is empty; need x1<x2, y1<y2"
            )
        if self.frame_wh[0] <= 0 or self.frame_wh[1] <= 0:
            raise MemoryError_(
                f"memory '{self.entry_id}': frame_wh {self.frame_wh} must be [width, height] > 0"
            )
        if self.descriptor_version == DESCRIPTOR_VERSION and len(self.descriptor) != DESCRIPTOR_LEN:
            raise MemoryError_(
                f"memory '{self.entry_id}': descriptor has {len(self.descriptor)} values, expected "
                f"{DESCRIPTOR_LEN} ({DESCRIPTOR_VERSION}); re-create it from the case"
            )

    @property
    def class_ids(self) -> tuple[int, ...]:
        """Detector classes (indexes into ``OBJECT_KINDS``) this memory can suppress: the built-in kind's
        rule's; for a configured kind (its classes live in the cameras file) every object kind but people —
        a match still needs the same place and the same look."""
        rule = RULES.get(self.kind) if isinstance(self.kind, ViolationKind) else None
        if rule is not None:
            return rule.spec.class_ids
        return tuple(i for i, k in enumerate(OBJECT_KINDS) if k is not ObjectKind.PERSON)

    def box_in(self, frame_wh: tuple[int, int]) -> tuple[float, float, float, float]:
        """The remembered box in pixels of a ``frame_wh`` frame (same view, maybe another resolution)."""
        sx, sy = frame_wh[0] / self.frame_wh[0], frame_wh[1] / self.frame_wh[1]
        x1, y1, x2, y2 = self.box_xyxy
        return (x1 * sx, y1 * sy, x2 * sx, y2 * sy)

    def to_json(self) -> dict[str, Any]:
        return {
            "entry_id": self.entry_id,
            "camera_id": self.camera_id,
            "kind": str(self.kind),
            "box_xyxy": [float(v) for v in self.box_xyxy],
            "frame_wh": [int(v) for v in self.frame_wh],
            "descriptor": [round(float(v), 6) for v in self.descriptor],
            "descriptor_version": self.descriptor_version,
            "created_s": self.created_s,
            "expires_s": self.expires_s,
            "reviewer": self.reviewer,
            "case_id": self.case_id,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MemoryEntry:
        """One entry of a memory file; ``MemoryError_`` names what is missing or wrong."""
        missing = [
            k
            for k in ("entry_id", "camera_id", "kind", "box_xyxy", "frame_wh", "descriptor")
            if k not in data
        ]
        if missing:
            raise MemoryError_(
                f"memory entry {data.get('entry_id', '?')!r} lacks {missing}; each entry needs entry_id, "
                "camera_id, kind, box_xyxy, frame_wh and descriptor (see docs/real-cameras.md)"
            )
        if not re.fullmatch(KIND_ID_PATTERN, str(data["kind"])):
            raise MemoryError_(
                f"memory entry {data['entry_id']!r}: kind {data['kind']!r} is not a violation kind; use one of "
                f"{[k.value for k in ViolationKind]} or a configured kind's id ({KIND_ID_PATTERN})"
            )
        kind = kind_of(str(data["kind"]))
        box = tuple(float(v) for v in data["box_xyxy"])
        wh = tuple(int(v) for v in data["frame_wh"])
        if len(box) != 4 or len(wh) != 2:
            raise MemoryError_(f"memory entry {data['entry_id']!r}: box_xyxy needs 4 numbers, frame_wh 2")
        expires = data.get("expires_s")
        return cls(
            entry_id=str(data["entry_id"]),
            camera_id=str(data["camera_id"]),
            kind=kind,
            box_xyxy=box,  # type: ignore[arg-type]
            frame_wh=wh,  # type: ignore[arg-type]
            descriptor=tuple(float(v) for v in data["descriptor"]),
            created_s=float(data.get("created_s") or 0.0),
            expires_s=None if expires is None else float(expires),
            reviewer=str(data.get("reviewer") or ""),
            case_id=str(data.get("case_id") or ""),
            descriptor_version=str(data.get("descriptor_version") or DESCRIPTOR_VERSION),
        )


@dataclass(frozen=True)
class MemoryUpdate:
    """What one entry did since the last ``MemoryBook.take_updates`` (for the database row)."""

    entry_id: str
    suppressed: int  # new suppression episodes
    last_suppressed_s: float | None  # last match since the previous update; None: none since
    gone: bool  # the place stopped looking like the entry: the object has been moved away


@dataclass
class _EntryState:
    entry: MemoryEntry
    descriptor: np.ndarray
    last_match_s: float | None = None
    new_suppressions: int = 0
    last_suppressed_s: float | None = None
    last_check_s: float | None = None
    last_present_s: float | None = None
    gone: bool = False
    gone_reported: bool = False
    dirty: bool = False


# ------------------------------------------------------------------------------------- descriptor
def _crop(image: np.ndarray, box_xyxy: Sequence[float]) -> np.ndarray | None:
    h, w = image.shape[:2]
    x1 = int(max(0, math.floor(box_xyxy[0])))
    y1 = int(max(0, math.floor(box_xyxy[1])))
    x2 = int(min(w, math.ceil(box_xyxy[2])))
    y2 = int(min(h, math.ceil(box_xyxy[3])))
    if x2 - x1 < 2 or y2 - y1 < 2:
        return None
    return image[y1:y2, x1:x2]


def gradient_histogram(grey: np.ndarray, cells: int = HOG_CELLS, bins: int = HOG_BINS) -> np.ndarray:
    """(PATCH_PX, PATCH_PX) uint8 -> (cells * cells * bins,) unsigned gradient-orientation histograms of
    a cells x cells grid, L2-normalised as a whole: a brightness change shifts no gradient and a contrast
    change scales all of them alike, so both cancel out; the grid keeps the object's shape."""
    g = grey.astype(np.float32)
    gx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3)
    mag = np.sqrt(gx * gx + gy * gy)
    ang = np.mod(np.arctan2(gy, gx), np.pi)
    idx = np.minimum((ang / np.pi * bins).astype(np.int32), bins - 1)
    step = grey.shape[0] // cells
    cell = (np.arange(grey.shape[0]) // step).clip(max=cells - 1)
    flat = (cell[:, None] * cells + cell[None, :]) * bins + idx
    out = np.bincount(flat.ravel(), weights=mag.ravel(), minlength=cells * cells * bins).astype(np.float32)
    return out / max(float(np.linalg.norm(out)), 1e-6)


def describe(image_bgr: np.ndarray, box_xyxy: Sequence[float]) -> np.ndarray | None:
    """Appearance descriptor of the object in ``box_xyxy`` of ``image_bgr``.

    Args:
        image_bgr: (h, w, 3) uint8 BGR frame (greyscale (h, w) is accepted).
        box_xyxy: the object's box in pixels.

    Returns:
        (DESCRIPTOR_LEN,) float32, unit length; None when the box has less than 2 px inside the frame.

    Example:
        >>> describe(np.zeros((100, 100, 3), np.uint8), (10, 10, 50, 60)).shape
        (128,)
    """
    crop = _crop(image_bgr, box_xyxy)
    if crop is None:
        return None
    patch = cv2.resize(crop, (PATCH_PX, PATCH_PX), interpolation=cv2.INTER_AREA)
    grey = patch if patch.ndim == 2 else cv2.cvtColor(patch, cv2.COLOR_BGR2GRAY)
    return gradient_histogram(grey)


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """0..1 likeness of two ``describe`` outputs (cosine; both are unit vectors of non-negative values)."""
    return float(np.clip(a @ b, 0.0, 1.0))


def entry_from_crop(
    entry_id: str,
    camera_id: str,
    kind: ViolationKind | str,
    box_xyxy: Sequence[float],
    image_bgr: np.ndarray,
    *,
    created_s: float = 0.0,
    expires_s: float | None = None,
    reviewer: str = "",
    case_id: str = "",
) -> MemoryEntry:
    """A ``MemoryEntry`` for the object at ``box_xyxy`` of ``image_bgr`` (an evidence frame)."""
    desc = describe(image_bgr, box_xyxy)
    if desc is None:
        raise MemoryError_(
            f"memory '{entry_id}': box {list(box_xyxy)} has no pixels inside the {image_bgr.shape[1]}x"
            f"{image_bgr.shape[0]} frame; use the case's clean evidence frame"
        )
    h, w = image_bgr.shape[:2]
    return MemoryEntry(
        entry_id=entry_id,
        camera_id=camera_id,
        kind=kind,
        box_xyxy=tuple(float(v) for v in box_xyxy),  # type: ignore[arg-type]
        frame_wh=(int(w), int(h)),
        descriptor=tuple(float(v) for v in desc),
        created_s=created_s,
        expires_s=expires_s,
        reviewer=reviewer,
        case_id=case_id,
    )


# ------------------------------------------------------------------------------------------ book
@dataclass
class MemoryBook:
    """The memory entries of one camera and what they did. One thread uses it (the camera's).

    ``filter`` removes detections that match an entry; ``take_updates`` hands over suppression counts
    and gone places for the database. ``replace`` takes a refreshed entry list and keeps the counters
    of entries that stay.
    """

    entries: Iterable[MemoryEntry] = ()
    params: MemoryParams = field(default_factory=MemoryParams)

    def __post_init__(self) -> None:
        self._states: dict[str, _EntryState] = {}
        self.replace(self.entries)

    def __len__(self) -> int:
        return len(self._states)

    def replace(self, entries: Iterable[MemoryEntry]) -> None:
        """The current entry list (a refresh from the database); counters of kept entries carry over."""
        states: dict[str, _EntryState] = {}
        for e in entries:
            if e.descriptor_version != DESCRIPTOR_VERSION:
                continue  # cannot be compared with today's descriptor; the UI shows it for deletion
            old = self._states.get(e.entry_id)
            if old is not None and old.entry == e:
                states[e.entry_id] = old
            else:
                states[e.entry_id] = _EntryState(e, np.asarray(e.descriptor, np.float32))
        self._states = states
        self.entries = tuple(s.entry for s in states.values())

    def active(self, ts_s: float) -> list[MemoryEntry]:
        """Entries that can match at ``ts_s``: not expired, not gone."""
        return [s.entry for s in self._live(ts_s)]

    def _live(self, ts_s: float) -> list[_EntryState]:
        return [
            s
            for s in self._states.values()
            if not s.gone and (s.entry.expires_s is None or ts_s < s.entry.expires_s)
        ]

    def filter(self, detections: Detections, image_bgr: np.ndarray | None, ts_s: float) -> Detections:
        """``detections`` without those that match a live entry (same place and same appearance).

        Args:
            detections: (n,) detections of one frame, pixels of ``image_bgr``.
            image_bgr: the frame; None (rules-replay from detections only) compares place alone.
            ts_s: the frame's time, in the pipeline's clock.

        Returns:
            (m,) detections, m <= n (the same object when nothing matched).
        """
        live = self._live(ts_s)
        if not live:
            return detections
        if image_bgr is not None:
            self._check_scene(live, image_bgr, ts_s)
            live = [s for s in live if not s.gone]
        if not len(detections) or not live:
            return detections
        frame_wh = (
            (int(image_bgr.shape[1]), int(image_bgr.shape[0]))
            if image_bgr is not None
            else live[0].entry.frame_wh
        )
        boxes = np.array([s.entry.box_in(frame_wh) for s in live], np.float32)
        iou = iou_matrix(detections.xyxy.astype(np.float32), boxes)  # (n, k)
        drop = np.zeros(len(detections), bool)
        cls = detections.class_id
        for j, state in enumerate(live):
            near = np.nonzero((iou[:, j] >= self.params.place_min_iou) & np.isin(cls, state.entry.class_ids))[
                0
            ]
            for i in near:
                if drop[i]:
                    continue
                if image_bgr is not None:
                    desc = describe(image_bgr, detections.xyxy[i])
                    if desc is None or similarity(desc, state.descriptor) < self.params.appearance_min_sim:
                        continue
                drop[i] = True
                self._suppressed(state, ts_s)
        return detections[~drop] if drop.any() else detections

    def _suppressed(self, state: _EntryState, ts_s: float) -> None:
        if state.last_match_s is None or ts_s - state.last_match_s > self.params.episode_gap_s:
            state.new_suppressions += 1
        state.last_match_s = ts_s
        state.last_suppressed_s = ts_s
        state.last_present_s = ts_s
        state.dirty = True

    def _check_scene(self, live: list[_EntryState], image_bgr: np.ndarray, ts_s: float) -> None:
        """Every ``scene_check_s``: does the remembered place still look like the entry?"""
        wh = (int(image_bgr.shape[1]), int(image_bgr.shape[0]))
        for s in live:
            if s.last_check_s is not None and ts_s - s.last_check_s < self.params.scene_check_s:
                continue
            s.last_check_s = ts_s
            if s.last_present_s is None:
                s.last_present_s = ts_s  # first look: give the object gone_after_s to show itself
            desc = describe(image_bgr, s.entry.box_in(wh))
            if desc is not None and similarity(desc, s.descriptor) >= self.params.appearance_min_sim:
                s.last_present_s = ts_s
            elif ts_s - s.last_present_s >= self.params.gone_after_s:
                s.gone = True
                s.dirty = True

    def take_updates(self) -> list[MemoryUpdate]:
        """Suppressions and gone places since the last call (each reported once)."""
        out = []
        for s in self._states.values():
            if not s.dirty:
                continue
            out.append(
                MemoryUpdate(
                    s.entry.entry_id,
                    s.new_suppressions,
                    s.last_suppressed_s,
                    gone=s.gone and not s.gone_reported,
                )
            )
            s.new_suppressions = 0
            s.last_suppressed_s = None
            s.gone_reported = s.gone_reported or s.gone
            s.dirty = False
        return out


def load_memory_file(data: Any, camera_ids: Iterable[str] | None = None) -> dict[str, list[MemoryEntry]]:
    """A memory file's JSON (``{"entries": [...]}`` or a list of entries) -> entries per camera id.

    ``camera_ids``: the cameras being replayed; an entry of another camera is an error naming it.
    """
    items = data.get("entries") if isinstance(data, Mapping) else data
    if not isinstance(items, list):
        raise MemoryError_('a memory file is {"entries": [ ... ]} (or a JSON list of entries)')
    known = None if camera_ids is None else set(camera_ids)
    out: dict[str, list[MemoryEntry]] = {}
    for item in items:
        if not isinstance(item, Mapping):
            raise MemoryError_(f"memory entry {item!r} is not a JSON object")
        entry = MemoryEntry.from_json(item)
        if known is not None and entry.camera_id not in known:
            raise MemoryError_(
                f"memory entry '{entry.entry_id}' is for camera '{entry.camera_id}', not one of "
                f"{sorted(known)}; drop it or add that camera"
            )
        out.setdefault(entry.camera_id, []).append(entry)
    return out


__all__ = [
    "DESCRIPTOR_LEN",
    "DESCRIPTOR_VERSION",
    "MemoryBook",
    "MemoryEntry",
    "MemoryError_",
    "MemoryParams",
    "MemoryUpdate",
    "describe",
    "entry_from_crop",
    "load_memory_file",
    "similarity",
]
