"""False-alarm memory in the database: entries made from rejected cases, loaded by stream workers.

A rejection as 误检 (``false_detection``) or 固定设施/常驻物体 (``fixed_object``) remembers the object: the
case's box and the appearance descriptor of that box in its clean evidence frame
(``vision.memory.describe``), with the reviewer and an expiry (``Settings.memory_ttl_days``). Workers load
their cameras' live entries (``live_entries``) and report back what each suppressed (``record_updates``);
the camera page lists them (``list_entries``) and an admin deletes one (``delete_entry``). Undoing the
rejection forgets the entry (``forget_case``).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable

import cv2
import numpy as np
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from urbaneye.audit import append_audit
from urbaneye.db.models import Case, Evidence, FalseAlarmMemory, RejectReason, utcnow
from urbaneye.storage import EvidenceStore
from vision.memory import DESCRIPTOR_VERSION, MemoryEntry, MemoryUpdate, entry_from_crop
from vision.types import kind_of

log = logging.getLogger(__name__)

#: Rejection reasons that mean "this object is not a violation and will stay": they make a memory entry.
MEMORY_REASONS: frozenset[str] = frozenset(
    {RejectReason.FALSE_DETECTION.value, RejectReason.FIXED_OBJECT.value}
)


class MemoryNotMade(ValueError):
    """A rejected case could not be remembered (no evidence frame yet, box outside it); names why."""


def _aware(t: dt.datetime) -> dt.datetime:
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def _evidence(case: Case, variant: str) -> Evidence | None:
    rows = [e for e in case.evidence if e.variant == variant and e.uploaded]
    return max(rows, key=lambda e: e.seq) if rows else None


def remember_rejection(
    session: Session,
    store: EvidenceStore,
    case: Case,
    user_id: str,
    ttl_days: float,
    now: dt.datetime | None = None,
) -> FalseAlarmMemory:
    """Make the memory entry of a case just rejected as false detection / fixed object.

    The descriptor comes from the newest uploaded clean evidence frame, inside ``case.bbox_xyxy``.

    Raises:
        MemoryNotMade: the case has no uploaded clean frame, or its box is not inside it.
    """
    clean = _evidence(case, "clean")
    if clean is None:
        raise MemoryNotMade(
            f"case {case.id} has no uploaded clean evidence frame yet; reject it again once its evidence is uploaded"
        )
    image = cv2.imdecode(np.frombuffer(store.get(clean.key), np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise MemoryNotMade(f"case {case.id}: evidence {clean.key} is not a decodable JPEG")
    now = now or utcnow()
    try:
        entry = entry_from_crop("new", case.camera_id, kind_of(case.kind), case.bbox_xyxy, image)
    except ValueError as exc:
        raise MemoryNotMade(f"case {case.id}: {exc}") from None
    crop = _evidence(case, "crop")
    row = FalseAlarmMemory(
        camera_id=case.camera_id,
        kind=case.kind,
        bbox_xyxy=list(entry.box_xyxy),
        frame_wh=list(entry.frame_wh),
        descriptor=[round(v, 6) for v in entry.descriptor],
        descriptor_version=DESCRIPTOR_VERSION,
        case_id=case.id,
        reason=str(case.reject_reason),
        crop_key=crop.key if crop is not None else "",
        created_by=user_id,
        created_at=now,
        expires_at=now + dt.timedelta(days=ttl_days),
        suppressed_count=0,
    )
    session.add(row)
    session.flush()
    append_audit(
        session, f"user:{user_id}", "create", "memory", row.id, "", "active",
        {"case_id": case.id, "camera_id": case.camera_id, "kind": case.kind, "reason": row.reason},
    )  # fmt: skip
    return row


def forget_case(session: Session, case_id: str, actor: str) -> int:
    """Delete the entries made from ``case_id`` (its rejection was undone); returns how many."""
    ids = list(session.scalars(select(FalseAlarmMemory.id).where(FalseAlarmMemory.case_id == case_id)))
    for entry_id in ids:
        delete_entry(session, entry_id, actor, why="rejection undone")
    return len(ids)


def delete_entry(session: Session, entry_id: str, actor: str, why: str = "deleted") -> bool:
    """Delete one entry (an admin on the camera page); False when there is no such entry."""
    row = session.get(FalseAlarmMemory, entry_id)
    if row is None:
        return False
    detail = {"camera_id": row.camera_id, "case_id": row.case_id, "why": why}
    session.execute(delete(FalseAlarmMemory).where(FalseAlarmMemory.id == entry_id))
    append_audit(session, actor, "delete", "memory", entry_id, "active", "deleted", detail)
    session.flush()
    return True


def list_entries(session: Session, camera_id: str) -> list[FalseAlarmMemory]:
    """All entries of a camera (live, expired and gone), newest first."""
    return list(
        session.scalars(
            select(FalseAlarmMemory)
            .where(FalseAlarmMemory.camera_id == camera_id)
            .order_by(FalseAlarmMemory.created_at.desc(), FalseAlarmMemory.id)
        )
    )


def to_entry(row: FalseAlarmMemory, reviewer: str = "") -> MemoryEntry:
    """The vision-side entry of a row; times are epoch seconds."""
    return MemoryEntry(
        entry_id=row.id,
        camera_id=row.camera_id,
        kind=kind_of(row.kind),
        box_xyxy=tuple(float(v) for v in row.bbox_xyxy),  # type: ignore[arg-type]
        frame_wh=tuple(int(v) for v in row.frame_wh),  # type: ignore[arg-type]
        descriptor=tuple(float(v) for v in row.descriptor),
        created_s=_aware(row.created_at).timestamp(),
        expires_s=_aware(row.expires_at).timestamp(),
        reviewer=reviewer or row.created_by,
        case_id=row.case_id,
        descriptor_version=row.descriptor_version,
    )


def live_entries(
    session: Session, camera_ids: Iterable[str], now: dt.datetime | None = None
) -> dict[str, list[MemoryEntry]]:
    """Entries that can suppress now (not expired, object not gone), per camera id."""
    ids = list(camera_ids)
    out: dict[str, list[MemoryEntry]] = {cid: [] for cid in ids}
    if not ids:
        return out
    rows = session.scalars(
        select(FalseAlarmMemory).where(
            FalseAlarmMemory.camera_id.in_(ids),
            FalseAlarmMemory.expires_at > (now or utcnow()),
            FalseAlarmMemory.gone_at.is_(None),
        )
    )
    for row in rows:
        out[row.camera_id].append(to_entry(row))
    return out


def record_updates(session: Session, updates: Iterable[MemoryUpdate], now: dt.datetime | None = None) -> int:
    """Add a worker's suppression counts and gone places to the rows; returns the rows changed.

    Suppression times are stamped ``now`` (the worker's flush), since stream clocks may be video time.
    """
    now = now or utcnow()
    changed = 0
    for u in updates:
        row = session.get(FalseAlarmMemory, u.entry_id)
        if row is None:
            continue  # deleted meanwhile
        if u.suppressed:
            row.suppressed_count = (row.suppressed_count or 0) + u.suppressed
        if u.last_suppressed_s is not None:
            row.last_suppressed_at = now
        if u.gone and row.gone_at is None:
            row.gone_at = now
        changed += 1
    session.flush()
    return changed
