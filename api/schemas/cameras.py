"""Camera and zone schemas. Request bodies are the operators' own config models from vision.config, so
the API validates exactly what a cameras file validates. Credentials are write-only.
"""

from __future__ import annotations

import datetime as dt
import re
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field

from vision.config import CameraConfig, LocationConfig, MotionConfig, ZoneConfig


class SourcePublic(BaseModel):
    url: str = Field(description="stream URL with any user:password replaced by ***")
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
    last_frame_at: dt.datetime | None = None
    reconnects: int = 0
    dropped_frames: int = 0
    error: str = ""
    has_snapshot: bool = False
    updated_at: dt.datetime | None = None


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
    updated_at: dt.datetime | None


class CamerasPublic(BaseModel):
    data: list[CameraPublic]
    count: int


class ZonesPublic(BaseModel):
    data: list[ZoneConfig]
    count: int


#: A camera as created or replaced: the cameras-file model (zones optional, replaced when given).
CameraCreate = CameraConfig


def mask_url(url: str) -> str:
    """``rtsp://user:pw@host/x`` -> ``rtsp://***@host/x``; other strings unchanged."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"***@{host}"))


_USERINFO_RE = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)[^/@\s]+@")


def mask_text(text: str) -> str:
    """Mask every ``scheme://user:pw@`` in free text (log lines)."""
    return _USERINFO_RE.sub(r"\g<scheme>***@", text)
