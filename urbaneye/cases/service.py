"""Case service: creation from the spool, review, lifecycle transitions, hotline queueing.

Functions work in the caller's session and never commit: the caller's unit of work commits the status
change, its audit row and its outbox row together. Every status change goes through ``transition``.

Lifecycle::

    pending_review -> confirmed -> queued -> accepted(受理) -> dispatched(派遣) -> handled(处置)
                   -> rejected(reason)       -> verified(核查) -> closed(结案)
    queued -> dead_letter (push failed max_retries times) -> queued (re-send)
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from urbaneye.audit import append_audit
from urbaneye.cases.classify import Classification, classify_case, unclassify_case
from urbaneye.cases.describe import describe_case, kind_name_zh
from urbaneye.cases.spool import DEFAULT_TIMEZONE, Spool, SpoolItem, SpoolItemNotFound
from urbaneye.cases.uploads import evidence_uploader, upload_spooled_evidence
from urbaneye.celery_app import node_name
from urbaneye.db.models import (
    Case,
    CaseStatus,
    Evidence,
    Outbox,
    OutboxStatus,
    RejectReason,
    Review,
    utcnow,
)
from urbaneye.db.session import session_scope
from urbaneye.settings import get_settings
from urbaneye.storage import evidence_key
from vision.digest import sha256_hex
from vision.types import GBT_CODES, Escalation, EventKind, ViolationEvent, ViolationKind

log = logging.getLogger(__name__)

S = CaseStatus
#: Hotline progress, in order. Callbacks move a case forward along it (possibly skipping steps).
HOTLINE_PROGRESS = [S.QUEUED, S.ACCEPTED, S.DISPATCHED, S.HANDLED, S.VERIFIED, S.CLOSED]

ALLOWED: dict[CaseStatus, set[CaseStatus]] = {
    S.PENDING_REVIEW: {S.CONFIRMED, S.REJECTED, S.QUEUED},  # -> queued directly: push policy immediate
    # -> closed: confirmed, not yet pushed, and the camera saw the violation end by itself (urbaneye.rechecks)
    S.CONFIRMED: {S.QUEUED, S.PENDING_REVIEW, S.CLOSED},
    S.REJECTED: {S.PENDING_REVIEW},
    S.QUEUED: {S.ACCEPTED, S.DISPATCHED, S.HANDLED, S.VERIFIED, S.CLOSED, S.DEAD_LETTER, S.PENDING_REVIEW},
    S.ACCEPTED: {S.DISPATCHED, S.HANDLED, S.VERIFIED, S.CLOSED},
    S.DISPATCHED: {S.HANDLED, S.VERIFIED, S.CLOSED},
    S.HANDLED: {S.VERIFIED, S.CLOSED},
    S.VERIFIED: {S.CLOSED},
    S.CLOSED: set(),
    S.DEAD_LETTER: {S.QUEUED, S.ACCEPTED, S.DISPATCHED, S.HANDLED, S.VERIFIED, S.CLOSED},
}

_CASE_NS = uuid.UUID("6f1d3c52-8a4e-4d8e-9a57-3b1f0c7e2a11")


class CaseNotFound(LookupError):
    pass


class CaseStateError(ValueError):
    """The requested change is not allowed from the case's current status."""


def case_id_for(violation_id: str) -> str:
    """Deterministic case id: every delivery of one violation computes the same id (and object keys)."""
    return uuid.uuid5(_CASE_NS, violation_id).hex


def get_case(session: Session, case_id: str, *, for_update: bool = False) -> Case:
    stmt = select(Case).where(Case.id == case_id)
    if for_update:
        stmt = stmt.with_for_update()
    case = session.execute(stmt).scalar_one_or_none()
    if case is None:
        raise CaseNotFound(f"no case {case_id!r}")
    return case


