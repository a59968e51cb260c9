"""The camera re-check table (issue 19): one row per request to look at a case's place again.

A row is written when the hotline reports a case dispatched or in hand (``urbaneye.hotline.callbacks``), on
a schedule for cases that stay dispatched, when a violation ended by itself before dispatch, or by a
reviewer. The stream worker that holds the camera claims it (``pending`` -> ``running``), watches the place
for the window and records the result (``done``); ``urbaneye.rechecks`` applies the camera group's policy.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

from sqlalchemy import DateTime, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from urbaneye.db.models import Base, new_id, utcnow


class RecheckState(StrEnum):
    PENDING = "pending"  # waits for the worker that holds the camera
    RUNNING = "running"  # a worker watches the place
    DONE = "done"  # result recorded and applied
    SKIPPED = "skipped"  # the camera group's policy does not re-check (disabled, state not in on_states)


class RecheckResult(StrEnum):
    CLEARED = "cleared"  # nothing of the kind at the place
    STILL_PRESENT = "still_present"  # the object is still there
    INCONCLUSIVE = "inconclusive"  # camera offline, no frames, view blocked, too dark


class RecheckTrigger(StrEnum):
    CALLBACK = "callback"  # the hotline reported 派遣/处置
    SCHEDULE = "schedule"  # the case stays dispatched: re-checked every interval_s
    ENDED = "ended"  # the violation ended by itself before dispatch
    MANUAL = "manual"  # a reviewer asked


#: States of a request that is still to be done; at most one such request per case.
ACTIVE_STATES = (RecheckState.PENDING.value, RecheckState.RUNNING.value)


class CaseRecheck(Base):
    __tablename__ = "case_rechecks"
    __table_args__ = (Index("ix_case_rechecks_camera_state", "camera_id", "state"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    camera_id: Mapped[str] = mapped_column(String(64))
    trigger: Mapped[str] = mapped_column(String(16))  # RecheckTrigger
    case_status: Mapped[str] = mapped_column(String(16))  # the case's status when requested
    requested_by: Mapped[str] = mapped_column(String(64))  # audit actor
    requested_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    state: Mapped[str] = mapped_column(String(16), default=RecheckState.PENDING.value)
    worker_id: Mapped[str] = mapped_column(String(128), default="")
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    window_s: Mapped[float] = mapped_column(Float, default=0.0)
    result: Mapped[str] = mapped_column(String(16), default="")  # RecheckResult, "" until done
    reason: Mapped[str] = mapped_column(Text, default="")  # why inconclusive / skipped, in Chinese
    frames: Mapped[int] = mapped_column(Integer, default=0)  # frames seen in the window
    usable_frames: Mapped[int] = mapped_column(Integer, default=0)  # not too dark, not blocked
    present_frames: Mapped[int] = mapped_column(Integer, default=0)  # the kind's object at the place
    objects_after: Mapped[int] = mapped_column(Integer, default=0)  # objects at the place (median frame)
    present_bbox_xyxy: Mapped[list[Any]] = mapped_column(default=list)
    frame_wh: Mapped[list[Any]] = mapped_column(default=list)
    frame_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    clean_key: Mapped[str] = mapped_column(String(255), default="")
    clean_sha256: Mapped[str] = mapped_column(String(64), default="")
    annotated_key: Mapped[str] = mapped_column(String(255), default="")
    annotated_sha256: Mapped[str] = mapped_column(String(64), default="")
    action: Mapped[str] = mapped_column(String(32), default="")  # what the policy did: closed | escalated | …
