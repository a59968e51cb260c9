"""Camera re-checks of a case (智能核查, issue 19): list them with their after-photos, ask for one.

The stream worker holding the camera performs a request (``streams.recheck``); the result is a case event
in the audit chain (``GET /api/v1/cases/{id}/timeline``) and, per the camera group's policy, closes or
escalates the case (``urbaneye.rechecks``).
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from sqlalchemy import select

from api.deps import ReaderUser, ReviewerUser, SessionDep, SettingsDep, StoreDep
from api.schemas.common import AUTH_ERRORS, errors
from api.schemas.rechecks import RecheckPhoto, RecheckPublic, RechecksPublic
from api.services.audit import actor_of
from urbaneye.cases.service import CaseNotFound, get_case
from urbaneye.db.rechecks import CaseRecheck, RecheckTrigger
from urbaneye.rechecks import RecheckNotAllowed, request_recheck
from urbaneye.storage import EvidenceStore

router = APIRouter(prefix="/cases", tags=["rechecks"], responses=AUTH_ERRORS)


def _photos(row: CaseRecheck, store: EvidenceStore, expiry_s: int) -> list[RecheckPhoto]:
    out = []
    for variant, key, sha in (
        ("clean", row.clean_key, row.clean_sha256),
        ("annotated", row.annotated_key, row.annotated_sha256),
    ):
        if key:
            url = store.presigned_url(key, expiry_s)
            out.append(RecheckPhoto(variant=variant, url=url, url_expires_s=expiry_s, sha256=sha))
    return out


def _public(row: CaseRecheck, store: EvidenceStore, expiry_s: int) -> RecheckPublic:
    return RecheckPublic.model_validate(row).model_copy(update={"photos": _photos(row, store, expiry_s)})


def _case_or_404(session, case_id: str, *, for_update: bool = False):  # noqa: ANN001, ANN202
    try:
        return get_case(session, case_id, for_update=for_update)
    except CaseNotFound:
        raise HTTPException(404, f"没有案件 '{case_id}'；请用 GET /api/v1/cases 查看案件列表") from None


@router.get("/{case_id}/rechecks", response_model=RechecksPublic, responses=errors(404))
def list_rechecks(
    case_id: str, session: SessionDep, store: StoreDep, settings: SettingsDep, _: ReaderUser
) -> RechecksPublic:
    """The case's re-checks, newest first, each with its after-photo links."""
    _case_or_404(session, case_id)
    rows = session.scalars(
        select(CaseRecheck).where(CaseRecheck.case_id == case_id).order_by(CaseRecheck.requested_at.desc())
    ).all()
    data = [_public(r, store, settings.presign_expiry_s) for r in rows]
    return RechecksPublic(data=data, count=len(data))


@router.post("/{case_id}/rechecks", response_model=RecheckPublic, status_code=202, responses=errors(404, 409))
def request_manual_recheck(
    case_id: str, session: SessionDep, store: StoreDep, settings: SettingsDep, user: ReviewerUser
) -> RecheckPublic:
    """Ask the camera to look at the case's place again (the pending one, if a re-check is under way)."""
    case = _case_or_404(session, case_id, for_update=True)  # one pending request per case
    try:
        row = request_recheck(session, case, RecheckTrigger.MANUAL, actor_of(user))
    except RecheckNotAllowed as exc:
        raise HTTPException(409, str(exc)) from None
    session.commit()
    return _public(row, store, settings.presign_expiry_s)
