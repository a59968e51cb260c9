"""Tables of the annotation queue of real frames (issue 14, migration 0008).

A stream worker samples frames worth labelling (``streams.annotation_sampler``); each becomes one
``AnnotationItem``: the frame in the evidence store (key + SHA-256), where and when it was seen, why it was
sampled, the model version and the model's boxes (``proposals``). A reviewer leases the item
(``leased_by`` until ``lease_expires_at``), then labels it (boxes), marks it "nothing here" (a negative),
or skips it. Labelled items and negatives go into ``urbaneye dataset build`` (``datasets.real_frames``).
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, DateTime, Float, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from urbaneye.db.models import Base, new_id, utcnow


class SampleReason(StrEnum):
    """Why the sampler kept a frame."""

    NEAR_THRESHOLD = "near_threshold"  # a detection scored just above its class's threshold
    UNKNOWN_REGION = "unknown_region"  # a static-object region no detection explains
    PERIODIC = "periodic"  # one frame per camera, local day and time-of-day bucket


class AnnotationStatus(StrEnum):
    PENDING = "pending"  # in the queue
    LABELLED = "labelled"  # boxes submitted (training positives; an empty frame is a negative)
    NEGATIVE = "negative"  # "nothing here": the whole frame is background
    SKIPPED = "skipped"  # the reviewer could not tell; not used for training


#: Statuses whose frames the dataset builder takes.
TRAINING_STATUSES = (AnnotationStatus.LABELLED.value, AnnotationStatus.NEGATIVE.value)


class AnnotationItem(Base):
    __tablename__ = "annotation_items"
    __table_args__ = (
        # serves "next pending item, oldest first" and the per-camera bound on pending items
        Index("ix_annotation_items_status_created", "status", "created_at"),
        Index("ix_annotation_items_camera_status", "camera_id", "status"),
    )
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    camera_id: Mapped[str] = mapped_column(String(64))
    frame_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))  # wall-clock time of the frame
    ts_s: Mapped[float] = mapped_column(Float, default=0.0)  # stream time the rules used
    reason: Mapped[str] = mapped_column(String(24))  # SampleReason
    time_bucket: Mapped[str] = mapped_column(String(16), default="")  # camera-local "08-12"
    model_version: Mapped[str] = mapped_column(String(64), default="")
    key: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64), unique=True)  # one item per distinct frame
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    #: the model's boxes on the frame: [{"label", "xyxy", "score", "source": "model"|"unknown"}]
    proposals: Mapped[list[Any]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(16), default=AnnotationStatus.PENDING.value)
    #: the reviewer's boxes: [{"label": ObjectKind name, "xyxy": [x1, y1, x2, y2] pixels}]
    labels: Mapped[list[Any]] = mapped_column(JSON, default=list)
    labelled_by: Mapped[str | None] = mapped_column(String(32), nullable=True)
    labelled_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    leased_by: Mapped[str | None] = mapped_column(String(32), nullable=True)
    lease_expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
