"""A camera's false-alarm memory: list its entries (with crops and counts), delete one (admin).

Entries are made by the case review (``urbaneye.memory.remember_rejection``); stream workers load them.
"""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, HTTPException
from sqlalchemy import select

from api.deps import AdminUser, ReaderUser, SessionDep, SettingsDep, StoreDep
from api.schemas.common import AUTH_ERRORS, Message, errors
from api.schemas.memory import MemoryEntriesPublic, MemoryEntryPublic
from api.services.audit import actor_of
from urbaneye.db.models import Camera, FalseAlarmMemory, User, utcnow
from urbaneye.memory import delete_entry, list_entries

router = APIRouter(prefix="/cameras", tags=["memory"], responses=AUTH_ERRORS)

#: Presigned crop links never live longer than this.
MAX_PRESIGN_S = 900


def _aware(t: dt.datetime | None) -> dt.datetime | None:
    return None if t is None else (t if t.tzinfo else t.replace(tzinfo=dt.UTC))


@router.get("/{camera_id}/memory", response_model=MemoryEntriesPublic, responses=errors(404))
def list_memory(
    camera_id: str, session: SessionDep, store: StoreDep, settings: SettingsDep, _: ReaderUser
) -> MemoryEntriesPublic:
    """The camera's remembered false alarms, newest first: crop, reviewer, suppressions, state."""
    if session.get(Camera, camera_id) is None:
        raise HTTPException(404, f"no camera '{camera_id}'; list cameras with GET /api/v1/cameras")
    rows = list_entries(session, camera_id)
    names = dict(
        session.execute(select(User.id, User.username).where(User.id.in_({r.created_by for r in rows}))).all()
    )
    now = utcnow()
    expiry_s = min(settings.presign_expiry_s, MAX_PRESIGN_S)
    data = []
    for r in rows:
        expires_at = _aware(r.expires_at)
        state = "gone" if r.gone_at else "expired" if expires_at <= now else "active"
        data.append(
            MemoryEntryPublic(
                id=r.id,
                camera_id=r.camera_id,
                kind=r.kind,
                bbox_xyxy=[float(v) for v in r.bbox_xyxy],
                frame_wh=[int(v) for v in r.frame_wh],
                case_id=r.case_id,
                reason=r.reason,
                reviewer=names.get(r.created_by, r.created_by),
                created_at=_aware(r.created_at),
                expires_at=expires_at,
                suppressed_count=r.suppressed_count,
                last_suppressed_at=_aware(r.last_suppressed_at),
                gone_at=_aware(r.gone_at),
                state=state,
                crop_url=store.presigned_url(r.crop_key, expiry_s) if r.crop_key else None,
            )
        )
    return MemoryEntriesPublic(data=data, count=len(data))


@router.delete("/{camera_id}/memory/{entry_id}", response_model=Message, responses=errors(404))
def delete_memory(camera_id: str, entry_id: str, session: SessionDep, user: AdminUser) -> Message:
    """Forget one entry: the next candidate of that object opens a case again (workers reload within
    ``URBANEYE_MEMORY_REFRESH_S``)."""
    row = session.get(FalseAlarmMemory, entry_id)
    if row is None or row.camera_id != camera_id:
        raise HTTPException(
            404, f"camera '{camera_id}' has no memory entry '{entry_id}'; list them with GET "
            f"/api/v1/cameras/{camera_id}/memory",
        )  # fmt: skip
    delete_entry(session, entry_id, actor_of(user))
    session.commit()
    return Message(message=f"memory entry {entry_id} deleted")
