"""Database tables (SQLAlchemy 2). Alembic migrations in ``urbaneye/db/migrations`` track every change.

Times are UTC ``timezone=True`` columns. Ids are strings so they survive export to the hotline unchanged.
"""

from __future__ import annotations

import datetime as dt
import uuid
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def new_id() -> str:
    return uuid.uuid4().hex


#: Named constraints, so later migrations can alter them (SQLite batch mode needs names too).
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class Role(StrEnum):
    ADMIN = "admin"
    REVIEWER = "reviewer"
    VIEWER = "viewer"
    SERVICE = "service"  # stream/celery workers


class CaseStatus(StrEnum):
    PENDING_REVIEW = "pending_review"
    CONFIRMED = "confirmed"
    REJECTED = "rejected"
    QUEUED = "queued"  # queued for hotline
    ACCEPTED = "accepted"  # 受理
    DISPATCHED = "dispatched"  # 派遣
    HANDLED = "handled"  # 处置
    VERIFIED = "verified"  # 核查
    CLOSED = "closed"  # 结案
    DEAD_LETTER = "dead_letter"  # hotline push failed after max retries; re-sendable


#: Statuses a case reaches only after a reviewer confirmed it.
CONFIRMED_STATUSES = frozenset(
    {
        CaseStatus.CONFIRMED,
        CaseStatus.QUEUED,
        CaseStatus.ACCEPTED,
        CaseStatus.DISPATCHED,
        CaseStatus.HANDLED,
        CaseStatus.VERIFIED,
        CaseStatus.CLOSED,
        CaseStatus.DEAD_LETTER,
    }
)


class RejectReason(StrEnum):
    FALSE_DETECTION = "false_detection"  # 误检
    PERMITTED_VENDING = "permitted_vending"  # 合规经营
    DUPLICATE = "duplicate"  # 重复
    INSUFFICIENT_EVIDENCE = "insufficient_evidence"  # 证据不足
    FIXED_OBJECT = "fixed_object"  # 固定设施/常驻物体: remembered by the camera's false-alarm memory
    OTHER = "other"  # 其他


class OutboxStatus(StrEnum):
    PENDING = "pending"  # to be delivered (the relay sends a task when next_attempt_at is due)
    SENT = "sent"  # the intake took it
    DEAD = "dead"  # refused, or out of retries: the case is dead_letter
    CANCELLED = "cancelled"  # the review was undone before it left


class User(Base):
    __tablename__ = "users"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(120), default="")
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default=Role.VIEWER.value)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # bumped by a password change/reset or a logout: tokens carrying an older version are refused
    token_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class LoginThrottle(Base):
    """Login tries counted per ``user:<name>|<address>`` and per ``addr:<address>`` (api.auth)."""

    __tablename__ = "login_throttle"
    key: Mapped[str] = mapped_column(String(160), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)


class Camera(Base):
    __tablename__ = "cameras"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(120), default="")
    group: Mapped[str] = mapped_column(String(64), default="default")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # CameraConfig as JSON without zones (zones live in their own table); credentials included, never returned
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)
    zones: Mapped[list[Zone]] = relationship(back_populates="camera", cascade="all, delete-orphan")


class Zone(Base):
    __tablename__ = "zones"
    __table_args__ = (UniqueConstraint("camera_id", "zone_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    camera_id: Mapped[str] = mapped_column(ForeignKey("cameras.id", ondelete="CASCADE"))
    zone_id: Mapped[str] = mapped_column(String(64))
    config: Mapped[dict[str, Any]] = mapped_column(JSON)  # ZoneConfig as JSON
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)
    camera: Mapped[Camera] = relationship(back_populates="zones")


class CameraStatus(Base):
    """Live status reported by the stream worker that holds the camera."""

    __tablename__ = "camera_status"
    camera_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    worker_id: Mapped[str] = mapped_column(String(128), default="")
    state: Mapped[str] = mapped_column(String(16), default="offline")  # online | degraded | offline
    input_fps: Mapped[float] = mapped_column(Float, default=0.0)
    detect_fps: Mapped[float] = mapped_column(Float, default=0.0)
    last_frame_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    reconnects: Mapped[int] = mapped_column(Integer, default=0)
    dropped_frames: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str] = mapped_column(Text, default="")
    snapshot_key: Mapped[str] = mapped_column(String(255), default="")
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class CameraLease(Base):
    """Which worker processes a camera; expired leases are taken over by live workers."""

    __tablename__ = "camera_leases"
    camera_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    worker_id: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)


