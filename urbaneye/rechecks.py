"""Camera re-check (智能核查) of cases: requests, the worker's claim, the result and the group's policy.

A request (``urbaneye.db.rechecks.CaseRecheck``) is written when the hotline reports a case 派遣/处置
(``on_hotline_status``), on a schedule for cases that stay dispatched and for violations that ended by
themselves before dispatch (``request_due``), or by a reviewer (API). The stream worker holding the camera
claims it (``claim_rechecks``), watches the place for the window (``streams.recheck``) and hands the
result here (``finish_recheck``): the result becomes a case event in the audit chain (with the
after-photo's SHA-256), the policy of the camera group acts on it (``RecheckConfig``: 核查通过 → 结案 with
reason 视频核查, escalation when still present, closing a case whose violation ended before dispatch) and
a ``recheck`` message for the hotline goes into the outbox (signed and idempotent on delivery).

Functions work in the caller's session and never commit.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, exists, or_, select
from sqlalchemy.orm import Session

from urbaneye.audit import append_audit
from urbaneye.cases.service import get_case, transition
from urbaneye.db.models import Case, CaseStatus, Outbox, OutboxStatus, utcnow
from urbaneye.db.rechecks import (
    ACTIVE_STATES,
    CaseRecheck,
    RecheckResult,
    RecheckState,
    RecheckTrigger,
)
from vision.config import RecheckConfig
from vision.types import Escalation

log = logging.getLogger(__name__)

S = CaseStatus
#: Outbox topic of re-check messages (delivered to the intake the case went to, ``urbaneye.hotline.delivery``).
RECHECK_TOPIC = "recheck"
#: Callback states that start a re-check; ``RecheckConfig.on_states`` names them (handling = 处置).
STATE_NAMES: dict[str, CaseStatus] = {
    "dispatched": S.DISPATCHED,
    "handling": S.HANDLED,
    "handled": S.HANDLED,
    "accepted": S.ACCEPTED,
}
#: The case is with the handler: a clear place means the job was done.
DISPATCHED_STATES = (S.DISPATCHED, S.HANDLED)
#: The case has not reached a handler yet: a clear place means the violation ended by itself.
UNDISPATCHED_STATES = (S.PENDING_REVIEW, S.CONFIRMED, S.QUEUED, S.ACCEPTED, S.DEAD_LETTER)
#: Undispatched states a case can be closed from (``urbaneye.cases.service.ALLOWED``).
CLOSABLE_UNDISPATCHED = (S.CONFIRMED, S.QUEUED, S.ACCEPTED, S.DEAD_LETTER)
#: A running request whose worker went silent this long past its window is handed out again.
STALE_GRACE_S = 120.0
#: How far back ``request_due`` looks for violations that ended by themselves.
ENDED_LOOKBACK_S = 6 * 3600.0
CLOSE_REASON = "视频核查"
ENDED_REASON = "违规已自行消失"
RESULT_NAMES_ZH = {
    RecheckResult.CLEARED: "已清除",
    RecheckResult.STILL_PRESENT: "仍存在",
    RecheckResult.INCONCLUSIVE: "无法判断",
}


class RecheckNotAllowed(ValueError):
    """The case cannot be re-checked now (closed, rejected, already being re-checked elsewhere)."""


@dataclass(frozen=True)
class RecheckTarget:
    """What a worker needs to examine one case's place (boxes in pixels of ``frame_wh``)."""

    recheck_id: str
    case_id: str
    camera_id: str
    zone_id: str
    kind: str
    gbt_code: str
    escalation: str
    bbox_xyxy: tuple[float, float, float, float]
    frame_wh: tuple[int, int]
    object_count: int
    case_status: str
    trigger: str


@dataclass(frozen=True)
class RecheckOutcome:
    """A worker's judgement of the window (``streams.recheck``)."""

    result: RecheckResult
    reason: str  # why inconclusive (Chinese), or ""
    window_s: float
    frames: int
    usable_frames: int
    present_frames: int
    objects_after: int
    present_bbox_xyxy: tuple[float, float, float, float] | None
    frame_wh: tuple[int, int] | None
    frame_at: dt.datetime | None


@dataclass(frozen=True)
class AfterPhoto:
    """The stored after-photo (clean and annotated JPEG), as evidence is stored: key and SHA-256."""

    clean_key: str
    clean_sha256: str
    annotated_key: str
    annotated_sha256: str


def after_photo_key(camera_id: str, case_id: str, recheck_id: str, day: dt.date, variant: str) -> str:
    """Object key of a re-check photo, beside the case's evidence.

    Example:
        >>> after_photo_key("cam-1", "ab12", "r9", dt.date(2024, 5, 1), "clean")
        'cam-1/2024/05/01/ab12/recheck-r9-clean.jpg'
    """
    if variant not in ("clean", "annotated"):
        raise ValueError(f"re-check photo variant {variant!r} is not clean or annotated")
    return f"{camera_id}/{day:%Y}/{day:%m}/{day:%d}/{case_id}/recheck-{recheck_id}-{variant}.jpg"


