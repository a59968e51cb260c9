"""Cameras and zones configuration: the operators' contract (see docs/cameras.md).

One small pydantic model per section, ``extra="forbid"``, bounds and descriptions on every field.
Cross-field checks are named ``verify_*``. Everything here is pure: no disk, network or clock.
"""

from __future__ import annotations

import datetime as dt
import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from vision.kinds import KindSpec, RoadClass, ZoneKind
from vision.types import OBJECT_KINDS, ViolationKind, kind_of


class ConfigError(ValueError):
    """A configuration problem, with a message naming the item and the fix."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Anchor(StrEnum):
    BOTTOM_CENTER = "bottom_center"
    CENTER = "center"
    OVERLAP = "overlap"  # fraction of the box area inside the polygon


#: Which violations a zone kind watches when the zone does not list them itself.
DEFAULT_ZONE_VIOLATIONS: dict[ZoneKind, tuple[ViolationKind, ...]] = {
    ZoneKind.NO_VENDING: (
        ViolationKind.STREET_VENDING,
        ViolationKind.EXPOSED_GARBAGE,
        ViolationKind.OPEN_AIR_BARBECUE,
    ),
    ZoneKind.NO_PARKING: (ViolationKind.BIKE_MISPARKING,),
    ZoneKind.MONITORED: (ViolationKind.EXPOSED_GARBAGE, ViolationKind.OPEN_AIR_BARBECUE),
    ZoneKind.ALLOWED_VENDING: (),
    ZoneKind.BIKE_BAY: (),
    ZoneKind.BIN_AREA: (),
}

#: Default dwell per road class and violation kind, seconds (issue: vending 180/300/600, bikes 120/300).
DEFAULT_DWELL_S: dict[RoadClass, dict[ViolationKind, float]] = {
    RoadClass.MAIN: {
        ViolationKind.STREET_VENDING: 180,
        ViolationKind.EXPOSED_GARBAGE: 300,
        ViolationKind.BIKE_MISPARKING: 120,
        ViolationKind.OPEN_AIR_BARBECUE: 60,
    },
    RoadClass.SECONDARY: {
        ViolationKind.STREET_VENDING: 300,
        ViolationKind.EXPOSED_GARBAGE: 300,
        ViolationKind.BIKE_MISPARKING: 300,
        ViolationKind.OPEN_AIR_BARBECUE: 60,
    },
    RoadClass.LANE: {
        ViolationKind.STREET_VENDING: 600,
        ViolationKind.EXPOSED_GARBAGE: 300,
        ViolationKind.BIKE_MISPARKING: 600,
        ViolationKind.OPEN_AIR_BARBECUE: 60,
    },
}

#: Default membership anchor per object kind: bikes by where they stand, piles and stalls by overlap.
DEFAULT_ANCHORS: dict[str, Anchor] = {
    "person": Anchor.BOTTOM_CENTER,
    "bicycle": Anchor.BOTTOM_CENTER,
    "e_bike": Anchor.BOTTOM_CENTER,
    "vending_stall": Anchor.OVERLAP,
    "garbage": Anchor.OVERLAP,
    "trash_bin": Anchor.BOTTOM_CENTER,
    "grill": Anchor.OVERLAP,
    "smoke": Anchor.CENTER,
    "unknown_object": Anchor.OVERLAP,  # a static-object region (vision.static_objects), like a pile
}

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_WINDOW_RE = re.compile(r"^([01]\d|2[0-4]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")


class Schedule(_Model):
    """When a zone is in force. Windows like ``"18:00-02:00"`` cross midnight; the day is the start day."""

    days: list[str] = Field(default_factory=lambda: list(_DAYS), description="mon..sun the window starts on")
    windows: list[str] = Field(default_factory=lambda: ["00:00-24:00"], description="HH:MM-HH:MM, local time")

    @field_validator("days")
    @classmethod
    def _days(cls, v: list[str]) -> list[str]:
        bad = [d for d in v if d.lower() not in _DAYS]
        if bad:
            raise ValueError(f"unknown day(s) {bad}; use {', '.join(_DAYS)}")
        return [d.lower() for d in v]

    @field_validator("windows")
    @classmethod
    def _windows(cls, v: list[str]) -> list[str]:
        for w in v:
            if not _WINDOW_RE.match(w):
                raise ValueError(f"time window {w!r} is not HH:MM-HH:MM (e.g. '18:00-02:00')")
            start, end = (_minutes(p) for p in w.split("-"))
            if start > 24 * 60 or end > 24 * 60 or start == end:
                raise ValueError(f"time window {w!r} is empty or past 24:00")
        return v

    def is_active(self, local: dt.datetime) -> bool:
        """True if ``local`` (camera local time) falls in a window that starts on an allowed day."""
        minute = local.hour * 60 + local.minute + local.second / 60
        today = _DAYS[local.weekday()]
        yesterday = _DAYS[(local.weekday() - 1) % 7]
        for w in self.windows:
            start, end = (_minutes(p) for p in w.split("-"))
            if start < end:
                if today in self.days and start <= minute < end:
                    return True
            else:  # crosses midnight: the part after midnight belongs to yesterday's window
                if today in self.days and minute >= start:
                    return True
                if yesterday in self.days and minute < end:
                    return True
        return False


def _minutes(hhmm: str) -> int:
    h, m = hhmm.split(":")
    return int(h) * 60 + int(m)


Point = Annotated[list[float], Field(min_length=2, max_length=2)]


class ZoneConfig(_Model):
    id: str = Field(pattern=r"^[A-Za-z0-9_.\-]{1,64}$", description="unique within the camera")
    name: str = Field("", max_length=120, description="place name used in case descriptions")
    kind: ZoneKind
    polygon: list[Point] = Field(description="points in normalised [0,1] image coordinates, in order")
    road_class: RoadClass = RoadClass.SECONDARY
    violations: list[ViolationKind | str] | None = Field(
        None,
        description="watching zones: the kinds watched (default by zone kind, plus configured kinds "
        "naming the zone kind); exemption zones (allowed_vending, bike_bay, bin_area): the kinds the zone "
        "permits. Built-in kinds or ids of the cameras file's violations:",
    )
    schedule: Schedule | None = Field(None, description="when in force; None = always")
    dwell_s: dict[ViolationKind | str, Annotated[float, Field(ge=5, le=86400)]] = Field(
        default_factory=dict,
        description="dwell per kind in this zone, overriding the kind's road-class dwell",
    )
    unknown_object_kinds: list[ViolationKind | str] | None = Field(
        None,
        description="kinds an unknown_object region (static-object detector) may raise here, as 待分类 "
        "cases; None = exposed_garbage in monitored and no_vending zones, nothing elsewhere",
    )
    frontage_id: str | None = Field(None, description="shop frontage for 门前三包 / escalation grouping")
    gbt_code: str | None = Field(None, description="override, e.g. '0504' 店外经营 for a shop frontage")

    @field_validator("violations", "unknown_object_kinds")
    @classmethod
    def _kinds(cls, v: list[ViolationKind | str] | None) -> list[ViolationKind | str] | None:
        return None if v is None else [kind_of(k) for k in v]

    @field_validator("dwell_s")
    @classmethod
    def _dwell_kinds(cls, v: dict[ViolationKind | str, float]) -> dict[ViolationKind | str, float]:
        return {kind_of(k): d for k, d in v.items()}

    @model_validator(mode="after")
    def verify_polygon(self) -> ZoneConfig:
        verify_polygon(self.id, [tuple(p) for p in self.polygon])
        return self

    def unknown_kinds(self) -> tuple[ViolationKind | str, ...]:
        """Kinds an ``unknown_object`` region may raise in this zone (if the zone watches them)."""
        if self.unknown_object_kinds is not None:
            return tuple(self.unknown_object_kinds)
        if self.kind in (ZoneKind.MONITORED, ZoneKind.NO_VENDING):
            return (ViolationKind.EXPOSED_GARBAGE,)
        return ()

    def watches(self) -> tuple[ViolationKind | str, ...]:
        """Kinds this zone raises violations for (exemption zones raise none)."""
        if self.kind in (ZoneKind.ALLOWED_VENDING, ZoneKind.BIKE_BAY, ZoneKind.BIN_AREA):
            return ()
        return tuple(self.violations) if self.violations is not None else DEFAULT_ZONE_VIOLATIONS[self.kind]

    def dwell_for(self, kind: ViolationKind) -> float:
        """Dwell of a built-in kind here (configured kinds: ``vision.kinds.dwell_for``)."""
        return float(self.dwell_s.get(kind, DEFAULT_DWELL_S[self.road_class][kind]))


def verify_polygon(zone_id: str, points: list[tuple[float, ...]]) -> None:
    """Raise ``ValueError`` naming the zone and the fix if the polygon is unusable."""
    if len(points) < 3:
        raise ValueError(f"zone '{zone_id}' polygon has {len(points)} points; give at least 3")
    for i, (x, y) in enumerate(points):
        if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
            raise ValueError(
                f"zone '{zone_id}' point {i} ({x}, {y}) is outside [0,1]; use coordinates normalised "
                "by image width and height"
            )
    n = len(points)
    # Crossings first: a symmetric bow tie's two lobes cancel to zero signed area, and "zero area"
    # would send the user looking for points on one line.
    edges = [(points[i], points[(i + 1) % n]) for i in range(n)]
    for i in range(n):
        for j in range(i + 1, n):
            if j == i + 1 or (i == 0 and j == n - 1):
                continue  # neighbours share a vertex
            if _segments_cross(*edges[i], *edges[j]):
                raise ValueError(
                    f"zone '{zone_id}' polygon self-intersects at point {j}; list points in order "
                    "around the area"
                )
    area2 = sum(
        points[i][0] * points[(i + 1) % n][1] - points[(i + 1) % n][0] * points[i][1] for i in range(n)
    )
    if abs(area2) < 1e-9:
        raise ValueError(f"zone '{zone_id}' polygon has zero area; its points lie on one line")


def _segments_cross(p1, p2, p3, p4) -> bool:  # noqa: ANN001 - tiny geometry helper
    def orient(a, b, c) -> float:  # noqa: ANN001
        return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])

    d1, d2 = orient(p3, p4, p1), orient(p3, p4, p2)
    d3, d4 = orient(p1, p2, p3), orient(p1, p2, p4)
    return (d1 * d2 < 0) and (d3 * d4 < 0)


class SourceConfig(_Model):
    url: str = Field(description="rtsp://, rtmp://, http(s):// (MJPEG/HLS), a file path, or a device index")
    username: str | None = Field(None, description="write-only; never logged or returned by the API")
    password: str | None = Field(None, description="write-only; never logged or returned by the API")
    loop: bool = Field(False, description="loop a file source (demos)")
    rtsp_transport: str = Field("tcp", pattern="^(tcp|udp)$")


class LocationConfig(_Model):
    address: str = Field("", max_length=200, description="e.g. 人民路与滨河路口东北角")
    lon: float | None = Field(None, ge=-180, le=180)
    lat: float | None = Field(None, ge=-90, le=90)
    grid_code: str = Field("", max_length=40, description="数字城管 网格 code")
    district: str = Field("", max_length=60)


class MotionConfig(_Model):
    enabled: bool = True
    threshold: Annotated[int, Field(ge=1, le=255)] = 25
    min_area_ratio: Annotated[float, Field(ge=0, le=1)] = Field(
        0.0005,
        description="changed fraction of the analysed area that counts as motion (a far bag is ~0.001)",
    )
    full_scan_interval_s: Annotated[float, Field(ge=1, le=3600)] = 10.0
    motion_interval_s: Annotated[float, Field(ge=0, le=60)] = Field(
        1.0,
        description=(
            "while motion goes on, detect at most this often (0 = every sampled frame with motion); the "
            "first motion after a still spell is detected at once, and the settled picture right after "
            "motion ends; the frames between carry the last detections"
        ),
    )


class CameraConfig(_Model):
    id: str = Field(pattern=r"^[A-Za-z0-9_.\-]{1,64}$")
    name: str = Field("", max_length=120)
    source: SourceConfig = Field(description="the stream detection runs on (a sub-stream, e.g. 640x360)")
    evidence_source: SourceConfig | None = Field(
        None,
        description="main stream evidence frames are taken from (e.g. 1080p); None = the detection source",
    )
    evidence_keep_open: bool = Field(
        False,
        description="keep the evidence stream open between events (else opened on demand, closed after)",
    )
    enabled: bool = True
    detect_fps: Annotated[float, Field(gt=0, le=30)] = 5.0
    timezone: str = "Asia/Shanghai"
    start_time: dt.datetime | None = Field(
        None, description="wall-clock time of a file's t=0 (replay and demos); live streams use now"
    )
    location: LocationConfig = Field(default_factory=LocationConfig)
    group: str = Field("default", description="camera group; selects the active model")
    bike_operator_routing: bool = Field(False, description="send shared-bike cases to the bike operator")
    motion: MotionConfig = Field(default_factory=MotionConfig)
    static_objects: bool | None = Field(
        None,
        description="run the static-object detector (unknown_object regions, 待分类 cases where zones allow); "
        "None = on for live cameras, off in replays of files",
    )
    zones: list[ZoneConfig] = Field(default_factory=list)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {v!r}; use an IANA name like 'Asia/Shanghai'") from exc
        return v

    @model_validator(mode="after")
    def verify_unique_zones(self) -> CameraConfig:
        seen: set[str] = set()
        for z in self.zones:
            if z.id in seen:
                raise ValueError(
                    f"camera '{self.id}' has two zones with id '{z.id}'; zone ids must be unique"
                )
            seen.add(z.id)
        return self

    def local_time(self, ts_s: float, live: bool = False) -> dt.datetime:
        """Camera local time of stream time ``ts_s`` (seconds since start, or epoch seconds if ``live``)."""
        tz = ZoneInfo(self.timezone)
        if live or self.start_time is None:
            return dt.datetime.fromtimestamp(ts_s, tz)
        start = self.start_time if self.start_time.tzinfo else self.start_time.replace(tzinfo=tz)
        return (start + dt.timedelta(seconds=ts_s)).astimezone(tz)


class ModelConfig(_Model):
    path: str | None = Field(None, description="ONNX file; None = the shipped bootstrap model")
    class_map: dict[str, str | None] = Field(
        default_factory=dict,
        description="model label -> UrbanEye object kind (person, bicycle, e_bike, vending_stall, garbage, "
        "trash_bin, grill, smoke) or null to ignore the label",
    )
    score_thresholds: dict[str, Annotated[float, Field(ge=0, le=1)]] = Field(default_factory=dict)
    default_score_threshold: Annotated[float, Field(ge=0, le=1)] = 0.35
    iou_threshold: Annotated[float, Field(gt=0, le=1)] = 0.5
    intra_op_threads: Annotated[int, Field(ge=0, le=64)] = 1
    precision: str = Field(
        "auto",
        pattern="^(auto|int8|fp32)$",
        description="int8 or fp32 inference; auto = the int8 variant on CPU when one passed its gate",
    )
    group_precision: dict[str, Annotated[str, Field(pattern="^(auto|int8|fp32)$")]] = Field(
        default_factory=dict,
        description="precision per camera group (group -> auto|int8|fp32); groups not named use `precision`",
    )

    def precision_for(self, group: str) -> str:
        """The precision a camera group runs: its own (``group_precision``), else the file's ``precision``.

        Example:
            >>> ModelConfig(precision="auto", group_precision={"night": "fp32"}).precision_for("night")
            'fp32'
        """
        return self.group_precision.get(group, self.precision)

    @field_validator("class_map")
    @classmethod
    def _class_map(cls, v: dict[str, str | None]) -> dict[str, str | None]:
        kinds = {str(k) for k in OBJECT_KINDS}
        for label, kind in v.items():
            if kind is not None and kind not in kinds:
                raise ValueError(
                    f"class_map maps '{label}' to unknown kind '{kind}'; use one of {sorted(kinds)} or null"
                )
        return v


class RulesConfig(_Model):
    grace_s: Annotated[float, Field(ge=0, le=600)] = 20.0
    reopen_cooldown_s: Annotated[float, Field(ge=0, le=86400)] = 120.0
    stationary_max_shift: Annotated[float, Field(gt=0, le=2)] = Field(
        0.35, description="max centre drift, as a fraction of the box diagonal, to count as stationary"
    )
    min_score: Annotated[float, Field(ge=0, le=1)] = 0.45
    score_window: Annotated[int, Field(ge=1, le=200)] = 9
    evidence_min_gap_s: Annotated[float, Field(ge=10, le=3600)] = 10.0
    escalation_window_days: Annotated[float, Field(gt=0, le=365)] = 30.0
    escalation_yellow_at: Annotated[int, Field(ge=2, le=100)] = 2
    escalation_red_at: Annotated[int, Field(ge=3, le=100)] = 3
    update_interval_s: Annotated[float, Field(ge=1, le=3600)] = 30.0
    kinds: tuple[KindSpec, ...] = Field(
        (),
        exclude=True,
        description="configured violation kinds; filled from the cameras file's top-level violations:",
    )

    @model_validator(mode="after")
    def verify_escalation(self) -> RulesConfig:
        if self.escalation_red_at <= self.escalation_yellow_at:
            raise ValueError("rules.escalation_red_at must be greater than rules.escalation_yellow_at")
        return self


class RecheckConfig(_Model):
    """Camera re-check (智能核查) of a camera group's dispatched cases (issue 19)."""

    enabled: bool = True
    window_s: Annotated[float, Field(ge=5, le=3600)] = Field(
        60.0, description="how long the place is examined (full scans, no motion gating)"
    )
    on_states: list[str] = Field(
        default_factory=lambda: ["dispatched", "handling"],
        description="case states whose hotline callback starts a re-check",
    )
    interval_s: Annotated[float, Field(ge=0, le=7 * 86400)] = Field(
        3600.0, description="re-check cases that stay dispatched this often; 0 = only on callbacks"
    )
    auto_close_on_clear: bool = Field(False, description="核查通过 -> 结案 with reason 视频核查")
    escalate_on_still_present: bool = Field(True, description="re-open / escalate when still present")
    close_undispatched_when_gone: bool = Field(
        False, description="close a case whose violation ended by itself before dispatch"
    )