class Case(Base):
    __tablename__ = "cases"
    __table_args__ = (
        Index("ix_cases_status_created", "status", "created_at"),
        Index("ix_cases_camera_kind", "camera_id", "kind"),
        # serves the reviewer queue "highest escalation first, then oldest"
        Index("ix_cases_status_escalation_created", "status", "escalation", "created_at", "id"),
    )
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    violation_id: Mapped[str] = mapped_column(String(64), unique=True)  # idempotency key
    camera_id: Mapped[str] = mapped_column(String(64), index=True)
    zone_id: Mapped[str] = mapped_column(String(64), default="")
    place_key: Mapped[str] = mapped_column(String(160), default="", index=True)  # camera/zone/frontage
    kind: Mapped[str] = mapped_column(String(32))  # a built-in ViolationKind or a configured kind's id
    gbt_code: Mapped[str] = mapped_column(String(12))  # a configured kind's code may be longer than 4
    gbt_name: Mapped[str] = mapped_column(String(60))
    kind_name_zh: Mapped[str] = mapped_column(String(60), default="", server_default="")  # 出店陈列, ...
    # 待分类: raised from a static-object region only (no known class there); a reviewer picks the kind
    unclassified: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    evidence_stream: Mapped[str] = mapped_column(
        String(16), default="", server_default=""
    )  # main | sub_fallback
    source_channel: Mapped[str] = mapped_column(String(16), default="视频抓拍")
    address: Mapped[str] = mapped_column(String(200), default="")
    lon: Mapped[float | None] = mapped_column(Float, nullable=True)
    lat: Mapped[float | None] = mapped_column(Float, nullable=True)
    grid_code: Mapped[str] = mapped_column(String(40), default="")
    started_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    duration_s: Mapped[float] = mapped_column(Float, default=0.0)
    confidence: Mapped[float] = mapped_column(Float, default=0.0)
    model_version: Mapped[str] = mapped_column(String(64), default="")
    escalation: Mapped[str] = mapped_column(String(8), default="blue")
    bbox_xyxy: Mapped[list[Any]] = mapped_column(JSON, default=list)
    frame_wh: Mapped[list[Any]] = mapped_column(JSON, default=list)
    object_count: Mapped[int] = mapped_column(Integer, default=1)
    description: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default=CaseStatus.PENDING_REVIEW.value, index=True)
    reject_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    review_note: Mapped[str] = mapped_column(Text, default="")
    reviewed_by: Mapped[str | None] = mapped_column(String(32), nullable=True)
    reviewed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    corrections: Mapped[list[Any]] = mapped_column(JSON, default=list)  # reviewer box/label fixes
    route: Mapped[str] = mapped_column(String(16), default="hotline")  # hotline | bike_operator
    hotline_ref: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)
    evidence: Mapped[list[Evidence]] = relationship(
        back_populates="case", cascade="all, delete-orphan", order_by="Evidence.seq"
    )


