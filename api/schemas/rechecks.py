"""Camera re-checks of a case (issue 19): the requests, their results and after-photos."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from api.schemas.common import UtcDatetime


class RecheckPhoto(BaseModel):
    variant: str = Field(description="clean | annotated")
    url: str = Field(description="presigned GET URL, valid for at most 15 minutes")
    url_expires_s: int
    sha256: str = Field(description="SHA-256 of the stored JPEG; the re-check's audit row carries it too")


class RecheckPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    case_id: str
    camera_id: str
    trigger: str = Field(
        description="callback (派遣/处置) | schedule | ended (violation gone before dispatch) | manual"
    )
    case_status: str = Field(description="the case's status when the re-check was requested")
    requested_by: str
    requested_at: UtcDatetime
    state: str = Field(description="pending | running | done | skipped")
    started_at: UtcDatetime | None
    finished_at: UtcDatetime | None
    window_s: float
    result: str = Field(description="cleared | still_present | inconclusive; empty until done")
    reason: str = Field(description="why inconclusive or skipped (Chinese)")
    frames: int
    usable_frames: int
    present_frames: int
    objects_after: int
    present_bbox_xyxy: list[float] = Field(description="the object's box when still present, frame pixels")
    frame_wh: list[int]
    frame_at: UtcDatetime | None
    action: str = Field(description="what the policy did: closed | closed_undispatched | escalated | ...")
    photos: list[RecheckPhoto] = Field(default_factory=list, description="the after-photo, when stored")


class RechecksPublic(BaseModel):
    data: list[RecheckPublic]
    count: int
