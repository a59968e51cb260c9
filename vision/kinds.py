"""Violation kinds: the catalogue of what the rules can raise (issue 19).

Each kind is a ``KindSpec``: an instance of a rule template (``stationary_object``, ``cluster``, ``pair``; see
``vision.rules.templates``) with its object classes, the zone kinds that watch it, a dwell (per road class),
GB/T 30428.2 code and name, Chinese name, escalation and evidence options. The built-in four are
``BUILTIN_KINDS``; a cameras file adds kinds in its top-level ``violations:`` list, and
``kind_catalogue(cameras_file)`` returns both, built-ins first. Configured kinds reach every camera pipeline
through ``RulesConfig.kinds`` (filled from ``violations:`` when the file is validated).

Pure: no disk, network or clock.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from vision.types import GBT_CODES, KIND_ID_PATTERN, OBJECT_KINDS, VIOLATION_NAMES_ZH, ViolationKind

if TYPE_CHECKING:  # annotations only: vision.config imports this module
    from vision.config import CamerasFile, RulesConfig, ZoneConfig


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RoadClass(StrEnum):
    """主干道严禁、次干道严控、小街巷规范."""

    MAIN = "main"
    SECONDARY = "secondary"
    LANE = "lane"


class ZoneKind(StrEnum):
    NO_VENDING = "no_vending"
    NO_PARKING = "no_parking"
    MONITORED = "monitored"  # garbage and barbecue watched
    ALLOWED_VENDING = "allowed_vending"  # 便民摊区 / 夜市, legal during its schedule
    BIKE_BAY = "bike_bay"  # bikes inside never count
    BIN_AREA = "bin_area"  # garbage inside never counts


class KindTemplate(StrEnum):
    """Rule templates a violation kind is an instance of (``vision.rules.templates``)."""

    STATIONARY_OBJECT = "stationary_object"  # object(s) of given classes staying in a zone for a dwell
    CLUSTER = "cluster"  # min_count or more such objects together
    PAIR = "pair"  # an object with a partner beside it (grill + smoke, garbage touching a bin)


_DWELL = Annotated[float, Field(ge=5, le=86400)]


class RoadDwell(_Section):
    """A dwell per road class, seconds (主干道严禁、次干道严控、小街巷规范)."""

    main: _DWELL
    secondary: _DWELL
    lane: _DWELL


class KindEvidence(_Section):
    """Which moments of a violation ask the stream worker for an evidence frame."""

    on_sighting: bool = Field(True, description="keep the first-sighting frame (before the dwell is due)")
    on_growth: bool = Field(True, description="a new frame when more objects join an open violation")


class KindSpec(_Section):
    """One violation kind: a rule template with its classes, zones, dwell, codes and names.

    The built-in four are ``vision.kinds.BUILTIN_KINDS``; a cameras file adds kinds in ``violations:``.
    """

    id: str = Field(
        pattern=KIND_ID_PATTERN, description="the event's and the case's kind, e.g. goods_display"
    )
    name_zh: str = Field(
        min_length=1, max_length=60, description="Chinese name shown to reviewers, e.g. 出店陈列"
    )
    gbt_code: str = Field(pattern=r"^[0-9]{2,12}$", description="GB/T 30428.2 event code, e.g. '0504'")
    gbt_name: str = Field("", max_length=60, description="the code's name; empty = the name_zh")
    template: KindTemplate
    classes: list[str] = Field(min_length=1, description="object kinds (after model.class_map) that violate")
    zone_kinds: list[ZoneKind] = Field(min_length=1, description="zones of these kinds watch the kind")
    exempt_zone_kinds: list[ZoneKind] = Field(
        default_factory=list,
        description="exemption zones (allowed_vending, bike_bay, bin_area) that permit it",
    )
    frontage_only: bool = Field(False, description="watched only in zones with a frontage_id (门前)")
    dwell_s: _DWELL | RoadDwell = Field(description="seconds, or per road class {main, secondary, lane}")
    merge_widths: Annotated[float, Field(ge=0, le=10)] = Field(
        1.5, description="objects within this many box widths are one place (0: only overlapping boxes)"
    )
    min_count: Annotated[int, Field(ge=1, le=100)] = Field(1, description="cluster: objects a place needs")
    partner_classes: list[str] = Field(default_factory=list, description="pair: the partner's object kinds")
    partner_required: bool = Field(
        True, description="pair: the object counts only beside a partner; False: the partner raises the score"
    )
    partner_reach: Annotated[float, Field(ge=0, le=10)] = Field(
        0.5, description="pair: how far (object widths, each side) the partner may be"
    )
    partner_rise: Annotated[float, Field(ge=0, le=10)] = Field(
        0.0, description="pair: how far above (object heights) the partner may be (smoke rises)"
    )
    support_weight: Annotated[float, Field(ge=0, le=1)] = Field(
        0.5, description="pair with partner_required false: 1 - (1 - score)(1 - w * partner score)"
    )
    not_held: bool = Field(False, description="an object in a standing person's hands does not count")
    not_same_box_as: list[str] = Field(
        default_factory=list,
        description="a box that is one of these kinds' box again (IoU >= 0.5) is that object",
    )
    not_around: list[str] = Field(
        default_factory=list,
        description="a box around one of these kinds' centre is that object's (a grill stall)",
    )
    frontage_gbt_code: str | None = Field(
        None,
        pattern=r"^[0-9]{2,12}$",
        description="code at a zone with a frontage_id; a zone's gbt_code overrides it",
    )
    escalation: bool = Field(True, description="三色单: repeat offences at one place escalate yellow, red")
    evidence: KindEvidence = Field(default_factory=KindEvidence)

    @model_validator(mode="after")
    def verify_template(self) -> KindSpec:
        verify_kind(self)
        return self

    def dwell_on(self, road_class: RoadClass) -> float:
        """Default dwell on a road class (a zone's ``dwell_s`` entry overrides it)."""
        if isinstance(self.dwell_s, RoadDwell):
            return float(getattr(self.dwell_s, str(road_class)))
        return float(self.dwell_s)


_EXEMPTION_ZONE_KINDS = (ZoneKind.ALLOWED_VENDING, ZoneKind.BIKE_BAY, ZoneKind.BIN_AREA)


def verify_kind(kind: KindSpec) -> None:
    """Raise ``ValueError`` naming the field and the fix if a kind's template and fields do not fit."""
    known = {str(k) for k in OBJECT_KINDS}
    for field_name in ("classes", "partner_classes", "not_same_box_as", "not_around"):
        bad = [c for c in getattr(kind, field_name) if c not in known]
        if bad:
            raise ValueError(
                f"{field_name} {bad} are not object kinds; use {sorted(known)} (map a model's own labels onto "
                "them with model.class_map)"
            )
    if kind.template is KindTemplate.CLUSTER and kind.min_count < 2:
        raise ValueError("template cluster needs min_count >= 2 (one object is template stationary_object)")
    if kind.template is not KindTemplate.CLUSTER and kind.min_count != 1:
        raise ValueError(f"min_count is for template cluster; template {kind.template} takes one object")
    if (kind.template is KindTemplate.PAIR) != bool(kind.partner_classes):
        raise ValueError("template pair needs partner_classes, and only template pair takes them")
    bad_exempt = [str(z) for z in kind.exempt_zone_kinds if z not in _EXEMPTION_ZONE_KINDS]
    if bad_exempt:
        raise ValueError(
            f"exempt_zone_kinds {bad_exempt} are not exemption zones; use allowed_vending, bike_bay, bin_area"
        )


def _builtin(kind: ViolationKind, **fields: object) -> KindSpec:
    return KindSpec(id=str(kind), name_zh=VIOLATION_NAMES_ZH[kind], **fields)  # type: ignore[arg-type]


#: The built-in four, as template instances, in the order the pipeline runs their rules.
BUILTIN_KINDS: dict[ViolationKind, KindSpec] = {
    ViolationKind.STREET_VENDING: _builtin(
        ViolationKind.STREET_VENDING,
        gbt_code="0501",
        frontage_gbt_code="0504",
        template=KindTemplate.STATIONARY_OBJECT,
        classes=["vending_stall"],
        zone_kinds=[ZoneKind.NO_VENDING],
        exempt_zone_kinds=[ZoneKind.ALLOWED_VENDING],
        dwell_s=RoadDwell(main=180, secondary=300, lane=600),
        merge_widths=0.0,  # neighbouring stalls are separate offences; a split detection overlaps itself
        not_around=["grill"],  # a stall built around a grill is reported once, as barbecue
    ),
    ViolationKind.EXPOSED_GARBAGE: _builtin(
        ViolationKind.EXPOSED_GARBAGE,
        gbt_code="0102",
        template=KindTemplate.STATIONARY_OBJECT,
        classes=["garbage"],
        zone_kinds=[ZoneKind.NO_VENDING, ZoneKind.MONITORED],
        exempt_zone_kinds=[ZoneKind.BIN_AREA],
        dwell_s=300,
        not_held=True,
        not_same_box_as=["trash_bin"],
    ),
    ViolationKind.BIKE_MISPARKING: _builtin(
        ViolationKind.BIKE_MISPARKING,
        gbt_code="0506",
        template=KindTemplate.STATIONARY_OBJECT,
        classes=["bicycle", "e_bike"],
        zone_kinds=[ZoneKind.NO_PARKING],
        exempt_zone_kinds=[ZoneKind.BIKE_BAY],
        dwell_s=RoadDwell(main=120, secondary=300, lane=600),
    ),
    ViolationKind.OPEN_AIR_BARBECUE: _builtin(
        ViolationKind.OPEN_AIR_BARBECUE,
        gbt_code="0510",
        template=KindTemplate.PAIR,
        classes=["grill"],
        zone_kinds=[ZoneKind.NO_VENDING, ZoneKind.MONITORED],
        dwell_s=60,
        partner_classes=["smoke"],  # supporting evidence: a smoking grill the detector is unsure of passes
        partner_required=False,
        partner_reach=1.0,
        partner_rise=3.0,
        support_weight=0.5,
    ),
}

#: ``kind id -> KindSpec`` of every kind a camera's rules can raise, built-ins first.
Catalogue = dict[str, KindSpec]


def catalogue_of(rules: RulesConfig) -> Catalogue:
    """The built-in kinds plus those configured (``rules.kinds``, filled from the cameras file)."""
    out: Catalogue = {str(k): spec for k, spec in BUILTIN_KINDS.items()}
    out.update((k.id, k) for k in rules.kinds)
    return out


def kind_catalogue(cameras_file: CamerasFile) -> Catalogue:
    """``kind id -> KindSpec``: the built-in four, then the file's ``violations:``.

    Example:
        >>> list(kind_catalogue(load_cameras("cameras.yaml")))
        ['street_vending', 'exposed_garbage', 'bike_misparking', 'open_air_barbecue', 'goods_display']
    """
    return catalogue_of(cameras_file.rules)


def kind_name_zh(kind: str, catalogue: Catalogue | None = None) -> str:
    """The kind's Chinese name (``占道经营``); a kind not in the catalogue is named by its id."""
    spec = (catalogue or {}).get(str(kind)) or BUILTIN_KINDS.get(kind)  # type: ignore[call-overload]
    return spec.name_zh if spec is not None else str(kind)


def gbt_code_for(zone: ZoneConfig, spec: KindSpec) -> str:
    """GB/T 30428.2 code of a kind in a zone: a frontage code at a zone with a ``frontage_id`` (vending is
    0504 店外经营 there, else 0501 游商), the zone's ``gbt_code`` override for such kinds, else the kind's."""
    if spec.frontage_gbt_code is not None:
        if zone.gbt_code:
            return zone.gbt_code
        if zone.frontage_id:
            return spec.frontage_gbt_code
    return spec.gbt_code


def gbt_name_for(code: str, spec: KindSpec) -> str:
    """The name of a code: the standard's (``GBT_CODES``), else the kind's ``gbt_name`` or Chinese name."""
    known = GBT_CODES.get(code)
    if known is not None:
        return known.name
    return spec.gbt_name or spec.name_zh


def dwell_for(zone: ZoneConfig, spec: KindSpec) -> float:
    """Seconds a kind must stay in a zone: the zone's ``dwell_s`` entry, else the kind's for its road class."""
    override = zone.dwell_s.get(spec.id)
    return float(override) if override is not None else spec.dwell_on(zone.road_class)


def zone_watches(zone: ZoneConfig, spec: KindSpec) -> bool:
    """Whether a zone watches a kind (schedules aside).

    Built-ins follow ``ZoneConfig.watches`` (the zone's list, else defaults by zone kind; exemption zones
    none). A configured kind is watched where the zone lists it, or, in a zone without a list, where the
    zone's kind is one of its ``zone_kinds`` (exemption zone kinds too: 垃圾桶满溢 in a ``bin_area``);
    ``frontage_only`` kinds need a ``frontage_id``.
    """
    if spec.id in _BUILTIN_IDS:
        return not _is_exemption(zone) and spec.id in zone.watches()
    if spec.frontage_only and not zone.frontage_id:
        return False
    if zone.violations is not None and not _is_exemption(zone):
        return spec.id in zone.violations
    return zone.kind in spec.zone_kinds


def zone_exempts(zone: ZoneConfig, spec: KindSpec) -> bool:
    """Whether an exemption zone permits a kind while in force: its ``violations`` list if given, else the
    kind's ``exempt_zone_kinds``."""
    if not _is_exemption(zone):
        return False
    if zone.violations is not None:
        return spec.id in zone.violations
    return zone.kind in spec.exempt_zone_kinds


def unknown_may_raise(zone: ZoneConfig, spec: KindSpec) -> bool:
    """Whether an ``unknown_object`` region may raise this kind in this zone (``ZoneConfig.unknown_kinds``)."""
    return spec.id in zone.unknown_kinds()


def _is_exemption(zone: ZoneConfig) -> bool:
    return zone.kind in _EXEMPTION_ZONE_KINDS


_BUILTIN_IDS = frozenset(str(k) for k in ViolationKind)
