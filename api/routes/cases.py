"""Cases: the review queue, evidence, decisions (single and bulk), undo, hotline re-send, timeline.

Every state change goes through ``urbaneye.cases.service`` (which writes the hash-chained audit row);
this module only translates HTTP to those calls.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from api.deps import ReaderUser, ReviewerUser, SessionDep, SettingsDep, StoreDep
from api.schemas.cases import (
    STATUS_ZH,
    BulkItemResult,
    BulkVerifyIn,
    BulkVerifyOut,
    CaseDetail,
    CaseOrder,
    CasePublic,
    CasesPublic,
    CaseTimeline,
    ClaimOut,
    ErrorCode,
    EvidencePublic,
    KindId,
    ReviewPublic,
    TimelineEntry,
    VerifyIn,
)
from api.schemas.common import AUTH_ERRORS, errors
from api.services.audit import actor_of
from api.services.kinds import list_kinds
from urbaneye.cases import claims, service
from urbaneye.cases.classify import Classification
from urbaneye.cases.service import CaseNotFound, CaseStateError
from urbaneye.db.models import AuditLog, Camera, Case, CaseStatus, Review, Role, User, Zone, utcnow
from urbaneye.memory import MEMORY_REASONS, MemoryNotMade, forget_case, remember_rejection
from urbaneye.storage import EvidenceNotFound, EvidenceStore, EvidenceStoreUnavailable
from vision.types import Escalation

log = logging.getLogger(__name__)
router = APIRouter(prefix="/cases", tags=["cases"], responses=AUTH_ERRORS)

#: Presigned evidence URLs never live longer than this, whatever the settings say.
MAX_PRESIGN_S = 900
ESCALATION_ORDER = (Escalation.RED.value, Escalation.YELLOW.value, Escalation.BLUE.value)


class CaseFilters:
    """Query filters shared by the list and the bulk tools; every one is optional."""

    def __init__(
        self,
        status: Annotated[list[CaseStatus] | None, Query(description="one or more statuses")] = None,
        kind: Annotated[
            list[KindId] | None,
            Query(description="violation kinds: built-in or configured (GET /api/v1/kinds)"),
        ] = None,
        unclassified: Annotated[
            bool | None, Query(description="true: only 待分类 cases; false: none")
        ] = None,
        camera_id: Annotated[str | None, Query(max_length=64)] = None,
        zone_id: Annotated[str | None, Query(max_length=64)] = None,
        place_key: Annotated[str | None, Query(max_length=160)] = None,
        escalation: Annotated[list[Escalation] | None, Query(description="blue, yellow, red")] = None,
        since: Annotated[dt.datetime | None, Query(description="created at or after (ISO 8601)")] = None,
        until: Annotated[dt.datetime | None, Query(description="created before (ISO 8601)")] = None,
        min_confidence: Annotated[float | None, Query(ge=0, le=1)] = None,
        max_confidence: Annotated[float | None, Query(ge=0, le=1)] = None,
        unclaimed: Annotated[
            bool, Query(description="leave out cases another reviewer holds (the review queue)")
        ] = False,
    ) -> None:
        self.unclaimed = unclaimed
        self.conds = []
        if status:
            self.conds.append(Case.status.in_([s.value for s in status]))
        if kind:
            self.conds.append(Case.kind.in_(kind))
        if unclassified is not None:
            self.conds.append(Case.unclassified.is_(unclassified))
        if camera_id:
            self.conds.append(Case.camera_id == camera_id)
        if zone_id:
            self.conds.append(Case.zone_id == zone_id)
        if place_key:
            self.conds.append(Case.place_key == place_key)
        if escalation:
            self.conds.append(Case.escalation.in_([e.value for e in escalation]))
        if since:
            self.conds.append(Case.created_at >= _aware(since))
        if until:
            self.conds.append(Case.created_at < _aware(until))
        if min_confidence is not None:
            self.conds.append(Case.confidence >= min_confidence)
        if max_confidence is not None:
            self.conds.append(Case.confidence <= max_confidence)


@contextmanager
def service_errors(case_id: str) -> Iterator[None]:
    """Translate the case service's errors: unknown case -> 404, change not allowed now -> 409."""
    try:
        yield
    except CaseNotFound:
        raise HTTPException(404, f"no case '{case_id}'; list cases with GET /api/v1/cases") from None
    except CaseStateError as exc:
        raise HTTPException(409, str(exc)) from None


