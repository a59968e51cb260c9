"""Camera and zone schemas. Request bodies are the operators' own config models from vision.config, so
the API validates exactly what a cameras file validates. Credentials are write-only.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from api.schemas.common import UtcDatetime
from vision.config import CameraConfig, LocationConfig, MotionConfig, Point, SourceConfig, ZoneConfig

#: API caps, checked before anything reaches the database: a zone's polygon check is quadratic in its
#: points, and the database columns are bounded.
MAX_ZONE_POINTS = 64
MAX_ZONES_PER_CAMERA = 64
MAX_URL_CHARS = 2048


class SourcePublic(BaseModel):
    url: str = Field(
        description="stream URL with credentials replaced by *** (admins only; empty for other roles)"
    )
    has_credentials: bool = Field(description="a username/password is stored (never returned)")
    loop: bool
    rtsp_transport: str


class CameraStatusPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    camera_id: str
    worker_id: str = ""
    state: str = Field("offline", description="online | degraded | offline")
    input_fps: float = 0.0
    detect_fps: float = 0.0
    last_frame_at: UtcDatetime | None = None
    reconnects: int = 0
    dropped_frames: int = 0
    error: str = ""
    has_snapshot: bool = False
    updated_at: UtcDatetime | None = None


class CameraPublic(BaseModel):
    id: str
    name: str
    group: str
    enabled: bool
    detect_fps: float
    timezone: str
    start_time: dt.datetime | None
    bike_operator_routing: bool
    location: LocationConfig
    motion: MotionConfig
    source: SourcePublic
    zones: list[ZoneConfig]
    status: CameraStatusPublic
    updated_at: UtcDatetime | None


class InvalidCameraPublic(BaseModel):
    """A camera that cannot run as configured: known only from its status (an invalid camera of the
    cameras file ``urbaneye run`` set aside) or a ``cameras`` row that no longer validates."""

    id: str
    origin: Literal["file", "database"] = Field(
        description="file: an invalid camera of the cameras file, not started; database: its row no longer validates"
    )
    error: str = Field(description="what is wrong and how to fix it")
    status: CameraStatusPublic


class CamerasPublic(BaseModel):
    data: list[CameraPublic]
    count: int
    invalid: list[InvalidCameraPublic] = Field(
        default_factory=list, description="cameras that cannot run as configured, with their error"
    )


class ZonesPublic(BaseModel):
    data: list[ZoneConfig]
    count: int


class SourceIn(SourceConfig):
    url: str = Field(
        min_length=1,
        max_length=MAX_URL_CHARS,
        description="rtsp://, rtsps://, rtmp://, rtmps:// or http(s):// URL (see URBANEYE_CAMERA_SCHEMES)",
    )
    username: str | None = Field(None, max_length=256, description="write-only; never logged or returned")
    password: str | None = Field(None, max_length=256, description="write-only; never logged or returned")


class ZoneIn(ZoneConfig):
    """A zone as the API accepts it: the cameras-file model with bounded sizes."""

    polygon: list[Point] = Field(
        min_length=3,
        max_length=MAX_ZONE_POINTS,
        description=f"3..{MAX_ZONE_POINTS} points in normalised [0,1] image coordinates, in order",
    )
    frontage_id: str | None = Field(None, max_length=64, description="shop frontage for escalation grouping")
    gbt_code: str | None = Field(None, max_length=16, description="override, e.g. '0504' 店外经营")


class CameraCreate(CameraConfig):
    """A camera as created or replaced: the cameras-file model (zones optional, replaced when given),
    with bounded sizes."""

    source: SourceIn
    timezone: str = Field("Asia/Shanghai", max_length=64, description="IANA time zone")
    group: str = Field(
        "default", min_length=1, max_length=64, description="camera group; selects the active model"
    )
    zones: list[ZoneIn] = Field(default_factory=list, max_length=MAX_ZONES_PER_CAMERA)
