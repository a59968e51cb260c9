"""A case's frame strip: its evidence moments across the dwell, in time order, one picture per moment.

The strip is what lets a reviewer see the object stay: the first sighting (seq 1), the downscaled frames
the stream worker kept across the dwell (seq ``STRIP_SEQ_BASE``.., see ``streams.frame_strip``), the dwell
crossing (seq 2) and any later update frames. Each moment is given as its annotated picture (the clean one
when it has none); crops are not moments. URLs are presigned like the case detail's (``null`` until the
frame is uploaded).
"""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field

from api.deps import ReaderUser, SessionDep, SettingsDep, StoreDep
from api.routes.cases import MAX_PRESIGN_S
from api.schemas.common import AUTH_ERRORS, UtcDatetime, errors
from urbaneye.db.models import Case, Evidence

router = APIRouter(prefix="/cases", tags=["cases"], responses=AUTH_ERRORS)

#: The picture of a moment, best first.
_VARIANT_ORDER = ("annotated", "clean")


class StripFrame(BaseModel):
    seq: int = Field(description="1 = first sighting, 2 = dwell crossing, 3.. updates, 1001.. strip frames")
    frame_ts: UtcDatetime | None = Field(description="when the frame was taken (UTC)")
    sha256: str
    url: str | None = Field(
        description="presigned GET URL, valid for at most 15 minutes; null until uploaded"
    )


class CaseStrip(BaseModel):
    case_id: str
    frames: list[StripFrame] = Field(description="one per evidence moment, in time order")


def strip_moments(evidence: list[Evidence]) -> list[Evidence]:
    """One evidence row per seq (annotated, else clean; crops left out), ordered by frame time then seq."""
    best: dict[int, Evidence] = {}
    for ev in evidence:
        if ev.variant not in _VARIANT_ORDER:
            continue
        held = best.get(ev.seq)
        if held is None or _VARIANT_ORDER.index(ev.variant) < _VARIANT_ORDER.index(held.variant):
            best[ev.seq] = ev
    floor = dt.datetime.min.replace(tzinfo=dt.UTC)

    def when(ev: Evidence) -> dt.datetime:
        t = ev.frame_ts
        return floor if t is None else (t if t.tzinfo else t.replace(tzinfo=dt.UTC))

    return sorted(best.values(), key=lambda ev: (when(ev), ev.seq))


@router.get("/{case_id}/strip", response_model=CaseStrip, responses=errors(404))
def case_strip(
    case_id: str, session: SessionDep, store: StoreDep, settings: SettingsDep, _: ReaderUser
) -> CaseStrip:
    """The case's frames across the dwell in time order (first sighting, strip frames, dwell crossing)."""
    case = session.get(Case, case_id)
    if case is None:
        raise HTTPException(404, f"案件 {case_id} 不存在；请从案件列表重新打开")
    expiry_s = min(settings.presign_expiry_s, MAX_PRESIGN_S)
    frames = [
        StripFrame(
            seq=ev.seq,
            frame_ts=ev.frame_ts,
            sha256=ev.sha256,
            url=store.presigned_url(ev.key, expiry_s) if ev.uploaded else None,
        )
        for ev in strip_moments(list(case.evidence))
    ]
    return CaseStrip(case_id=case.id, frames=frames)
