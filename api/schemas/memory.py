"""False-alarm memory entries as the camera page shows them."""

from __future__ import annotations

from pydantic import BaseModel, Field

from api.schemas.common import UtcDatetime


class MemoryEntryPublic(BaseModel):
    """One remembered object of a camera (made when a reviewer rejected a case as 误检 / 固定设施)."""

    id: str
    camera_id: str
    kind: str = Field(description="the rejected violation kind")
    bbox_xyxy: list[float] = Field(description="the object's box, pixels of a frame_wh frame")
    frame_wh: list[int]
    case_id: str = Field(description="the rejected case it was made from")
    reason: str = Field(description="false_detection (误检) or fixed_object (固定设施/常驻物体)")
    reviewer: str = Field(description="username of the reviewer who rejected the case")
    created_at: UtcDatetime
    expires_at: UtcDatetime
    suppressed_count: int = Field(description="false alarms it suppressed (one per stay of the object)")
    last_suppressed_at: UtcDatetime | None
    gone_at: UtcDatetime | None = Field(
        description="when the place stopped looking like it (object moved away)"
    )
    state: str = Field(description="active | expired | gone")
    crop_url: str | None = Field(description="presigned link to the case's crop (≤ 15 min), if uploaded")


class MemoryEntriesPublic(BaseModel):
    data: list[MemoryEntryPublic]
    count: int
