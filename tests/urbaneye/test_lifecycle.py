"""Case lifecycle on PostgreSQL through the plain functions the tasks and the API call."""

from __future__ import annotations

import datetime as dt
import json
import time

import pytest
from sqlalchemy import select

from tests.urbaneye.conftest import make_context, make_event, make_frames
from urbaneye.audit_verify import verify_chain
from urbaneye.cases import service
from urbaneye.cases.handoff import EvidenceFrame, EvidenceRuleError, Handoff
from urbaneye.cases.service import CaseNotFound, CaseStateError
from urbaneye.cases.spool import STRIP_SEQ_BASE
from urbaneye.db.models import AuditLog, Case, CaseStatus, Evidence, Outbox, Review
from urbaneye.db.session import session_scope
from urbaneye.hotline.callbacks import apply_hotline_callback
from urbaneye.hotline.delivery import deliver_outbox
from urbaneye.hotline.signing import SignatureError, sign
from vision.types import ViolationKind

SECRET = "test-hotline-secret"


@pytest.fixture
def stack(make_stack, private_redis_url):
    """PostgreSQL + moto S3 + hotline receiver; tasks are driven by calling their plain functions."""
    return make_stack(private_redis_url, hotline_max_retries=2)


def _new_case(stack, vid: str = "cam-1:z1:1", kind=ViolationKind.STREET_VENDING, **ctx) -> str:
    ev = make_event(vid, kind=kind)
    item_id = Handoff().spool.write(f"t-{abs(hash(vid))}", ev, make_context(**ctx), make_frames(ev))
    assert item_id
    assert service.process_spool_item(f"t-{abs(hash(vid))}") == "done"
    return service.case_id_for(vid)


def _scalar(url: str, stmt):  # noqa: ANN001, ANN202
    with session_scope(url) as s:
        return s.scalar(stmt)


def _callback(s, case_id: str, status: str, ts: int | None = None, secret: str = SECRET):
    body = json.dumps({"case_id": case_id, "status": status, "ref": "12345-77"}, ensure_ascii=False).encode()
    ts = str(ts or int(time.time()))
    return apply_hotline_callback(s, body, sign(secret, ts, body), ts)


def _trail(s, case_id: str) -> list[tuple[str, str, str]]:
    # the explicit rows (entity "case"), not the per-row-change entries (entity "cases")
    rows = s.scalars(
        select(AuditLog).where(AuditLog.entity == "case", AuditLog.entity_id == case_id).order_by(AuditLog.id)
    )
    return [(r.action, r.from_status, r.to_status) for r in rows]


def test_full_lifecycle_is_audited_and_chained(stack):
    case_id = _new_case(stack)
    with session_scope(stack.db_url) as s:
        service.review_case(s, case_id, "u7", "confirm", note="现场属实", duration_ms=4200)
        # the status change and the outbox row are in the same transaction
        assert s.scalars(select(Outbox.status).where(Outbox.case_id == case_id)).all() == ["pending"]
    outbox_id = _scalar(stack.db_url, select(Outbox.id))
    assert deliver_outbox(outbox_id) == "sent"
    assert list(stack.hotline.accepted) == [case_id]
    with session_scope(stack.db_url) as s:
        for status in ("受理", "派遣", "处置", "核查", "结案"):
            _callback(s, case_id, status)
        _callback(s, case_id, "派遣")  # a late repeat changes nothing
        case = s.get(Case, case_id)
        assert case.status == CaseStatus.CLOSED and case.hotline_ref == "12345-77"
        assert _trail(s, case_id) == [
            ("create", "", "pending_review"),
            ("transition", "pending_review", "confirmed"),
            ("transition", "confirmed", "queued"),
            ("push", "queued", "queued"),
            ("transition", "queued", "accepted"),
            ("transition", "accepted", "dispatched"),
            ("transition", "dispatched", "handled"),
            ("transition", "handled", "verified"),
            ("transition", "verified", "closed"),
        ]
        actors = s.scalars(
            select(AuditLog.actor)
            .where(AuditLog.entity == "case", AuditLog.entity_id == case_id)
            .order_by(AuditLog.id)
        ).all()
        assert actors[1] == "user:u7" and actors[4] == "hotline"
        assert s.scalars(select(Review.duration_ms)).all() == [4200]
        assert verify_chain(s)[1] == []


