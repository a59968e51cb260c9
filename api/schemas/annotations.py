"""The annotation queue of real frames as the API shows it (``/api/v1/annotations``)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from api.schemas.common import UtcDatetime

XYXY = Annotated[
    list[float], Field(min_length=4, max_length=4, description="x1, y1, x2, y2 pixels of the frame")
]


class BoxIn(BaseModel):
    """A reviewer's box."""

    model_config = ConfigDict(extra="forbid")

    label: str = Field(
        description="object class: person, bicycle, e_bike, vending_stall, garbage, trash_bin, grill, smoke"
    )
    xyxy: XYXY


class LabelsIn(BaseModel):
    """The frame's boxes; an empty list means none of the eight classes is in the frame (a negative)."""

    model_config = ConfigDict(extra="forbid")

    boxes: list[BoxIn] = Field(max_length=200)


class BoxOut(BaseModel):
    label: str
    xyxy: list[float]


class ProposalOut(BaseModel):
    label: str = Field(description="an object class, or unknown_object (a static region of no known class)")
    xyxy: list[float]
    score: float
    source: str = Field(description="model (the detector) | unknown (the static-object detector)")


class AnnotationItemPublic(BaseModel):
    """One sampled frame with its provenance and, once done, the reviewer's answer."""

    id: str
    camera_id: str
    frame_at: UtcDatetime = Field(description="when the camera saw the frame")
    reason: str = Field(description="near_threshold | unknown_region | periodic: why it was sampled")
    time_bucket: str = Field(description="camera-local hours of the time-of-day bucket, e.g. 20-24")
    model_version: str
    width: int
    height: int
    sha256: str
    image_url: str = Field(description="presigned link to the frame (≤ 15 min)")
    proposals: list[ProposalOut] = Field(description="the model's boxes, to accept or correct")
    status: str = Field(description="pending | labelled | negative (nothing here) | skipped")
    labels: list[BoxOut]
    labelled_by: str | None = Field(description="username of the reviewer who answered")
    labelled_at: UtcDatetime | None
    lease_expires_at: UtcDatetime | None = Field(description="until when the current reviewer holds it")
    created_at: UtcDatetime


class NextItemOut(BaseModel):
    item: AnnotationItemPublic | None = Field(description="the item leased to you; null when none is left")
    pending: int = Field(description="items waiting that nobody else holds")


class AnnotationItemsPublic(BaseModel):
    data: list[AnnotationItemPublic]
    count: int = Field(description="items matching the filter in all")


class AnnotationStatsOut(BaseModel):
    by_status: dict[str, int]
    by_reason: dict[str, int]
    by_camera: dict[str, dict[str, int]]
    boxes: int = Field(description="boxes in labelled items")
    pending_free: int = Field(description="pending items nobody holds now")