class Evidence(Base):
    __tablename__ = "evidence"
    __table_args__ = (UniqueConstraint("case_id", "seq", "variant"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    seq: Mapped[int] = mapped_column(Integer)  # 1 = first sighting, 2 = dwell crossing, ...
    variant: Mapped[str] = mapped_column(String(16))  # clean | annotated | crop
    key: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(Integer, default=0)
    content_type: Mapped[str] = mapped_column(String(64), default="image/jpeg")
    frame_ts: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    uploaded: Mapped[bool] = mapped_column(Boolean, default=False)  # False while waiting in the spool
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    case: Mapped[Case] = relationship(back_populates="evidence")


class Review(Base):
    __tablename__ = "reviews"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[str] = mapped_column(String(32))
    decision: Mapped[str] = mapped_column(String(16))  # confirm | reject | undo
    reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    note: Mapped[str] = mapped_column(Text, default="")
    duration_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)  # time on the case in the UI
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Outbox(Base):
    """Transactional outbox: written in the same transaction as the status change that causes it."""

    __tablename__ = "outbox"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    topic: Mapped[str] = mapped_column(String(32), default="hotline")  # hotline | bike_operator
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default=OutboxStatus.PENDING.value, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    sent_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class AuditLog(Base):
    """Hash-chained: ``hash = sha256(prev_hash + canonical(row))``; ``urbaneye audit verify`` walks it."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    actor: Mapped[str] = mapped_column(String(64))  # user id/name or 'system:<component>'
    action: Mapped[str] = mapped_column(String(32))  # create | transition | review | push | callback ...
    entity: Mapped[str] = mapped_column(String(32))  # case | camera | zone | model | user
    entity_id: Mapped[str] = mapped_column(String(64), index=True)
    from_status: Mapped[str] = mapped_column(String(32), default="")
    to_status: Mapped[str] = mapped_column(String(32), default="")
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)
    # HMAC-SHA256 of ``hash`` with settings.audit_key (never stored here): recomputing hashes is not enough
    mac: Mapped[str | None] = mapped_column(String(64), nullable=True)


class ModelVersion(Base):
    __tablename__ = "model_versions"
    version: Mapped[str] = mapped_column(String(64), primary_key=True)
    parent: Mapped[str | None] = mapped_column(String(64), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="candidate")  # active|candidate|shadow|retired
    camera_group: Mapped[str] = mapped_column(String(64), default="default")
    dataset_version: Mapped[str] = mapped_column(String(64), default="")
    onnx_uri: Mapped[str] = mapped_column(String(400))
    weights_uri: Mapped[str] = mapped_column(String(400), default="")
    sha256: Mapped[str] = mapped_column(String(64))
    classes: Mapped[list[Any]] = mapped_column(JSON, default=list)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # val + regression, per class
    gate: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # decision and reason
    training_time_s: Mapped[float] = mapped_column(Float, default=0.0)
    hardware: Mapped[str] = mapped_column(String(120), default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    promoted_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ActiveModel(Base):
    """Active (and optional shadow) model per camera group; workers poll this for hot reload."""

    __tablename__ = "active_models"
    camera_group: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[str] = mapped_column(ForeignKey("model_versions.version"))
    shadow_version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    shadow_cameras: Mapped[list[Any]] = mapped_column(JSON, default=list)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)


class ShadowCount(Base):
    """Would-be cases of a shadow model: counted, never created."""

    __tablename__ = "shadow_counts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    version: Mapped[str] = mapped_column(String(64), index=True)
    camera_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    violation_id: Mapped[str] = mapped_column(String(64))
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class DatasetVersion(Base):
    __tablename__ = "dataset_versions"
    version: Mapped[str] = mapped_column(String(64), primary_key=True)
    manifest_uri: Mapped[str] = mapped_column(String(400))
    sha256: Mapped[str] = mapped_column(String(64))
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class FalseAlarmMemory(Base):
    """An object a reviewer rejected (误检 / 固定设施): its place and appearance on one camera
    (``vision.memory.MemoryEntry``). Stream workers load their cameras' live entries; candidates that
    match one do not open cases and are counted here."""

    __tablename__ = "false_alarm_memory"
    __table_args__ = (Index("ix_false_alarm_memory_camera_expires", "camera_id", "expires_at"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    camera_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))  # the rejected violation kind
    bbox_xyxy: Mapped[list[Any]] = mapped_column(JSON)  # pixels of a frame_wh frame
    frame_wh: Mapped[list[Any]] = mapped_column(JSON)
    descriptor: Mapped[list[Any]] = mapped_column(JSON)  # vision.memory.describe of the crop
    descriptor_version: Mapped[str] = mapped_column(String(32))
    case_id: Mapped[str] = mapped_column(String(32), index=True)  # the rejected case it was made from
    reason: Mapped[str] = mapped_column(String(32))  # RejectReason
    crop_key: Mapped[str] = mapped_column(String(255), default="")  # evidence key of the case's crop
    created_by: Mapped[str] = mapped_column(String(32))  # reviewer's user id
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    suppressed_count: Mapped[int] = mapped_column(Integer, default=0)
    last_suppressed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    gone_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class AuditCheckpoint(Base):
    """A signed checkpoint of the audit chain's head, also written to the object store (object lock)."""

    __tablename__ = "audit_checkpoints"
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    head_id: Mapped[int] = mapped_column(Integer)
    head_hash: Mapped[str] = mapped_column(String(64))
    rows: Mapped[int] = mapped_column(Integer)
    signature: Mapped[str] = mapped_column(String(64))
    object_key: Mapped[str] = mapped_column(String(255))


class CaseClaim(Base):
    """A reviewer's lease on a pending case (issue 18): while ``expires_at`` is ahead, the queue gives the case
    to nobody else and another reviewer's decision on it is refused. Its own table, not columns on ``cases``,
    so that leasing (every few seconds per reviewer) writes no audit rows and never touches the case row."""

    __tablename__ = "case_claims"
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(32), index=True)
    claimed_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)