def test_callback_signature_timestamp_and_unknown_case_are_refused(stack):
    case_id = _new_case(stack)
    with session_scope(stack.db_url) as s:
        with pytest.raises(SignatureError, match="does not match"):
            _callback(s, case_id, "受理", secret="wrong")
        with pytest.raises(SignatureError, match="from now"):
            _callback(s, case_id, "受理", ts=int(time.time()) - 3600)
        with pytest.raises(CaseNotFound):
            _callback(s, "nope", "受理")
        with pytest.raises(CaseStateError, match="never pushed"):
            _callback(s, case_id, "受理")  # still pending review
        with pytest.raises(ValueError, match="not one of"):
            _callback(s, case_id, "表扬")


def test_reject_undo_and_invalid_moves(stack):
    case_id = _new_case(stack)
    with session_scope(stack.db_url) as s, pytest.raises(CaseStateError, match="reject reason"):
        service.review_case(s, case_id, "u1", "reject", reason="dislike")
    with session_scope(stack.db_url) as s:
        case = service.review_case(s, case_id, "u1", "reject", reason="permitted_vending")
        assert case.reject_reason == "permitted_vending"
        with pytest.raises(CaseStateError, match="not pending_review"):
            service.review_case(s, case_id, "u2", "confirm")
        service.undo_review(s, case_id, "u1")
        service.review_case(s, case_id, "u1", "confirm")
        service.undo_review(s, case_id, "u1")  # before the push: the outbox row is cancelled
        assert s.scalars(select(Outbox.status)).all() == ["cancelled"]
        case = s.get(Case, case_id)
        with pytest.raises(CaseStateError, match="cannot move to closed"):
            service.transition(s, case, CaseStatus.CLOSED, "user:u1")
        service.review_case(s, case_id, "u1", "confirm")
    outbox_id = _scalar(stack.db_url, select(Outbox.id).where(Outbox.status == "pending"))
    assert deliver_outbox(outbox_id) == "sent"
    with session_scope(stack.db_url) as s, pytest.raises(CaseStateError, match="already pushed"):
        service.undo_review(s, case_id, "u1")


def test_dead_letter_after_max_retries_then_resend(stack):
    case_id = _new_case(stack)
    with session_scope(stack.db_url) as s:
        service.review_case(s, case_id, "u1", "confirm")
        outbox_id = s.scalar(select(Outbox.id))
    stack.hotline.mode = "fail"
    assert [deliver_outbox(outbox_id) for _ in range(3)] == ["retry", "retry", "dead"]
    with session_scope(stack.db_url) as s:
        row = s.get(Outbox, outbox_id)
        assert (row.status, row.attempts) == ("dead", 3) and "HTTP 500" in row.last_error
        assert s.get(Case, case_id).status == CaseStatus.DEAD_LETTER
        # back-off grew between attempts (exponential), recorded in the row
        service.resend_to_hotline(s, case_id, "user:admin")
        assert s.get(Case, case_id).status == CaseStatus.QUEUED
        new_id = s.scalar(select(Outbox.id).where(Outbox.status == "pending"))
    stack.hotline.mode = "ok"
    assert deliver_outbox(new_id) == "sent"
    assert list(stack.hotline.accepted) == [case_id]


def test_backoff_doubles_and_is_capped(stack):
    from urbaneye.hotline.delivery import backoff_s

    s = stack.settings()
    assert [backoff_s(a, s) for a in (1, 2, 3, 9)] == [0.2, 0.4, 0.8, 1.0]


def test_intake_refusal_dead_letters_at_once(stack):
    case_id = _new_case(stack)
    with session_scope(stack.db_url) as s:
        service.review_case(s, case_id, "u1", "confirm")
        outbox_id = s.scalar(select(Outbox.id))
    stack.hotline.mode = "refuse"  # 422: retrying the same body cannot help
    assert deliver_outbox(outbox_id) == "dead"
    with session_scope(stack.db_url) as s:
        assert s.get(Case, case_id).status == CaseStatus.DEAD_LETTER
        assert "HTTP 422" in s.get(Outbox, outbox_id).last_error