class CamerasFile(_Model):
    """Top level of a cameras file (YAML or JSON)."""

    version: int = Field(1, ge=1, le=1)
    model: ModelConfig = Field(default_factory=ModelConfig)
    rules: RulesConfig = Field(default_factory=RulesConfig)
    cameras: list[CameraConfig] = Field(default_factory=list)
    recheck: dict[str, RecheckConfig] = Field(
        default_factory=dict,
        description="re-check policy per camera group; groups not named use the defaults",
    )
    violations: list[KindSpec] = Field(
        default_factory=list, description="violation kinds beside the built-in four (vision.kinds)"
    )

    @model_validator(mode="after")
    def verify_violations(self) -> CamerasFile:
        """Kind ids are unique and new; zones name known kinds; the rules carry the kinds to every pipeline."""
        builtin = {str(k) for k in ViolationKind}
        seen: set[str] = set()
        for k in self.violations:
            if k.id in builtin or k.id in seen:
                what = "a built-in kind" if k.id in builtin else "defined twice"
                raise ValueError(f"violations[{k.id}]: id '{k.id}' is {what}; give the kind its own id")
            seen.add(k.id)
        if self.rules.kinds and tuple(self.rules.kinds) != tuple(self.violations):
            raise ValueError("rules.kinds is filled from the top-level violations: list; define kinds there")
        known = builtin | seen
        for cam in self.cameras:
            for z in cam.zones:
                named = [*(z.violations or ()), *z.dwell_s, *(z.unknown_object_kinds or ())]
                bad = sorted({str(k) for k in named if str(k) not in known})
                if bad:
                    raise ValueError(
                        f"cameras[{cam.id}].zones[{z.id}] names unknown violation kind(s) {bad}; use one of "
                        f"{sorted(known)} or define it under violations:"
                    )
        object.__setattr__(self, "rules", self.rules.model_copy(update={"kinds": tuple(self.violations)}))
        return self

    @model_validator(mode="after")
    def verify_unique_cameras(self) -> CamerasFile:
        seen: set[str] = set()
        for c in self.cameras:
            if c.id in seen:
                raise ValueError(f"two cameras have id '{c.id}'; camera ids must be unique")
            seen.add(c.id)
        return self

    def camera(self, camera_id: str) -> CameraConfig:
        for c in self.cameras:
            if c.id == camera_id:
                return c
        raise ConfigError(
            f"no camera '{camera_id}' in the cameras file; known: {[c.id for c in self.cameras]}"
        )