def transition(
    session: Session, case: Case, to_status: CaseStatus, actor: str, detail: dict | None = None
) -> None:
    """Change ``case.status`` (if allowed) and append the hash-chained audit row for it."""
    frm = CaseStatus(case.status)
    to = CaseStatus(to_status)
    if to not in ALLOWED[frm]:
        raise CaseStateError(
            f"case {case.id} is {frm.value}; it cannot move to {to.value} "
            f"(allowed: {sorted(s.value for s in ALLOWED[frm]) or 'none, it is final'})"
        )
    case.status = to.value
    case.updated_at = utcnow()
    append_audit(session, actor, "transition", "case", case.id, frm.value, to.value, detail)


# --- creation from the hand-off spool -------------------------------------------------------------


def _aware(t: dt.datetime | None) -> dt.datetime | None:
    # SQLite hands back naive datetimes; they are UTC.
    return None if t is None else (t if t.tzinfo else t.replace(tzinfo=dt.UTC))


def _event_times(item: SpoolItem) -> tuple[dt.datetime, dt.datetime]:
    """(started_at, event_at) in UTC from the event's stream times and the context's wall clock."""
    ev = item.event
    event_at = item.context.event_time or item.created_at
    started_at = event_at - dt.timedelta(seconds=max(0.0, ev.ts_s - ev.first_seen_s))
    return started_at.astimezone(dt.UTC), event_at.astimezone(dt.UTC)


def _event_names(ev: ViolationEvent) -> tuple[str, str]:
    """(gbt_name, kind_name_zh) of an event: as the rules named them (a configured kind brings its own), else
    the built-in tables. An event whose code has no name anywhere cannot become a case."""
    gbt_name = ev.gbt_name or (GBT_CODES[ev.gbt_code].name if ev.gbt_code in GBT_CODES else "")
    if not gbt_name:
        raise ValueError(
            f"violation {ev.violation_id} ({ev.kind}) has GB/T code {ev.gbt_code!r} without a name; "
            "give the kind's gbt_name in the cameras file's violations: section"
        )
    name_zh = kind_name_zh(str(ev.kind), ev.kind_name_zh)
    for what, value, limit in (
        ("gbt_name", gbt_name, 60),
        ("name_zh", name_zh, 60),
        ("gbt_code", ev.gbt_code, 12),
    ):
        if len(value) > limit:
            raise ValueError(
                f"violation {ev.violation_id}: {what} {value!r} is longer than {limit} characters"
            )
    return gbt_name, name_zh


def _new_case(item: SpoolItem, case_id: str) -> Case:
    ev, ctx = item.event, item.context
    loc = ctx.location
    gbt_name, name_zh = _event_names(ev)
    started_at, _ = _event_times(item)
    s = get_settings()
    route = "hotline"
    if ev.kind == ViolationKind.BIKE_MISPARKING and ctx.bike_operator_routing and s.bike_operator_url:
        route = "bike_operator"
    return Case(
        id=case_id,
        violation_id=ev.violation_id,
        camera_id=ev.camera_id,
        zone_id=ev.zone_id,
        place_key=ev.place_key or ctx.place_key or f"{ev.camera_id}/{ev.zone_id}",
        kind=str(ev.kind),
        gbt_code=ev.gbt_code,
        gbt_name=gbt_name,
        kind_name_zh=name_zh,
        unclassified=ev.unclassified,
        evidence_stream=ctx.evidence_stream,
        source_channel="视频抓拍",
        address=loc.address,
        lon=loc.lon,
        lat=loc.lat,
        grid_code=loc.grid_code,
        started_at=started_at,
        duration_s=0.0,
        confidence=ev.score,
        model_version=ctx.model_version,
        escalation=ev.escalation.value,
        bbox_xyxy=list(ev.bbox_xyxy),
        frame_wh=list(ctx.frame_wh or ()),
        object_count=ev.object_count,
        status=CaseStatus.PENDING_REVIEW.value,
        route=route,
        corrections=[],
    )