def policy_for(policies: dict[str, RecheckConfig], group: str) -> RecheckConfig:
    """The re-check policy of a camera group (cameras file ``recheck:``); groups not named get the defaults."""
    return policies.get(group) or RecheckConfig()


def trigger_states(policy: RecheckConfig) -> set[CaseStatus]:
    """The case statuses whose callback starts a re-check under ``policy`` (unknown names are ignored)."""
    return {STATE_NAMES[name] for name in policy.on_states if name in STATE_NAMES}


# ------------------------------------------------------------------------------------------ requests
def active_recheck(session: Session, case_id: str) -> CaseRecheck | None:
    return session.scalars(
        select(CaseRecheck).where(CaseRecheck.case_id == case_id, CaseRecheck.state.in_(ACTIVE_STATES))
    ).first()


def request_recheck(session: Session, case: Case, trigger: RecheckTrigger, actor: str) -> CaseRecheck:
    """Write a re-check request for ``case`` (lock the case row first). Idempotent: while one is pending
    or running, that one is returned and nothing is written.

    Raises ``RecheckNotAllowed`` for a closed or rejected case.
    """
    if case.status in (S.CLOSED, S.REJECTED):
        raise RecheckNotAllowed(f"案件 {case.id} 已{'结案' if case.status == S.CLOSED else '驳回'}，不再核查")
    current = active_recheck(session, case.id)
    if current is not None:
        return current
    row = CaseRecheck(
        case_id=case.id,
        camera_id=case.camera_id,
        trigger=trigger.value,
        case_status=case.status,
        requested_by=actor[:64],
        requested_at=utcnow(),
        state=RecheckState.PENDING.value,
    )
    session.add(row)
    session.flush()
    if trigger == RecheckTrigger.MANUAL:  # a person's request is theirs to answer for; automatic ones are
        # recorded by their result (the request row keeps who and when)
        append_audit(
            session,
            actor,
            "recheck_request",
            "case",
            case.id,
            case.status,
            case.status,
            {"recheck_id": row.id, "trigger": trigger.value},
        )
    return row


def on_hotline_status(session: Session, case: Case, status: CaseStatus) -> CaseRecheck | None:
    """The hotline callback moved ``case`` to ``status``: 派遣/处置 start a re-check (the worker applies its
    group's ``on_states`` and ``enabled`` when it claims the request)."""
    if status not in DISPATCHED_STATES:
        return None
    return request_recheck(session, case, RecheckTrigger.CALLBACK, "system:hotline")


def request_due(
    session: Session,
    camera_ids: Iterable[str],
    policy_of: Callable[[str], RecheckConfig],
    now: dt.datetime | None = None,
) -> list[CaseRecheck]:
    """Requests for the cases of ``camera_ids`` that are due: dispatched cases not re-checked for their
    group's ``interval_s``, and undispatched cases whose violation ended and was never re-checked."""
    now = now or utcnow()
    out: list[CaseRecheck] = []
    cameras = [c for c in camera_ids if policy_of(c).enabled]
    if not cameras:
        return out
    any_recheck = exists().where(CaseRecheck.case_id == Case.id)
    candidates = session.scalars(
        select(Case).where(
            Case.camera_id.in_(cameras),
            or_(
                Case.status.in_([s.value for s in DISPATCHED_STATES]),
                and_(
                    Case.status.in_([s.value for s in UNDISPATCHED_STATES]),
                    Case.ended_at.is_not(None),
                    Case.ended_at >= now - dt.timedelta(seconds=ENDED_LOOKBACK_S),
                    ~any_recheck,
                ),
            ),
        )
    ).all()
    for case in candidates:
        trigger = RecheckTrigger.ENDED if case.status in UNDISPATCHED_STATES else RecheckTrigger.SCHEDULE
        if trigger == RecheckTrigger.SCHEDULE and not _schedule_due(session, case, policy_of, now):
            continue
        locked = get_case(session, case.id, for_update=True)
        out.append(request_recheck(session, locked, trigger, "system:recheck"))
    return out


def _schedule_due(
    session: Session, case: Case, policy_of: Callable[[str], RecheckConfig], now: dt.datetime
) -> bool:
    interval_s = policy_of(case.camera_id).interval_s
    if interval_s <= 0:
        return False
    last = session.scalar(
        select(CaseRecheck.requested_at)
        .where(CaseRecheck.case_id == case.id)
        .order_by(CaseRecheck.requested_at.desc())
        .limit(1)
    )
    since = _aware(last) if last is not None else _aware(case.updated_at)
    return now - since >= dt.timedelta(seconds=interval_s)