def parse_cameras(raw: dict[str, Any], origin: str = "cameras file") -> CamerasFile:
    """Validate a parsed cameras document; raise ``ConfigError`` with one line per problem."""
    try:
        return CamerasFile.model_validate(raw)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = _describe_loc(raw, err["loc"])
            lines.append(f"{origin}: {loc}: {err['msg'].removeprefix('Value error, ')}")
        raise ConfigError("\n".join(lines)) from None


def _describe_loc(raw: Any, loc: tuple[Any, ...]) -> str:
    """Turn ('cameras', 0, 'zones', 2, 'polygon') into "cameras[cam-1].zones[gate-3].polygon"."""
    parts: list[str] = []
    node = raw
    for item in loc:
        if isinstance(item, int) and isinstance(node, list) and 0 <= item < len(node):
            node = node[item]
            label = node.get("id") if isinstance(node, dict) else None
            parts[-1:] = [f"{parts[-1] if parts else ''}[{label or item}]"]
        else:
            node = node.get(item) if isinstance(node, dict) else None
            parts.append(str(item))
    return ".".join(parts) or "(top level)"


def load_cameras(path: str | Path) -> CamerasFile:
    """Read a YAML/JSON cameras file. Errors name the file, the item and the fix."""
    import yaml  # local: keep vision importable without PyYAML for pure uses

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read cameras file {path}: {exc.strerror}") from None
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: top level must be a mapping with 'cameras:'")
    return parse_cameras(raw, origin=str(path))