def _apply_event(case: Case, item: SpoolItem) -> None:
    """Fold one event into the case. Order-independent and idempotent (max/latest wins)."""
    ev = item.event
    span_s = max(0.0, ev.ts_s - ev.first_seen_s)
    case.duration_s = max(float(case.duration_s or 0.0), span_s, ev.dwell_s)
    case.confidence = max(float(case.confidence or 0.0), ev.score)
    case.object_count = max(int(case.object_count or 1), ev.object_count)
    if ev.escalation.rank > Escalation(case.escalation).rank:
        case.escalation = ev.escalation.value
    if ev.event in (EventKind.OPENED, EventKind.UPDATED) and ev.bbox_xyxy:
        case.bbox_xyxy = list(ev.bbox_xyxy)
    if ev.event == EventKind.CLOSED:
        case.ended_at = _aware(case.started_at) + dt.timedelta(seconds=case.duration_s)
    # the model seeing a known object there settles the kind; nothing makes a classified case 待分类 again
    case.unclassified = bool(case.unclassified) and ev.unclassified
    stream = item.context.evidence_stream
    if stream and case.evidence_stream != "sub_fallback":  # one fallback frame marks the whole case
        case.evidence_stream = stream
    case.description = describe_case(
        case.kind,
        case.address,
        case.duration_s,
        name_zh=case.kind_name_zh,
        unclassified=case.unclassified,
        zone_name=item.context.zone_name,
        object_count=case.object_count,
        escalation=case.escalation,
        closed=case.ended_at is not None,
    )


def _local_day(case: Case, tz_name: str) -> dt.date:
    try:
        tz = ZoneInfo(tz_name)
    except Exception:  # a camera's time zone is checked when its config is loaded; keep the case anyway
        tz = ZoneInfo(DEFAULT_TIMEZONE)
    return _aware(case.started_at).astimezone(tz).date()


def record_case_from_spool(session: Session, spool_item_id: str, *, spool: Spool | None = None) -> Case:
    """Create (or update) the case of a spooled event with one evidence row per frame. Idempotent.

    Touches only the database, so the case exists within milliseconds whatever the object store does:
    new evidence rows start ``uploaded=False`` with the SHA-256 of the spooled bytes, and
    ``upload_spooled_evidence`` uploads them afterwards. "opened" creates the case, "updated" adds
    evidence, "closed" sets ended_at/duration; any order works and a redelivered item changes nothing.
    Does not commit.
    """
    spool = spool or Spool(get_settings().spool_dir)
    item = spool.load(spool_item_id)
    ev = item.event
    case = session.execute(select(Case).where(Case.violation_id == ev.violation_id)).scalar_one_or_none()
    created = case is None
    if created:
        case = _new_case(item, case_id_for(ev.violation_id))
        session.add(case)
    existing = {(e.seq, e.variant) for e in case.evidence} if not created else set()
    day = _local_day(case, item.context.timezone)
    for frame in item.frames:
        if (frame.seq, frame.variant) in existing:
            continue
        data = frame.read()
        case.evidence.append(
            Evidence(
                seq=frame.seq,
                variant=frame.variant,
                key=evidence_key(case.camera_id, case.id, day, frame.seq, frame.variant),
                sha256=sha256_hex(data),
                size_bytes=len(data),
                content_type="image/jpeg",
                frame_ts=frame.frame_ts,
                uploaded=False,
            )
        )
        existing.add((frame.seq, frame.variant))
    _apply_event(case, item)
    session.flush()
    if created:
        append_audit(
            session,
            "system:cases",
            "create",
            "case",
            case.id,
            "",
            case.status,
            {"violation_id": case.violation_id, "spool_item": spool_item_id, "kind": case.kind},
        )
        # a 待分类 case waits for a reviewer's kind whatever its (suspected) kind's push policy says
        if get_settings().push_policy_for(case.kind) == "immediate" and not case.unclassified:
            queue_for_hotline(session, case, "system:push_policy", {"policy": "immediate"})
    else:
        append_audit(
            session,
            "system:cases",
            ev.event.value,
            "case",
            case.id,
            case.status,
            case.status,
            {"spool_item": spool_item_id, "frames": len(item.frames)},
        )
    return case


def evidence_complete(case: Case) -> bool:
    return all(e.uploaded for e in case.evidence)


