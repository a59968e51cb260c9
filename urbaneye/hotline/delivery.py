"""Deliver one outbox row to the hotline (or bike operator) intake; the state lives in the row."""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import select

from urbaneye.audit import append_audit
from urbaneye.cases.service import transition
from urbaneye.cases.spool import is_strip_seq
from urbaneye.db.models import Case, CaseStatus, Outbox, OutboxStatus, utcnow
from urbaneye.db.session import session_scope
from urbaneye.hotline.client import HotlineClient, HotlineRejected, HotlineTransientError
from urbaneye.rechecks import RECHECK_TOPIC, message_idempotency_key
from urbaneye.settings import Settings, get_settings
from urbaneye.storage import EvidenceStoreUnavailable, get_store

log = logging.getLogger(__name__)


def backoff_s(attempts: int, s: Settings) -> float:
    """Delay before attempt ``attempts + 1``: base * 2^(attempts-1), capped."""
    return min(s.hotline_backoff_max_s, s.hotline_backoff_s * 2 ** max(0, attempts - 1))


def client_for(topic: str, s: Settings) -> HotlineClient:
    url = s.bike_operator_url if topic == "bike_operator" else s.hotline_url
    if topic == "bike_operator" and not url:
        url = s.hotline_url  # routing configured but no operator intake: the hotline still gets it
    return HotlineClient(url, s.hotline_secret, s.hotline_timeout_s)


def _with_evidence(case: Case, payload: dict, expiry_s: int) -> dict:
    """The payload with links to the case's evidence: the legal moments and their crops. The frame strip
    (``is_strip_seq``) is a reviewing aid across the dwell; it is not sent and never holds a push back."""
    store = get_store()
    evidence = []
    for e in case.evidence:
        if is_strip_seq(e.seq):
            continue
        if not e.uploaded:
            raise HotlineTransientError(f"evidence {e.key} of case {case.id} still waits in the spool")
        evidence.append(
            {
                "seq": e.seq,
                "variant": e.variant,
                "key": e.key,
                "sha256": e.sha256,
                "url": store.presigned_url(e.key, expiry_s),
                "frame_ts": e.frame_ts.isoformat() if e.frame_ts else None,
            }
        )
    return {**payload, "evidence": evidence}


def _with_after_photo(payload: dict, expiry_s: int) -> dict:
    """A re-check message with links to its after-photo (clean, annotated), when it has one."""
    store = get_store()
    photos = []
    for variant in ("clean", "annotated"):
        key = payload[f"after_{variant}_key"]  # "" when the re-check has no photo (camera offline)
        if key:
            photos.append(
                {
                    "variant": variant,
                    "key": key,
                    "sha256": payload[f"after_{variant}_sha256"],
                    "url": store.presigned_url(key, expiry_s),
                }
            )
    return {**payload, "after_photo": photos}


def _send(row: Outbox, case: Case, s: Settings):  # noqa: ANN202 - DeliveryResult
    """POST one outbox row: the case with its evidence, or a re-check message to the case's intake."""
    if row.topic == RECHECK_TOPIC:
        payload = _with_after_photo(dict(row.payload), s.presign_expiry_s)
        key = message_idempotency_key(payload)
        return client_for(case.route, s).deliver(case.id, payload, idempotency_key=key)
    payload = _with_evidence(case, dict(row.payload), s.presign_expiry_s)
    return client_for(row.topic, s).deliver(case.id, payload)


def deliver_outbox(outbox_id: int, url: str | None = None) -> str:
    """One delivery attempt. Returns sent | retry | dead | waiting | skipped:<why>.

    The row is locked for the attempt (``SKIP LOCKED``), so a redelivered task never posts the same row
    twice at once; the ``Idempotency-Key`` header lets the intake drop repeats across attempts.
    """
    s = get_settings()
    with session_scope(url or get_settings().db_url) as session:
        stmt = select(Outbox).where(Outbox.id == outbox_id)
        if session.get_bind().dialect.name == "postgresql":
            stmt = stmt.with_for_update(skip_locked=True)
        row = session.execute(stmt).scalar_one_or_none()
        if row is None:
            return "skipped:locked_or_missing"
        if row.status != OutboxStatus.PENDING:
            return f"skipped:{row.status}"
        case = session.get(Case, row.case_id)
        # Not ready to send is not a failed push: wait without spending the retry budget.
        waiting = ""
        if not s.hotline_url and not (row.topic == "bike_operator" and s.bike_operator_url):
            waiting = "URBANEYE_HOTLINE_URL is not set; the case stays queued"
        elif not all(e.uploaded for e in case.evidence if not is_strip_seq(e.seq)):
            waiting = "evidence still waits in the spool for the store"
        if waiting:
            row.last_error = waiting
            row.next_attempt_at = utcnow() + dt.timedelta(seconds=s.hotline_backoff_s)
            return "waiting"
        row.attempts += 1
        error = ""
        try:
            result = _send(row, case, s)
        except (HotlineTransientError, EvidenceStoreUnavailable) as exc:
            error = str(exc)
            permanent = False
        except HotlineRejected as exc:
            error = str(exc)
            permanent = True
        else:
            row.status = OutboxStatus.SENT.value
            row.sent_at = utcnow()
            row.last_error = ""
            if result.ref and row.topic != RECHECK_TOPIC:
                case.hotline_ref = result.ref
            append_audit(
                session,
                "system:hotline",
                "push",
                "case",
                case.id,
                case.status,
                case.status,
                {"outbox_id": row.id, "topic": row.topic, "attempts": row.attempts, "ref": result.ref},
            )
            return "sent"
        row.last_error = error[:2000]
        if permanent or row.attempts > s.hotline_max_retries:
            row.status = OutboxStatus.DEAD.value
            if case.status == CaseStatus.QUEUED:
                transition(
                    session,
                    case,
                    CaseStatus.DEAD_LETTER,
                    "system:hotline",
                    {"outbox_id": row.id, "attempts": row.attempts, "error": error[:500]},
                )
            log.error("case %s dead-lettered after %d attempts: %s", case.id, row.attempts, error)
            return "dead"
        row.next_attempt_at = utcnow() + dt.timedelta(seconds=backoff_s(row.attempts, s))
        log.warning(
            "case %s push attempt %d failed (%s); retry at %s",
            case.id,
            row.attempts,
            error,
            row.next_attempt_at,
        )
        return "retry"