def _aware(t: dt.datetime) -> dt.datetime:
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def conflict(detail: str, code: ErrorCode) -> HTTPException:
    """A 409 the review screen acts on: Chinese text for the reviewer, a stable code for the UI."""
    return HTTPException(409, detail, headers={"X-Error-Code": code.value})


def publish(session: Session, rows: list[Case]) -> list[CasePublic]:
    """Cases as the API sends them, each with its camera's name and time zone (one query for the page)."""
    ids = {c.camera_id for c in rows}
    cams = {cam.id: cam for cam in session.scalars(select(Camera).where(Camera.id.in_(ids)))} if ids else {}
    out = []
    for c in rows:
        cam = cams.get(c.camera_id)
        extra = {"camera_name": cam.name or c.camera_id} if cam else {"camera_name": c.camera_id}
        if cam is not None and cam.config.get("timezone"):
            extra["camera_timezone"] = cam.config["timezone"]
        out.append(CasePublic.model_validate(c).model_copy(update=extra))
    return out


def _case(session: Session, case_id: str) -> Case:
    case = session.get(Case, case_id)
    if case is None:
        raise HTTPException(404, f"no case '{case_id}'; list cases with GET /api/v1/cases")
    return case


def page_cases(
    session: Session, conds: list, order: CaseOrder, offset: int, limit: int
) -> tuple[list[Case], int]:
    """One page of cases and the total count. Escalation order reads each colour by its own index range
    (status, escalation, created_at) instead of sorting every pending case on a CASE expression."""
    if order != CaseOrder.ESCALATION:
        total = session.scalar(select(func.count()).select_from(Case).where(*conds)) or 0
        by = (
            (Case.created_at.asc(), Case.id.asc())
            if order == CaseOrder.OLDEST
            else (Case.created_at.desc(), Case.id.desc())
        )
        rows = session.scalars(select(Case).where(*conds).order_by(*by).offset(offset).limit(limit)).all()
        return list(rows), total
    counts = dict(
        session.execute(select(Case.escalation, func.count()).where(*conds).group_by(Case.escalation)).all()
    )
    total = sum(counts.values())
    rows: list[Case] = []
    skip, need = offset, limit
    for level in ESCALATION_ORDER:
        n = counts.get(level, 0)
        if skip >= n:
            skip -= n
            continue
        part = session.scalars(
            select(Case)
            .where(*conds, Case.escalation == level)
            .order_by(Case.created_at, Case.id)
            .offset(skip)
            .limit(need)
        ).all()
        rows.extend(part)
        need -= len(part)
        skip = 0
        if need <= 0:
            break
    return rows, total