# --- review ----------------------------------------------------------------------------------------


def review_case(
    session: Session,
    case_id: str,
    user_id: str,
    decision: str,
    reason: str | None = None,
    note: str = "",
    corrections: list | None = None,
    duration_ms: int | None = None,
    classification: Classification | None = None,
) -> Case:
    """A reviewer's verdict. Confirm queues the case for the hotline (push policy after_review); a 待分类 case
    is confirmed only with a ``classification`` (its kind), which is applied before the case is queued."""
    case = get_case(session, case_id, for_update=True)
    if case.status != CaseStatus.PENDING_REVIEW:
        raise CaseStateError(f"case {case_id} is {case.status}, not pending_review; reload and review again")
    actor = f"user:{user_id}"
    if classification is not None and decision != "confirm":
        raise CaseStateError("a kind is chosen only when confirming; reject without a kind")
    if case.unclassified and decision == "confirm" and classification is None:
        raise CaseStateError(f"案件 {case_id} 待分类：请先选择违规类型再确认，或驳回")
    if corrections is not None:
        case.corrections = list(corrections)
    if classification is not None:
        classify_case(session, case, classification, actor)
    if decision == "confirm":
        transition(session, case, CaseStatus.CONFIRMED, actor, {"note": note} if note else None)
        case.reject_reason = None
        queue_for_hotline(session, case, actor)
    elif decision == "reject":
        try:
            reason_value = RejectReason(reason).value
        except ValueError:
            raise CaseStateError(
                f"reject reason {reason!r} is not one of {[r.value for r in RejectReason]}"
            ) from None
        transition(session, case, CaseStatus.REJECTED, actor, {"reason": reason_value, "note": note})
        case.reject_reason = reason_value
    else:
        raise CaseStateError(f"decision {decision!r} must be 'confirm' or 'reject'")
    case.review_note = note
    case.reviewed_by = user_id
    case.reviewed_at = utcnow()
    session.add(
        Review(
            case_id=case.id,
            user_id=user_id,
            decision=decision,
            reason=reason,
            note=note,
            duration_ms=duration_ms,
        )
    )
    session.flush()
    return case


def undo_review(session: Session, case_id: str, user_id: str) -> Case:
    """Back to pending_review, as long as nothing has left for the hotline yet."""
    case = get_case(session, case_id, for_update=True)
    status = CaseStatus(case.status)
    if status not in (S.CONFIRMED, S.REJECTED, S.QUEUED):
        raise CaseStateError(
            f"case {case_id} is {status.value}; only a confirmed, rejected or queued case can be undone"
        )
    pending = session.scalars(
        select(Outbox).where(Outbox.case_id == case.id, Outbox.status == OutboxStatus.PENDING)
    ).all()
    sent = session.scalars(
        select(Outbox).where(Outbox.case_id == case.id, Outbox.status == OutboxStatus.SENT)
    ).first()
    if sent is not None:
        raise CaseStateError(
            f"case {case_id} was already pushed to the hotline at {sent.sent_at}; it cannot be undone"
        )
    for row in pending:
        row.status = OutboxStatus.CANCELLED.value
    transition(session, case, S.PENDING_REVIEW, f"user:{user_id}", {"undo": status.value})
    unclassify_case(session, case, f"user:{user_id}")
    case.reject_reason = None
    case.reviewed_by = None
    case.reviewed_at = None
    session.add(Review(case_id=case.id, user_id=user_id, decision="undo", reason=None, note=""))
    session.flush()
    return case


# --- hotline queueing ------------------------------------------------------------------------------