def _aware(t: dt.datetime) -> dt.datetime:
    # SQLite hands back naive datetimes; they are UTC.
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


# --------------------------------------------------------------------------------------- the worker
def claim_rechecks(
    session: Session,
    camera_ids: Iterable[str],
    worker_id: str,
    window_of: Callable[[str], float],
    limit: int = 20,
) -> list[RecheckTarget]:
    """Claim the pending requests of ``camera_ids`` (and running ones whose worker went silent past their
    window) for ``worker_id``; ``window_of(camera_id)`` is the group's window. On PostgreSQL rows another
    worker is claiming are skipped (``SKIP LOCKED``)."""
    cameras = list(camera_ids)
    if not cameras:
        return []
    now = utcnow()
    stmt = (
        select(CaseRecheck)
        .where(
            CaseRecheck.camera_id.in_(cameras),
            or_(
                CaseRecheck.state == RecheckState.PENDING,
                and_(
                    CaseRecheck.state == RecheckState.RUNNING,
                    CaseRecheck.started_at < now - dt.timedelta(seconds=STALE_GRACE_S),
                ),
            ),
        )
        .order_by(CaseRecheck.requested_at)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    targets: list[RecheckTarget] = []
    for row in session.scalars(stmt).all():
        stale_after = dt.timedelta(seconds=row.window_s + STALE_GRACE_S)
        if row.state == RecheckState.RUNNING and now - _aware(row.started_at) < stale_after:
            continue  # its worker may still be watching: stale only once its window has passed too
        case = session.get(Case, row.case_id)
        if case.status in (S.CLOSED, S.REJECTED):
            row.state, row.finished_at = RecheckState.SKIPPED.value, now
            row.reason = "案件已结案，不再核查" if case.status == S.CLOSED else "案件已驳回，不再核查"
            continue
        row.state = RecheckState.RUNNING.value
        row.window_s = float(window_of(row.camera_id))
        row.worker_id = worker_id[:128]
        row.started_at = now
        targets.append(_target(row, case))
    session.flush()
    return targets


def _target(row: CaseRecheck, case: Case) -> RecheckTarget:
    box = tuple(float(v) for v in (case.bbox_xyxy or (0, 0, 0, 0)))
    wh = tuple(int(v) for v in (case.frame_wh or (0, 0)))
    return RecheckTarget(
        recheck_id=row.id,
        case_id=case.id,
        camera_id=case.camera_id,
        zone_id=case.zone_id,
        kind=case.kind,
        gbt_code=case.gbt_code,
        escalation=case.escalation,
        bbox_xyxy=box if len(box) == 4 else (0.0, 0.0, 0.0, 0.0),
        frame_wh=wh if len(wh) == 2 else (0, 0),
        object_count=int(case.object_count or 1),
        case_status=row.case_status,
        trigger=row.trigger,
    )


def skip_recheck(session: Session, recheck_id: str, reason: str) -> None:
    """The group's policy does not re-check this request: record why (no case event)."""
    row = session.get(CaseRecheck, recheck_id)
    if row is None or row.state not in ACTIVE_STATES:
        return
    row.state = RecheckState.SKIPPED.value
    row.reason = reason
    row.finished_at = utcnow()


def should_run(target: RecheckTarget, policy: RecheckConfig) -> str:
    """ "" when ``policy`` re-checks ``target``, else the reason it does not (Chinese, for the row)."""
    if not policy.enabled:
        return "该摄像机分组未启用视频核查"
    if target.trigger == RecheckTrigger.CALLBACK and CaseStatus(target.case_status) not in trigger_states(
        policy
    ):
        return f"核查策略不在 {target.case_status} 状态时核查"
    return ""


def finish_recheck(
    session: Session,
    recheck_id: str,
    outcome: RecheckOutcome,
    photo: AfterPhoto | None,
    policy: RecheckConfig,
    actor: str,
) -> CaseRecheck:
    """Record a worker's result, chain it as a case event, apply the policy and queue the hotline message.

    Idempotent: a request already done is returned unchanged (a worker retrying after a lost commit).
    """
    row = session.get(CaseRecheck, recheck_id)
    if row is None:
        raise LookupError(f"no re-check {recheck_id!r}")
    if row.state == RecheckState.DONE:
        return row
    case = get_case(session, row.case_id, for_update=True)
    _record(row, outcome, photo)
    before = case.status
    row.action = _apply_policy(session, case, row, policy, actor)
    append_audit(session, actor, "recheck", "case", case.id, before, case.status, recheck_detail(row, case))
    if _was_pushed(session, case.id):
        _queue_message(session, case, row)
    session.flush()
    return row


def _record(row: CaseRecheck, outcome: RecheckOutcome, photo: AfterPhoto | None) -> None:
    row.state = RecheckState.DONE.value
    row.finished_at = utcnow()
    row.result = outcome.result.value
    row.reason = outcome.reason
    row.window_s = float(outcome.window_s)
    row.frames = outcome.frames
    row.usable_frames = outcome.usable_frames
    row.present_frames = outcome.present_frames
    row.objects_after = outcome.objects_after
    row.present_bbox_xyxy = [round(float(v), 1) for v in outcome.present_bbox_xyxy or ()]
    row.frame_wh = list(outcome.frame_wh or ())
    row.frame_at = outcome.frame_at
    if photo is not None:
        row.clean_key, row.clean_sha256 = photo.clean_key, photo.clean_sha256
        row.annotated_key, row.annotated_sha256 = photo.annotated_key, photo.annotated_sha256


def _apply_policy(session: Session, case: Case, row: CaseRecheck, policy: RecheckConfig, actor: str) -> str:
    """What the group's policy does with the result; returns the action's name ("" = nothing)."""
    status = CaseStatus(case.status)
    detail = {"recheck_id": row.id, "result": row.result}
    if row.result == RecheckResult.CLEARED:
        if status in DISPATCHED_STATES and policy.auto_close_on_clear:
            transition(session, case, S.VERIFIED, actor, {**detail, "reason": CLOSE_REASON})
            transition(session, case, S.CLOSED, actor, {**detail, "reason": CLOSE_REASON})
            return "closed"
        if status in CLOSABLE_UNDISPATCHED and policy.close_undispatched_when_gone:
            for pending in session.scalars(
                select(Outbox).where(Outbox.case_id == case.id, Outbox.status == OutboxStatus.PENDING)
            ):
                pending.status = OutboxStatus.CANCELLED.value  # not sent yet: nothing to tell the hotline
            transition(session, case, S.CLOSED, actor, {**detail, "reason": ENDED_REASON})
            return "closed_undispatched"
        return "ended_before_dispatch" if status in UNDISPATCHED_STATES else ""
    still = row.result == RecheckResult.STILL_PRESENT and status in DISPATCHED_STATES
    if still and policy.escalate_on_still_present:
        case.escalation = escalate(Escalation(case.escalation)).value
        return "escalated"
    return ""


def escalate(level: Escalation) -> Escalation:
    """One step up the 三色单 (blue → yellow → red; red stays red)."""
    order = list(Escalation)
    return order[min(level.rank + 1, len(order) - 1)]


def recheck_detail(row: CaseRecheck, case: Case) -> dict[str, Any]:
    """The re-check as its audit row and hotline message carry it (the after-photo's SHA-256 included)."""
    return {
        "recheck_id": row.id,
        "trigger": row.trigger,
        "result": row.result,
        "result_zh": RESULT_NAMES_ZH.get(RecheckResult(row.result), row.result),
        "reason": row.reason,
        "action": row.action,
        "window_s": round(float(row.window_s), 1),
        "frames": row.frames,
        "usable_frames": row.usable_frames,
        "present_frames": row.present_frames,
        "objects_before": int(case.object_count or 1),
        "objects_after": row.objects_after,
        "present_bbox_xyxy": list(row.present_bbox_xyxy or []),
        "frame_wh": list(row.frame_wh or []),
        "after_clean_key": row.clean_key,
        "after_clean_sha256": row.clean_sha256,
        "after_annotated_key": row.annotated_key,
        "after_annotated_sha256": row.annotated_sha256,
        "escalation": case.escalation,
    }


def _was_pushed(session: Session, case_id: str) -> bool:
    """Whether the hotline has the case (its push was sent): only then is it told about the re-check."""
    return (
        session.scalar(
            select(Outbox.id)
            .where(
                Outbox.case_id == case_id,
                Outbox.topic != RECHECK_TOPIC,
                Outbox.status == OutboxStatus.SENT,
            )
            .limit(1)
        )
        is not None
    )


def _queue_message(session: Session, case: Case, row: CaseRecheck) -> Outbox:
    payload = {
        "message": "recheck",
        "case_id": case.id,
        "hotline_ref": case.hotline_ref,
        "status": case.status,
        "checked_at": _aware(row.finished_at).isoformat() if row.finished_at else None,
        **recheck_detail(row, case),
    }
    out = Outbox(case_id=case.id, topic=RECHECK_TOPIC, payload=payload, status=OutboxStatus.PENDING.value)
    session.add(out)
    return out


def message_idempotency_key(payload: dict[str, Any]) -> str:
    """``Idempotency-Key`` of a re-check message: one per re-check, never the case's own key."""
    return f"recheck:{payload['recheck_id']}"
