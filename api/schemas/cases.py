"""Case schemas: list/detail, review decisions, corrections, timeline."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from api.schemas.common import UtcDatetime
from urbaneye.db.models import CaseStatus, RejectReason
from vision.types import KIND_ID_PATTERN, Escalation, ObjectKind

REJECT_REASON_ZH: dict[RejectReason, str] = {
    RejectReason.FALSE_DETECTION: "误检",
    RejectReason.PERMITTED_VENDING: "合规经营",
    RejectReason.DUPLICATE: "重复",
    RejectReason.INSUFFICIENT_EVIDENCE: "证据不足",
    RejectReason.FIXED_OBJECT: "固定设施/常驻物体",
    RejectReason.OTHER: "其他",
}


STATUS_ZH: dict[str, str] = {
    "pending_review": "待审核",
    "confirmed": "已确认",
    "rejected": "已驳回",
    "queued": "待推送",
    "accepted": "已受理",
    "dispatched": "已派遣",
    "handled": "已处置",
    "verified": "已核查",
    "closed": "已结案",
    "dead_letter": "推送失败",
}


class ErrorCode(StrEnum):
    """Stable codes (header ``X-Error-Code``) of the review conflicts the UI acts on."""

    CASE_CLAIMED = "case_claimed"  # another reviewer holds the case
    CASE_DECIDED = "case_decided"  # the case is no longer pending review


class Decision(StrEnum):
    CONFIRM = "confirm"
    REJECT = "reject"


class CaseOrder(StrEnum):
    OLDEST = "oldest"  # created_at ascending: the review queue default
    NEWEST = "newest"
    ESCALATION = "escalation"  # red, yellow, blue; oldest first within a colour


class CasePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    violation_id: str
    camera_id: str
    zone_id: str
    place_key: str
    kind: str = Field(description="a built-in kind (street_vending, ...) or a configured kind's id")
    gbt_code: str
    gbt_name: str
    kind_name_zh: str = Field(
        description="the kind's Chinese name (empty on cases older than configured kinds)"
    )
    unclassified: bool = Field(description="待分类: raised from a static object; a reviewer picks the kind")
    evidence_stream: str = Field(description="stream of the evidence frames: '', main or sub_fallback")
    source_channel: str
    address: str
    lon: float | None
    lat: float | None
    grid_code: str
    started_at: UtcDatetime
    ended_at: UtcDatetime | None
    duration_s: float
    confidence: float
    model_version: str
    escalation: str
    bbox_xyxy: list[float]
    frame_wh: list[int]
    object_count: int
    description: str
    status: str
    reject_reason: str | None
    review_note: str
    reviewed_by: str | None
    reviewed_at: UtcDatetime | None
    route: str
    hotline_ref: str
    created_at: UtcDatetime
    updated_at: UtcDatetime
    camera_name: str = Field("", description="the camera's display name")
    camera_timezone: str = Field("Asia/Shanghai", description="the camera's IANA time zone: show times in it")


class CasesPublic(BaseModel):
    data: list[CasePublic]
    count: int = Field(description="all cases matching the filters (not just this page)")


class EvidencePublic(BaseModel):
    seq: int = Field(description="1 = first sighting, 2 = dwell crossing, ...")
    variant: str = Field(description="clean | annotated | crop")
    url: str | None = Field(
        description="presigned GET URL, valid for at most 15 minutes; null until uploaded"
    )
    url_expires_s: int
    sha256: str
    size_bytes: int
    content_type: str
    frame_ts: UtcDatetime | None
    uploaded: bool


#: A violation kind's id: a built-in kind or one configured in the cameras file (``vision.kinds``).
KindId = Annotated[str, StringConstraints(pattern=KIND_ID_PATTERN)]


class CorrectionIn(BaseModel):
    """A reviewer's fix of a detection, kept with the review for retraining."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["relabel", "add", "remove", "move"] = Field(description="what the reviewer changed")
    bbox_xyxy: list[float] = Field(min_length=4, max_length=4, description="box in frame pixels, x1 y1 x2 y2")
    label: ObjectKind | None = Field(None, description="object kind the box really shows (relabel/add)")
    kind: KindId | None = Field(None, description="violation kind it really is, if different")
    seq: int = Field(2, ge=1, le=100, description="evidence frame the box refers to")

    @model_validator(mode="after")
    def verify_box(self) -> CorrectionIn:
        x1, y1, x2, y2 = self.bbox_xyxy
        if not (x2 > x1 and y2 > y1) or min(self.bbox_xyxy) < 0:
            raise ValueError("bbox_xyxy must be x1 < x2, y1 < y2, all >= 0 (pixels of the evidence frame)")
        if self.action in ("relabel", "add") and self.label is None and self.kind is None:
            raise ValueError(f"correction '{self.action}' needs a label or kind; say what the box shows")
        return self


class VerifyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: Decision
    kind: KindId | None = Field(
        None,
        description="confirm as this kind (GET /api/v1/kinds): its code and name replace the case's, and the box "
        "becomes a training label. A 待分类 (unclassified) case is confirmed only with a kind",
    )
    object_box: list[float] | None = Field(
        None,
        min_length=4,
        max_length=4,
        description="with kind: the object's box, x1 y1 x2 y2 pixels of evidence frame object_seq (default: "
        "the case's box)",
    )
    object_label: ObjectKind | None = Field(
        None, description="with kind: the object class in the box (default: the kind's first class)"
    )
    object_seq: int = Field(2, ge=1, le=100, description="evidence frame object_box refers to")
    reason: RejectReason | None = Field(
        None, description="required to reject: 误检/固定设施/合规经营/重复/证据不足/其他"
    )
    note: str = Field("", max_length=2000, description="required when reason is 'other'")
    corrections: list[CorrectionIn] = Field(default_factory=list, max_length=50)
    duration_ms: int | None = Field(
        None, ge=0, le=86_400_000, description="time the reviewer spent on the case"
    )

    @model_validator(mode="after")
    def verify_reason(self) -> VerifyIn:
        if self.decision == Decision.REJECT and self.reason is None:
            raise ValueError(
                "a rejection needs a reason: false_detection, fixed_object, permitted_vending, duplicate, "
                "insufficient_evidence or other"
            )
        if self.decision == Decision.CONFIRM and self.reason is not None:
            raise ValueError("a confirmation takes no reason; drop 'reason' or reject instead")
        if self.reason == RejectReason.OTHER and not self.note.strip():
            raise ValueError("reason 'other' (其他) needs a note saying why")
        if self.kind is not None and self.decision != Decision.CONFIRM:
            raise ValueError("a kind is chosen only when confirming (选择类型即确认); reject without 'kind'")
        if self.kind is None and (self.object_box is not None or self.object_label is not None):
            raise ValueError("object_box and object_label go with 'kind'; add the kind the object shows")
        if self.object_box is not None:
            x1, y1, x2, y2 = self.object_box
            if not (x2 > x1 and y2 > y1) or min(self.object_box) < 0:
                raise ValueError(
                    "object_box must be x1 < x2, y1 < y2, all >= 0 (pixels of the evidence frame)"
                )
        return self


class BulkVerifyIn(VerifyIn):
    case_ids: list[str] = Field(min_length=1, max_length=200)

    @model_validator(mode="after")
    def verify_one_box(self) -> BulkVerifyIn:
        if self.object_box is not None:
            raise ValueError("object_box belongs to one case; classify cases with a box one at a time")
        return self


class BulkItemResult(BaseModel):
    case_id: str
    ok: bool
    status: str | None = None
    error: str | None = None


class BulkVerifyOut(BaseModel):
    data: list[BulkItemResult]
    count: int
    succeeded: int


class ReviewPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    user_id: str
    username: str | None = None
    decision: str
    reason: str | None
    note: str
    duration_ms: int | None
    created_at: UtcDatetime


class TimelineEntry(BaseModel):
    at: UtcDatetime
    actor: str
    action: str
    from_status: str
    to_status: str
    detail: dict
    hash: str


class CaseTimeline(BaseModel):
    case_id: str
    data: list[TimelineEntry]
    reviews: list[ReviewPublic]


class CaseDetail(CasePublic):
    evidence: list[EvidencePublic]
    corrections: list[dict]
    reviews: list[ReviewPublic]
    zone_name: str
    zone_polygon: list[list[float]] = Field(description="zone outline, normalised [0,1] points")
    place_earlier_count: int = Field(description="earlier cases at the same place (camera+zone or place_key)")


STATUS_VALUES = [s.value for s in CaseStatus]
ESCALATION_VALUES = [e.value for e in Escalation]


class ClaimOut(BaseModel):
    """A claim's outcome. Losing a case to another reviewer is an everyday answer, not an error."""

    case_id: str
    claimed: bool = Field(description="true: the case is yours until expires_at (claim again to extend)")
    expires_at: UtcDatetime | None = None
    code: ErrorCode | None = Field(None, description="why not: case_claimed or case_decided")
    detail: str = Field("", description="why not, in Chinese, for the reviewer")


class LiveTicket(BaseModel):
    token: str = Field(description="for GET /api/v1/live/events?token=…; valid for a minute, only there")
    expires_at: UtcDatetime