def test_immediate_policy_and_bike_operator_routing(make_stack, private_redis_url, hotline):
    stack = make_stack(
        private_redis_url,
        push_policy="bike_misparking=immediate",
        bike_operator_url=hotline.url.replace("intake", "bike"),
    )
    bike = _new_case(stack, "cam-1:z9:3", kind=ViolationKind.BIKE_MISPARKING, bike_operator_routing=True)
    vend = _new_case(stack, "cam-1:z1:4")
    with session_scope(stack.db_url) as s:
        assert s.get(Case, bike).status == CaseStatus.QUEUED and s.get(Case, bike).route == "bike_operator"
        assert s.get(Case, vend).status == CaseStatus.PENDING_REVIEW  # default: after review
        row = s.scalars(select(Outbox)).one()
        assert row.topic == "bike_operator"
    assert deliver_outbox(row.id) == "sent"
    assert [r["path"] for r in hotline.requests] == ["/bike"]


def test_updated_and_closed_events_fold_into_the_case_in_any_order(stack):
    handoff = Handoff()
    vid = "cam-1:z1:42"
    closed = make_event(vid, event="closed", ts_s=640.0)
    handoff.submit(closed, [], make_context())  # the close arrives first (e.g. an earlier item was stuck)
    opened = make_event(vid)
    updated = make_event(vid, event="updated", ts_s=500.0)
    upd_frames = [EvidenceFrame(3, "clean", make_frames(updated)[0].jpeg, make_frames(updated)[0].frame_ts)]
    handoff.submit(opened, make_frames(opened), make_context())
    handoff.submit(updated, upd_frames, make_context())
    for item_id in handoff.spool.pending_ids():  # oldest first: closed, opened, updated (no worker here)
        service.process_spool_item(item_id)
    with session_scope(stack.db_url) as s:
        case = s.scalars(select(Case)).one()
        assert case.duration_s == 600.0 and case.ended_at is not None
        assert case.ended_at - case.started_at == dt.timedelta(seconds=600)
        assert case.description == "人民路与滨河路口东北角发现占道经营，共持续10分0秒"
        assert sorted((e.seq, e.variant) for e in case.evidence)[-1] == (3, "clean")
        assert len(case.evidence) == 7


def test_opened_event_without_two_evidence_moments_is_refused(stack):
    ev = make_event("cam-1:z1:5")
    with pytest.raises(EvidenceRuleError, match=">= 10s apart"):
        Handoff().submit(ev, make_frames(ev, seqs=(1,)), make_context())
    with pytest.raises(EvidenceRuleError):
        Handoff().submit(ev, make_frames(ev, gap_s=4.0), make_context())


def test_push_waits_for_evidence_without_spending_retries(stack):
    case_id = _new_case(stack)
    with session_scope(stack.db_url) as s:
        service.review_case(s, case_id, "u1", "confirm")
        outbox_id = s.scalar(select(Outbox.id))
        s.get(Case, case_id).evidence[0].uploaded = False  # as while S3 is down
    assert [deliver_outbox(outbox_id) for _ in range(5)] == ["waiting"] * 5
    with session_scope(stack.db_url) as s:
        row = s.get(Outbox, outbox_id)
        assert (row.status, row.attempts) == ("pending", 0) and "spool" in row.last_error
        s.get(Case, case_id).evidence[0].uploaded = True
    assert deliver_outbox(outbox_id) == "sent"
    assert stack.hotline.requests and list(stack.hotline.accepted) == [case_id]


def test_push_sends_the_legal_evidence_not_the_frame_strip(stack):
    case_id = _new_case(stack, "cam-1:z1:strip")
    with session_scope(stack.db_url) as s:
        case = s.get(Case, case_id)
        legal = sorted({e.seq for e in case.evidence})
        strip = Evidence(case_id=case_id, seq=STRIP_SEQ_BASE, variant="annotated", key="strip/1.jpg",
                         sha256="0" * 64, uploaded=False)  # fmt: skip
        s.add(strip)  # a strip frame still in the spool must not hold the push back
        service.review_case(s, case_id, "u1", "confirm")
        outbox_id = s.scalar(select(Outbox.id).where(Outbox.case_id == case_id))
    assert deliver_outbox(outbox_id) == "sent"
    sent = json.loads(stack.hotline.requests[-1]["body"])
    assert sorted({e["seq"] for e in sent["evidence"]}) == legal == [1, 2]