@router.get("", response_model=CasesPublic)
def list_cases(
    session: SessionDep,
    user: ReaderUser,
    filters: Annotated[CaseFilters, Depends()],
    order: CaseOrder = CaseOrder.OLDEST,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> CasesPublic:
    """Cases matching the filters. The review queue is ``status=pending_review`` with ``order=oldest`` or
    ``order=escalation`` (red first); ``unclaimed=true`` leaves out what other reviewers hold."""
    conds = [*filters.conds, claims.free_for(user.id, utcnow())] if filters.unclaimed else filters.conds
    rows, total = page_cases(session, conds, order, offset, limit)
    return CasesPublic(data=publish(session, rows), count=total)


def _evidence(case: Case, store, expiry_s: int) -> list[EvidencePublic]:  # noqa: ANN001
    out = []
    for ev in case.evidence:
        url = store.presigned_url(ev.key, expiry_s) if ev.uploaded else None
        out.append(
            EvidencePublic(
                seq=ev.seq,
                variant=ev.variant,
                url=url,
                url_expires_s=expiry_s if url else 0,
                sha256=ev.sha256,
                size_bytes=ev.size_bytes,
                content_type=ev.content_type,
                frame_ts=ev.frame_ts,
                uploaded=ev.uploaded,
            )
        )
    return out


def _reviews(session: Session, case_id: str) -> list[ReviewPublic]:
    rows = session.execute(
        select(Review, User.username)
        .outerjoin(User, User.id == Review.user_id)
        .where(Review.case_id == case_id)
        .order_by(Review.id)
    ).all()
    return [ReviewPublic.model_validate(r).model_copy(update={"username": name}) for r, name in rows]


def _same_place(case: Case):  # noqa: ANN202
    if case.place_key:
        return Case.place_key == case.place_key
    return and_(Case.camera_id == case.camera_id, Case.zone_id == case.zone_id)


@router.get("/{case_id}", response_model=CaseDetail, responses=errors(404))
def get_case(
    case_id: str, session: SessionDep, store: StoreDep, settings: SettingsDep, _: ReaderUser
) -> CaseDetail:
    """A case with its evidence (presigned URLs valid ≤ 15 min, SHA-256 of each image), reviews, zone outline
    and how many earlier cases the same place had."""
    case = _case(session, case_id)
    zone = session.scalar(select(Zone).where(Zone.camera_id == case.camera_id, Zone.zone_id == case.zone_id))
    zcfg = zone.config if zone else {}
    earlier = session.scalar(
        select(func.count())
        .select_from(Case)
        .where(_same_place(case), Case.created_at < case.created_at, Case.id != case.id)
    )
    base = publish(session, [case])[0].model_dump()
    return CaseDetail(
        **base,
        evidence=_evidence(case, store, min(settings.presign_expiry_s, MAX_PRESIGN_S)),
        corrections=list(case.corrections or []),
        reviews=_reviews(session, case_id),
        zone_name=zcfg.get("name", ""),
        zone_polygon=zcfg.get("polygon", []),
        place_earlier_count=earlier or 0,
    )


@router.get("/{case_id}/similar", response_model=CasesPublic, responses=errors(404))
def similar_cases(
    case_id: str, session: SessionDep, _: ReaderUser, limit: Annotated[int, Query(ge=1, le=50)] = 10
) -> CasesPublic:
    """Earlier cases at the same place (same ``place_key``, else same camera and zone), newest first."""
    case = _case(session, case_id)
    conds = [_same_place(case), Case.created_at < case.created_at, Case.id != case.id]
    rows, total = page_cases(session, conds, CaseOrder.NEWEST, 0, limit)
    return CasesPublic(data=publish(session, rows), count=total)


def _verify(
    session: Session,
    request: Request,
    case_id: str,
    user: User,
    body: VerifyIn,
    store: EvidenceStore | None = None,
    ttl_days: float = 30.0,
) -> Case:
    check_reviewable(session, case_id, user)
    cameras_file = request.app.state.settings.cameras_file
    classification = (
        _classification(session, _case(session, case_id), body, cameras_file) if body.kind else None
    )
    with service_errors(case_id):
        case = service.review_case(
            session,
            case_id,
            user.id,
            body.decision.value,
            reason=body.reason.value if body.reason else None,
            note=body.note,
            corrections=[c.model_dump(mode="json", exclude_none=True) for c in body.corrections],
            duration_ms=body.duration_ms,
            classification=classification,
        )
        if store is not None and case.reject_reason in MEMORY_REASONS:
            _remember(session, store, case, user, ttl_days)
        claims.release(session, case_id, user.id)
        session.commit()
    request.app.state.metrics.decisions.labels(
        body.decision.value, body.reason.value if body.reason else ""
    ).inc()
    return case


def _classification(
    session: Session, case: Case, body: VerifyIn, cameras_file: Path | None
) -> Classification:
    """The reviewer's kind for ``case`` checked against the kinds the API knows: 422 in Chinese when the kind,
    the object class or the box does not fit."""
    kinds = {k.id: k for k in list_kinds(session, cameras_file)}
    spec = kinds.get(body.kind)
    if spec is None:
        raise HTTPException(422, f"未知的违规类型 '{body.kind}'；可选：{'、'.join(kinds)}")
    label = body.object_label.value if body.object_label else (spec.classes[0] if spec.classes else None)
    if label is None:
        raise HTTPException(422, f"类型“{spec.name_zh}”没有配置目标类别；请同时给出 object_label")
    if spec.classes and label not in spec.classes:
        raise HTTPException(
            422, f"目标类别 {label} 不属于类型“{spec.name_zh}”（可选：{'、'.join(spec.classes)}）"
        )
    box = body.object_box if body.object_box is not None else case.bbox_xyxy
    if len(box or []) != 4:
        raise HTTPException(422, "案件没有目标框；请在图上框选目标（object_box）")
    if len(case.frame_wh or []) == 2 and (box[2] > case.frame_wh[0] + 1 or box[3] > case.frame_wh[1] + 1):
        raise HTTPException(422, f"目标框超出画面（{case.frame_wh[0]}×{case.frame_wh[1]} 像素）；请重新框选")
    return Classification(
        kind=spec.id,
        gbt_code=spec.gbt_code,
        gbt_name=spec.gbt_name,
        kind_name_zh=spec.name_zh,
        label=label,
        bbox_xyxy=(float(box[0]), float(box[1]), float(box[2]), float(box[3])),
        seq=body.object_seq,
    )


def check_reviewable(session: Session, case_id: str, user: User) -> None:
    """409 with a Chinese reason when the case is another reviewer's now or no longer pending review."""
    case = _case(session, case_id)
    if case.status != CaseStatus.PENDING_REVIEW.value:
        raise conflict(
            f"该案件已被审核（当前状态：{STATUS_ZH.get(case.status, case.status)}），无需再审；已跳到下一件",
            ErrorCode.CASE_DECIDED,
        )
    claim = claims.holder(session, case_id, utcnow())
    if claim is not None and claim.user_id != user.id:
        other = session.get(User, claim.user_id)
        who = (other.display_name or other.username) if other else "其他审核员"
        raise conflict(f"该案件正由{who}审核中；已跳到下一件", ErrorCode.CASE_CLAIMED)


def _remember(session: Session, store: EvidenceStore, case: Case, user: User, ttl_days: float) -> None:
    """The camera's false-alarm memory learns the rejected object; the rejection stands if it cannot."""
    try:  # every check comes before the row is added: a failure leaves the review's transaction clean
        remember_rejection(session, store, case, user.id, ttl_days)
    except (MemoryNotMade, EvidenceNotFound, EvidenceStoreUnavailable) as exc:
        log.warning("case %s rejected but not remembered: %s", case.id, exc)


@router.post("/{case_id}/verify", response_model=CasePublic, responses=errors(404, 409))
def verify_case(
    case_id: str,
    body: VerifyIn,
    request: Request,
    session: SessionDep,
    store: StoreDep,
    settings: SettingsDep,
    user: ReviewerUser,
) -> CasePublic:
    """Confirm, or reject with a reason code (误检 false_detection, 固定设施/常驻物体 fixed_object, 合规经营
    permitted_vending, 重复 duplicate, 证据不足 insufficient_evidence, 其他 other + note). Box/label corrections
    are kept for retraining. 误检 and 固定设施 also teach the camera's false-alarm memory the object.
    Confirming with ``kind`` classifies the case (a 待分类 case needs one): the kind's code and name replace the
    case's, and ``object_box`` (default the case's box) with ``object_label`` is kept as a training label."""
    return CasePublic.model_validate(
        _verify(session, request, case_id, user, body, store, settings.memory_ttl_days)
    )


@router.post("/verify-bulk", response_model=BulkVerifyOut)
def verify_bulk(
    body: BulkVerifyIn,
    request: Request,
    session: SessionDep,
    store: StoreDep,
    settings: SettingsDep,
    user: ReviewerUser,
) -> BulkVerifyOut:
    """The same decision for many cases; each case succeeds or fails on its own."""
    single = VerifyIn.model_validate(body.model_dump(exclude={"case_ids"}))
    results = []
    for case_id in dict.fromkeys(body.case_ids):
        try:
            case = _verify(session, request, case_id, user, single, store, settings.memory_ttl_days)
            results.append(BulkItemResult(case_id=case_id, ok=True, status=case.status))
        except HTTPException as exc:
            session.rollback()
            results.append(BulkItemResult(case_id=case_id, ok=False, error=str(exc.detail)))
    return BulkVerifyOut(data=results, count=len(results), succeeded=sum(r.ok for r in results))


@router.post("/{case_id}/claim", response_model=ClaimOut, responses=errors(404))
def claim_case(case_id: str, session: SessionDep, user: ReviewerUser) -> ClaimOut:
    """Lease a pending case to the caller for a few minutes (again to extend): the queue shows it to no other
    reviewer and refuses their decisions on it. ``claimed: false`` with a Chinese ``detail`` when the case is
    decided or another reviewer holds it (the screen skips ahead)."""
    try:
        check_reviewable(session, case_id, user)
    except HTTPException as exc:
        if exc.status_code != 409:
            raise
        return ClaimOut(case_id=case_id, claimed=False, code=exc.headers["X-Error-Code"], detail=exc.detail)
    now = utcnow()
    if not claims.try_claim(session, case_id, user.id, now):
        session.rollback()
        return ClaimOut(
            case_id=case_id,
            claimed=False,
            code=ErrorCode.CASE_CLAIMED,
            detail="该案件刚被其他审核员领取；已跳到下一件",
        )
    session.commit()
    return ClaimOut(
        case_id=case_id, claimed=True, expires_at=now + dt.timedelta(seconds=claims.CLAIM_LEASE_S)
    )


@router.delete("/{case_id}/claim", status_code=204, responses=errors(404))
def release_case(case_id: str, session: SessionDep, user: ReviewerUser) -> Response:
    """Give the case back to the queue (skip). Releasing a case one does not hold changes nothing."""
    _case(session, case_id)
    claims.release(session, case_id, user.id)
    session.commit()
    return Response(status_code=204)


@router.delete("/claims", status_code=204)
def release_all_cases(session: SessionDep, user: ReviewerUser) -> Response:
    """Give back every case the caller holds (leaving the queue, logging out)."""
    claims.release_all(session, user.id)
    session.commit()
    return Response(status_code=204)


@router.post("/{case_id}/undo", response_model=CasePublic, responses=errors(404, 409))
def undo_case(case_id: str, request: Request, session: SessionDep, user: ReviewerUser) -> CasePublic:
    """Undo the last decision on a case, putting it back in the queue (while it has not gone further).
    A reviewer may undo only their own decision; admins any."""
    last = session.scalar(select(Review).where(Review.case_id == case_id).order_by(Review.id.desc()).limit(1))
    decided_by_other = last is not None and last.decision != "undo" and last.user_id != user.id
    if decided_by_other and user.role != Role.ADMIN.value:
        raise HTTPException(403, "only the reviewer who made this decision, or an admin, may undo it")
    with service_errors(case_id):
        case = service.undo_review(session, case_id, user.id)
        forget_case(session, case_id, actor_of(user))  # the object is no longer known to be harmless
        session.commit()
    request.app.state.metrics.undos.inc()
    return publish(session, [case])[0]


@router.post("/{case_id}/resend", response_model=CasePublic, responses=errors(404, 409))
def resend_case(case_id: str, session: SessionDep, user: ReviewerUser) -> CasePublic:
    """Queue a confirmed (or dead-lettered) case for the hotline again."""
    with service_errors(case_id):
        case = service.resend_to_hotline(session, case_id, actor_of(user))
        session.commit()
    return CasePublic.model_validate(case)


@router.get("/{case_id}/timeline", response_model=CaseTimeline, responses=errors(404))
def case_timeline(case_id: str, session: SessionDep, _: ReaderUser) -> CaseTimeline:
    """Status history from the audit log (oldest first) and the review decisions."""
    _case(session, case_id)
    rows = session.scalars(
        select(AuditLog).where(AuditLog.entity == "case", AuditLog.entity_id == case_id).order_by(AuditLog.id)
    ).all()
    entries = [
        TimelineEntry(
            at=r.at,
            actor=r.actor,
            action=r.action,
            from_status=r.from_status,
            to_status=r.to_status,
            detail=r.detail or {},
            hash=r.hash,
        )
        for r in rows
    ]
    return CaseTimeline(case_id=case_id, data=entries, reviews=_reviews(session, case_id))
