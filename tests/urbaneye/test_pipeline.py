"""Violation -> case -> review -> hotline, against PostgreSQL, Redis, a real Celery worker and moto S3."""

from __future__ import annotations

import json

from sqlalchemy import func, select

from tests.urbaneye.conftest import make_context, make_event, make_frames
from tests.waiting import wait_for
from urbaneye.audit_verify import verify_chain, verify_evidence
from urbaneye.cases import service
from urbaneye.cases.handoff import Handoff
from urbaneye.cases.spool import make_item_id
from urbaneye.cases.tasks import send_case_task
from urbaneye.db.models import Case, CaseStatus, Outbox
from urbaneye.db.session import session_scope
from urbaneye.hotline.relay import dispatch_due_outbox
from urbaneye.hotline.signing import sign
from urbaneye.storage import get_store


def _cases(url: str) -> list[Case]:
    with session_scope(url) as s:
        return list(s.scalars(select(Case).order_by(Case.violation_id)))


def _outbox_statuses(url: str) -> list[str]:
    with session_scope(url) as s:
        return list(s.scalars(select(Outbox.status).order_by(Outbox.id)))


def _evidence_done(url: str, n: int) -> bool:
    with session_scope(url) as s:
        cases = s.scalars(select(Case)).all()
        return len(cases) == n and all(c.evidence and all(e.uploaded for e in c.evidence) for c in cases)


def test_worker_creates_cases_review_pushes_signed_case_and_callback_advances(
    make_stack, private_redis_url, worker_factory
):
    stack = make_stack(private_redis_url)
    worker = worker_factory(stack.env, via_cli=True)  # `urbaneye worker --queues cases,hotline`
    worker.start()
    handoff = Handoff()
    events = [make_event(f"cam-1:z1:{i}") for i in range(3)]
    for ev in events:
        handoff.submit(ev, make_frames(ev), make_context())
    # a duplicate submission and a redelivered task must not make a second case
    handoff.submit(events[0], make_frames(events[0]), make_context())
    send_case_task(make_item_id(events[1].violation_id, "opened", events[1].ts_s))
    wait_for(lambda: _evidence_done(stack.db_url, 3), what="3 cases with uploaded evidence")
    wait_for(lambda: not handoff.spool.pending_ids(), what="spool drained")

    with session_scope(stack.db_url) as s:
        assert s.scalar(select(func.count()).select_from(Case)) == 3
        count, problems = verify_evidence(s, get_store())
        assert (count, problems) == (18, [])
        case = s.scalars(select(Case).where(Case.violation_id == "cam-1:z1:0")).one()
        # S3 object carries content type and our metadata; the bucket has object lock
        stat = get_store().stat(case.evidence[0].key)
        assert stat.content_type == "image/jpeg"
        assert stat.metadata.get("x-amz-meta-sha256") == case.evidence[0].sha256
        service.review_case(s, case.id, "u1", "confirm", note="ok")
        rejected = s.scalars(select(Case).where(Case.violation_id == "cam-1:z1:1")).one()
        service.review_case(s, rejected.id, "u1", "reject", reason="false_detection")
        case_id = case.id

    wait_for(lambda: dispatch_due_outbox() or stack.hotline.accepted, what="dispatch")
    wait_for(lambda: case_id in stack.hotline.accepted, what="hotline receives the confirmed case")
    req = next(r for r in stack.hotline.requests if r["headers"]["Idempotency-Key"] == case_id)
    ts = req["headers"]["X-UrbanEye-Timestamp"]
    assert req["headers"]["X-UrbanEye-Signature"] == sign("test-hotline-secret", ts, req["body"])
    body = json.loads(req["body"])
    assert body["event_code"] == "0501" and body["source_channel"] == "视频抓拍"
    assert len(body["evidence"]) == 6 and "X-Amz-Expires=600" in body["evidence"][0]["url"]
    assert list(stack.hotline.accepted) == [case_id]  # the rejected case never left

    wait_for(lambda: _outbox_statuses(stack.db_url) == ["sent"], what="outbox row marked sent")
    with session_scope(stack.db_url) as s:
        payload = json.dumps({"case_id": case_id, "status": "受理", "ref": "12345-0001"}).encode()
        import time

        ts = str(int(time.time()))
        from urbaneye.hotline.callbacks import apply_hotline_callback

        apply_hotline_callback(s, payload, sign("test-hotline-secret", ts, payload), ts)
    with session_scope(stack.db_url) as s:
        case = s.get(Case, case_id)
        assert case.status == CaseStatus.ACCEPTED and case.hotline_ref == "12345-0001"
        rows, problems = verify_chain(s)
        assert problems == [] and rows >= 3 + 2 + 2 + 1
