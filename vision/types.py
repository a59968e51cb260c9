"""Core types that flow through every vision stage.

Data flows one way: frame -> ``Detections`` -> tracked ``Detections`` -> zone membership ->
rule state -> ``ViolationEvent``. Boxes are always ``xyxy`` pixels of the frame they came from.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import MISSING, dataclass, field, fields
from enum import StrEnum
from typing import Any

import numpy as np


class ObjectKind(StrEnum):
    """What the detector finds. Model labels are mapped onto these by a class map."""

    PERSON = "person"
    BICYCLE = "bicycle"
    E_BIKE = "e_bike"
    VENDING_STALL = "vending_stall"
    GARBAGE = "garbage"
    TRASH_BIN = "trash_bin"
    GRILL = "grill"
    SMOKE = "smoke"


#: Class order of the bootstrap model; ``class_id`` indexes this tuple for our own models.
OBJECT_KINDS: tuple[ObjectKind, ...] = tuple(ObjectKind)

#: Label of what the static-object detector (``vision.static_objects``) reports: something new that stays,
#: of no class the model knows. It is no ``ObjectKind``.
UNKNOWN_OBJECT = "unknown_object"
#: ``class_id`` of an unknown object: one past ``OBJECT_KINDS``, so indexing ``OBJECT_KINDS`` with it fails
#: loudly instead of naming one of the model's classes.
UNKNOWN_OBJECT_CLASS_ID = len(OBJECT_KINDS)
#: ``Detections.data`` key of an unknown object's seconds of stillness before this frame (0 for model rows).
STILL_S_KEY = "static_s"


class ViolationKind(StrEnum):
    """The four built-in violation kinds. Kinds configured in a cameras file (``vision.kinds``) are plain
    strings (their ``id``); a StrEnum compares equal to its value, so both mix in one ``str`` field."""

    STREET_VENDING = "street_vending"
    EXPOSED_GARBAGE = "exposed_garbage"
    BIKE_MISPARKING = "bike_misparking"
    OPEN_AIR_BARBECUE = "open_air_barbecue"


_BUILTIN_VALUES = frozenset(str(k) for k in ViolationKind)

#: A configured kind's id: it is the event's and the case's ``kind`` (cases.kind is String(32)).
KIND_ID_PATTERN = r"^[a-z][a-z0-9_]{1,31}$"
_KIND_ID_RE = re.compile(KIND_ID_PATTERN)


def kind_of(value: str) -> ViolationKind | str:
    """A violation kind read back from text: the ``ViolationKind`` member for a built-in, else the
    configured kind's id.

    Example:
        >>> kind_of("street_vending") is ViolationKind.STREET_VENDING, kind_of("goods_display")
        (True, 'goods_display')
    """
    value = str(value)
    if value in _BUILTIN_VALUES:
        return ViolationKind(value)
    if not _KIND_ID_RE.match(value):
        raise ValueError(f"violation kind {value!r} is not a kind id (lower-case letters, digits, _; 2-32)")
    return value


@dataclass(frozen=True)
class EventCode:
    """A GB/T 30428.2 digital urban-management event code."""

    code: str
    name: str


#: GB/T 30428.2 event codes. Vending uses 0501 (游商, roaming) or 0504 (店外经营, at a frontage).
GBT_CODES: dict[str, EventCode] = {
    "0102": EventCode("0102", "暴露垃圾"),
    "0501": EventCode("0501", "无照经营游商"),
    "0504": EventCode("0504", "店外经营"),
    "0506": EventCode("0506", "非机动车乱停放"),
    "0510": EventCode("0510", "露天烧烤"),
}

DEFAULT_GBT_CODE: dict[ViolationKind, str] = {
    ViolationKind.STREET_VENDING: "0501",
    ViolationKind.EXPOSED_GARBAGE: "0102",
    ViolationKind.BIKE_MISPARKING: "0506",
    ViolationKind.OPEN_AIR_BARBECUE: "0510",
}

VIOLATION_NAMES_ZH: dict[ViolationKind, str] = {
    ViolationKind.STREET_VENDING: "占道经营",
    ViolationKind.EXPOSED_GARBAGE: "暴露垃圾",
    ViolationKind.BIKE_MISPARKING: "非机动车乱停放",
    ViolationKind.OPEN_AIR_BARBECUE: "露天烧烤",
}


class Escalation(StrEnum):
    """三色单: repeat offences at one place escalate blue -> yellow -> red."""

    BLUE = "blue"
    YELLOW = "yellow"
    RED = "red"

    @property
    def rank(self) -> int:
        """Order of severity, 0 = blue: a case keeps the highest escalation any of its events had.

        Example:
            >>> Escalation.RED.rank > Escalation.YELLOW.rank > Escalation.BLUE.rank
            True
        """
        return _ESCALATION_ORDER.index(self)


_ESCALATION_ORDER: tuple[Escalation, ...] = tuple(Escalation)


class EventKind(StrEnum):
    """What a ``ViolationEvent`` says about its violation.

    ``sighting`` stays in the stream worker (it keeps the first-sighting frame); the other three are
    handed to cases (``PUBLIC_EVENT_KINDS``).
    """

    OPENED = "opened"
    UPDATED = "updated"
    CLOSED = "closed"
    SIGHTING = "sighting"


#: Event kinds that leave the stream worker: spooled, turned into cases, written by ``replay``.
PUBLIC_EVENT_KINDS: tuple[EventKind, ...] = (EventKind.OPENED, EventKind.UPDATED, EventKind.CLOSED)


def _as_array(value: Any, dtype: Any, name: str) -> np.ndarray:
    try:
        return np.asarray(value, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"Detections.{name} could not be converted to {np.dtype(dtype)}: {exc}") from exc


@dataclass(frozen=True)
class Detections:
    """Objects found in one frame, as parallel numpy arrays.

    Attributes:
        xyxy: (n, 4) float32 boxes in pixels, ``x1, y1, x2, y2``.
        confidence: (n,) float32 scores in [0, 1].
        class_id: (n,) int32 indexes into ``OBJECT_KINDS`` (after the class map).
        tracker_id: (n,) int64 track ids, or None before tracking.
        data: extra per-detection arrays, each of length n (e.g. ``{"zone_id": ...}``).

    Example:
        >>> det = Detections(xyxy=[[0, 0, 10, 10]], confidence=[0.9], class_id=[3])
        >>> len(det[det.confidence > 0.5])
        1
    """

    xyxy: np.ndarray
    confidence: np.ndarray
    class_id: np.ndarray
    tracker_id: np.ndarray | None = None
    data: Mapping[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        xyxy = (
            _as_array(self.xyxy, np.float32, "xyxy").reshape(-1, 4)
            if np.size(self.xyxy)
            else np.zeros((0, 4), np.float32)
        )
        n = len(xyxy)
        conf = _as_array(self.confidence, np.float32, "confidence").reshape(-1)
        cls = _as_array(self.class_id, np.int32, "class_id").reshape(-1)
        if conf.shape != (n,):
            raise ValueError(f"Detections.confidence must have shape ({n},), got {conf.shape}")
        if cls.shape != (n,):
            raise ValueError(f"Detections.class_id must have shape ({n},), got {cls.shape}")
        tid = None
        if self.tracker_id is not None:
            tid = _as_array(self.tracker_id, np.int64, "tracker_id").reshape(-1)
            if tid.shape != (n,):
                raise ValueError(f"Detections.tracker_id must have shape ({n},), got {tid.shape}")
        data: dict[str, np.ndarray] = {}
        for key, value in dict(self.data).items():
            arr = np.asarray(value)
            if len(arr) != n:
                raise ValueError(f"Detections.data[{key!r}] must have length {n}, got {len(arr)}")
            data[key] = arr
        object.__setattr__(self, "xyxy", xyxy)
        object.__setattr__(self, "confidence", conf)
        object.__setattr__(self, "class_id", cls)
        object.__setattr__(self, "tracker_id", tid)
        object.__setattr__(self, "data", data)

    @classmethod
    def empty(cls) -> Detections:
        return cls(
            xyxy=np.zeros((0, 4), np.float32), confidence=np.zeros(0, np.float32), class_id=np.zeros(0)
        )

    @classmethod
    def merge(cls, parts: list[Detections]) -> Detections:
        """Concatenate detections; ``tracker_id`` and ``data`` keys are kept only if all parts have them."""
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls.empty()
        tid = (
            None
            if any(p.tracker_id is None for p in parts)
            else np.concatenate([p.tracker_id for p in parts])
        )
        keys = set.intersection(*(set(p.data) for p in parts))
        return cls(
            xyxy=np.concatenate([p.xyxy for p in parts]),
            confidence=np.concatenate([p.confidence for p in parts]),
            class_id=np.concatenate([p.class_id for p in parts]),
            tracker_id=tid,
            data={k: np.concatenate([p.data[k] for p in parts]) for k in keys},
        )

    def __len__(self) -> int:
        return len(self.xyxy)

    def __iter__(self) -> Iterator[Detections]:
        for i in range(len(self)):
            yield self[i : i + 1]

    def __getitem__(self, index: int | slice | np.ndarray | list[int]) -> Detections:
        if isinstance(index, int | np.integer):
            index = [int(index)]
        return Detections(
            xyxy=self.xyxy[index],
            confidence=self.confidence[index],
            class_id=self.class_id[index],
            tracker_id=None if self.tracker_id is None else self.tracker_id[index],
            data={k: v[index] for k, v in self.data.items()},
        )

    def with_(self, **changes: Any) -> Detections:
        """A copy with some fields replaced (``data`` entries are merged, not replaced)."""
        data = dict(self.data)
        data.update(changes.pop("data", {}))
        fields = {
            "xyxy": self.xyxy,
            "confidence": self.confidence,
            "class_id": self.class_id,
            "tracker_id": self.tracker_id,
            "data": data,
        }
        fields.update(changes)
        return Detections(**fields)

    @property
    def kinds(self) -> list[ObjectKind]:
        return [OBJECT_KINDS[i] for i in self.class_id]

    @property
    def area(self) -> np.ndarray:
        """(n,) box areas in px²."""
        return np.clip(self.xyxy[:, 2] - self.xyxy[:, 0], 0, None) * np.clip(
            self.xyxy[:, 3] - self.xyxy[:, 1], 0, None
        )

    def anchors(self, anchor: str = "bottom_center") -> np.ndarray:
        """(n, 2) anchor points: ``bottom_center`` or ``center``."""
        x = (self.xyxy[:, 0] + self.xyxy[:, 2]) / 2
        if anchor == "bottom_center":
            return np.stack([x, self.xyxy[:, 3]], axis=1)
        if anchor == "center":
            return np.stack([x, (self.xyxy[:, 1] + self.xyxy[:, 3]) / 2], axis=1)
        raise ValueError(f"unknown anchor {anchor!r}; use 'bottom_center' or 'center'")

    def of_kind(self, *kinds: ObjectKind) -> Detections:
        ids = [OBJECT_KINDS.index(k) for k in kinds]
        return self[np.isin(self.class_id, ids)]


@dataclass(frozen=True)
class ViolationEvent:
    """One open / update / close of a violation, as rules emit it.

    ``evidence_request`` is True when the event asks the stream worker to keep the current frame as
    evidence (first sighting and dwell crossing of a stationary violation, >= 10 s apart).

    ``kind`` is a ``ViolationKind`` for the built-in four, else a configured kind's id (``vision.kinds``).
    ``gbt_name`` and ``kind_name_zh`` name the code and the kind in Chinese; ``unclassified`` is True when
    the violation was raised from static-object regions only (``unknown_object``, no model detection of a
    known class there): the case is 待分类.
    """

    event: EventKind  # plain strings are accepted and converted (``EventKind("opened")``)
    violation_id: str
    camera_id: str
    zone_id: str
    kind: ViolationKind | str
    ts_s: float
    bbox_xyxy: tuple[float, float, float, float]
    score: float
    gbt_code: str
    escalation: Escalation
    dwell_s: float = 0.0
    first_seen_s: float = 0.0
    object_count: int = 1
    evidence_request: bool = False
    place_key: str = ""  # camera/zone/kind/frontage-or-cell: where repeat offences are counted
    gbt_name: str = ""  # GB/T 30428.2 name of gbt_code, e.g. 店外经营
    kind_name_zh: str = ""  # the kind in Chinese, e.g. 占道经营
    unclassified: bool = False  # raised from unknown_object regions only: 待分类

    def __post_init__(self) -> None:
        if type(self.event) is not EventKind:
            object.__setattr__(self, "event", EventKind(self.event))
        if type(self.kind) is not ViolationKind:
            object.__setattr__(self, "kind", kind_of(self.kind))

    def to_json(self) -> dict[str, Any]:
        return {
            "event": str(self.event),
            "violation_id": self.violation_id,
            "camera_id": self.camera_id,
            "zone_id": self.zone_id,
            "kind": str(self.kind),
            "ts_s": round(float(self.ts_s), 3),
            "bbox_xyxy": [round(float(v), 1) for v in self.bbox_xyxy],
            "score": round(float(self.score), 4),
            "gbt_code": self.gbt_code,
            "escalation": str(self.escalation),
            "dwell_s": round(float(self.dwell_s), 2),
            "first_seen_s": round(float(self.first_seen_s), 3),
            "object_count": int(self.object_count),
            "evidence_request": bool(self.evidence_request),
            "place_key": self.place_key,
            "gbt_name": self.gbt_name,
            "kind_name_zh": self.kind_name_zh,
            "unclassified": bool(self.unclassified),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ViolationEvent:
        """The inverse of ``to_json`` (spool files, JSONL event logs).

        A key that older versions did not write (``place_key``, ...) takes the field's default, so
        spool files written before it was added still load.

        Example:
            >>> ViolationEvent.from_json(event.to_json()) == event  # up to to_json's rounding
            True
        """
        data = {**_EVENT_DEFAULTS, **data}
        return cls(
            event=EventKind(data["event"]),
            violation_id=str(data["violation_id"]),
            camera_id=str(data["camera_id"]),
            zone_id=str(data["zone_id"]),
            kind=kind_of(data["kind"]),
            ts_s=float(data["ts_s"]),
            bbox_xyxy=tuple(float(v) for v in data["bbox_xyxy"]),  # type: ignore[arg-type]
            score=float(data["score"]),
            gbt_code=str(data["gbt_code"]),
            escalation=Escalation(data["escalation"]),
            dwell_s=float(data["dwell_s"]),
            first_seen_s=float(data["first_seen_s"]),
            object_count=int(data["object_count"]),
            evidence_request=bool(data["evidence_request"]),
            place_key=str(data["place_key"]),
            gbt_name=str(data["gbt_name"]),
            kind_name_zh=str(data["kind_name_zh"]),
            unclassified=bool(data["unclassified"]),
        )


#: The fields of ``ViolationEvent`` that have a default, for ``from_json`` of older layouts.
_EVENT_DEFAULTS: dict[str, Any] = {
    f.name: f.default for f in fields(ViolationEvent) if f.default is not MISSING
}