def hotline_payload(case: Case) -> dict[str, Any]:
    """The case as the hotline intake receives it (evidence URLs are added at delivery time)."""

    def iso(t: dt.datetime | None) -> str | None:
        return _aware(t).isoformat() if t else None

    return {
        "case_id": case.id,
        "violation_id": case.violation_id,
        "source_channel": case.source_channel,
        "event_code": case.gbt_code,
        "event_name": case.gbt_name,
        "kind": case.kind,
        "kind_name": kind_name_zh(case.kind, case.kind_name_zh),
        "description": case.description,
        "camera_id": case.camera_id,
        "address": case.address,
        "lon": case.lon,
        "lat": case.lat,
        "grid_code": case.grid_code,
        "started_at": iso(case.started_at),
        "ended_at": iso(case.ended_at),
        "duration_s": round(float(case.duration_s or 0.0), 1),
        "confidence": round(float(case.confidence or 0.0), 4),
        "model_version": case.model_version,
        "escalation": case.escalation,
        "reviewed_by": case.reviewed_by,
        "reviewed_at": iso(case.reviewed_at),
    }


def queue_for_hotline(session: Session, case: Case, actor: str, detail: dict | None = None) -> Outbox:
    """Move the case to ``queued`` and write its outbox row in the same transaction."""
    transition(session, case, CaseStatus.QUEUED, actor, {"route": case.route, **(detail or {})})
    row = Outbox(
        case_id=case.id, topic=case.route, payload=hotline_payload(case), status=OutboxStatus.PENDING.value
    )
    session.add(row)
    session.flush()
    return row


def resend_to_hotline(session: Session, case_id: str, actor: str) -> Case:
    """Re-queue a dead-lettered case: a fresh outbox row with a fresh retry budget."""
    case = get_case(session, case_id, for_update=True)
    if case.status != CaseStatus.DEAD_LETTER:
        raise CaseStateError(f"case {case_id} is {case.status}; only a dead_letter case can be re-sent")
    transition(session, case, CaseStatus.QUEUED, actor, {"resend": True})
    session.add(
        Outbox(
            case_id=case.id,
            topic=case.route,
            payload=hotline_payload(case),
            status=OutboxStatus.PENDING.value,
        )
    )
    session.flush()
    return case


# --- one spool item, end to end (the body of the case task) ----------------------------------------


def process_spool_item(
    spool_item_id: str, *, node: str | None = None, url: str | None = None, background: bool = False
) -> str:
    """Turn a spooled event into a committed case, then upload its evidence; owns its transactions.

    The case row is committed first (database only), then the evidence is uploaded: in this thread, or
    with ``background=True`` (the Celery task) by this process's ``EvidenceUploader``, so a slow or hung
    store never holds the task, never runs into its time limit and never delays the next case.

    ``node`` is the machine whose spool holds the item (the task, ``urbaneye.cases.tasks``, sends an
    item of another machine on to that machine's queue before calling this).

    Returns ``"done"`` (case committed, all evidence uploaded, spool item retired), ``"evidence_pending"``
    (case committed, some evidence waits for the store; retried when its circuit lets a probe through,
    and the relay re-sends the item), ``"uploading"`` (handed to the uploader), ``"already_done"``,
    or ``"not_here"`` (a task without a node for an item this machine does not have: the
    relay of the machine that has it re-sends it to its own queue). Safe to run twice at once.
    """
    here = node_name()
    spool = Spool(get_settings().spool_dir)
    if spool.is_done(spool_item_id):
        spool.mark_done(spool_item_id)  # idempotent: finishes a clean-up a crash interrupted
        return "already_done"
    if node is None and not spool.exists(spool_item_id):
        log.warning(
            "spool item %s is not on this machine (%s); its own machine's relay re-sends it",
            spool_item_id,
            here,
        )
        return "not_here"
    url = url or get_settings().db_url
    for attempt in range(3):
        try:
            with session_scope(url) as session:
                record_case_from_spool(session, spool_item_id, spool=spool)
            break
        except IntegrityError:
            if attempt == 2:
                raise
            log.info(
                "spool item %s raced another delivery; retrying against the committed case", spool_item_id
            )
        except SpoolItemNotFound:
            if spool.is_done(spool_item_id):
                return "already_done"
            raise
    if background:
        evidence_uploader(spool, url).submit(spool_item_id)
        return "uploading"
    try:
        return upload_spooled_evidence(spool_item_id, spool=spool, url=url).value
    except SpoolItemNotFound:
        return "already_done"  # retired by a concurrent delivery
