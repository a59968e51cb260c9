"""Camera re-check service (issue 19) on PostgreSQL + moto S3 + the hotline stand-in: requests from the
hotline's callbacks, the worker's claim, the result in the audit chain, the group's policy and the signed,
idempotent ``recheck`` message."""

from __future__ import annotations

import datetime as dt
import json
import time

import pytest
from sqlalchemy import select

from tests.urbaneye.conftest import make_context, make_event, make_frames, tiny_jpeg
from urbaneye.audit_verify import verify_chain
from urbaneye.cases import service
from urbaneye.cases.handoff import Handoff
from urbaneye.db.models import AuditLog, Case, CaseStatus, Outbox, utcnow
from urbaneye.db.rechecks import CaseRecheck, RecheckResult, RecheckState, RecheckTrigger
from urbaneye.db.session import session_scope
from urbaneye.hotline.callbacks import apply_hotline_callback
from urbaneye.hotline.delivery import deliver_outbox
from urbaneye.hotline.signing import sign
from urbaneye.rechecks import (
    AfterPhoto,
    RecheckNotAllowed,
    RecheckOutcome,
    after_photo_key,
    claim_rechecks,
    finish_recheck,
    request_due,
    request_recheck,
    should_run,
)
from urbaneye.storage import get_store, read_evidence
from vision.config import RecheckConfig

SECRET = "test-hotline-secret"
AUTO = RecheckConfig(window_s=5, auto_close_on_clear=True, close_undispatched_when_gone=True)


@pytest.fixture
def stack(make_stack, private_redis_url):
    return make_stack(private_redis_url)


def _callback(s, case_id: str, status: str) -> Case:
    body = json.dumps({"case_id": case_id, "status": status, "ref": "12345-9"}, ensure_ascii=False).encode()
    ts = str(int(time.time()))
    return apply_hotline_callback(s, body, sign(SECRET, ts, body), ts)


def _pushed_case(stack, vid: str, *statuses: str) -> str:
    """A confirmed case pushed to the hotline, then moved along by the hotline's callbacks."""
    ev = make_event(vid)
    item_id = "t-" + vid.replace(":", "-")
    Handoff().spool.write(item_id, ev, make_context(), make_frames(ev))
    assert service.process_spool_item(item_id) == "done"
    case_id = service.case_id_for(vid)
    with session_scope(stack.db_url) as s:
        service.review_case(s, case_id, "u1", "confirm")
        outbox_id = s.scalar(select(Outbox.id).where(Outbox.case_id == case_id))
    assert deliver_outbox(outbox_id) == "sent"
    with session_scope(stack.db_url) as s:
        for status in statuses:
            _callback(s, case_id, status)
    return case_id


def _outcome(result: RecheckResult, reason: str = "", box=None) -> RecheckOutcome:  # noqa: ANN001
    return RecheckOutcome(
        result=result,
        reason=reason,
        window_s=5.0,
        frames=25 if result != RecheckResult.INCONCLUSIVE else 0,
        usable_frames=25 if result != RecheckResult.INCONCLUSIVE else 0,
        present_frames=25 if result == RecheckResult.STILL_PRESENT else 0,
        objects_after=1 if result == RecheckResult.STILL_PRESENT else 0,
        present_bbox_xyxy=box,
        frame_wh=(1280, 720),
        frame_at=utcnow(),
    )


def _photo(case_id: str, recheck_id: str) -> AfterPhoto:
    store = get_store()
    day = dt.date(2024, 6, 1)
    keys = [after_photo_key("cam-1", case_id, recheck_id, day, v) for v in ("clean", "annotated")]
    shas = [store.put(k, tiny_jpeg(i + 40)) for i, k in enumerate(keys)]
    return AfterPhoto(keys[0], shas[0], keys[1], shas[1])


def _claim(stack) -> list:  # noqa: ANN001
    with session_scope(stack.db_url) as s:
        return claim_rechecks(s, ["cam-1"], "worker-a", lambda _cid: 5.0)


def _audit(s, case_id: str, action: str) -> list[AuditLog]:
    return s.scalars(
        select(AuditLog)
        .where(AuditLog.entity == "case", AuditLog.entity_id == case_id, AuditLog.action == action)
        .order_by(AuditLog.id)
    ).all()


def test_dispatch_callback_requests_once_and_cleared_closes_with_message_once(stack):
    case_id = _pushed_case(stack, "cam-1:z1:1", "受理", "派遣")
    with session_scope(stack.db_url) as s:
        _callback(s, case_id, "派遣")  # a repeated callback
        rows = s.scalars(select(CaseRecheck).where(CaseRecheck.case_id == case_id)).all()
        assert [(r.trigger, r.state, r.case_status) for r in rows] == [("callback", "pending", "dispatched")]
        _callback(s, case_id, "处置")  # still one request while it is pending
        assert len(s.scalars(select(CaseRecheck)).all()) == 1
    (target,) = _claim(stack)
    assert target.case_id == case_id and target.bbox_xyxy == (10.0, 20.0, 110.0, 220.0)
    assert target.frame_wh == (1280, 720) and should_run(target, AUTO) == ""
    assert _claim(stack) == []  # claimed: no other worker gets it
    photo = _photo(case_id, target.recheck_id)
    with session_scope(stack.db_url) as s:
        row = finish_recheck(
            s, target.recheck_id, _outcome(RecheckResult.CLEARED), photo, AUTO, "system:recheck"
        )
        assert row.action == "closed"
        # a retry after a lost commit changes nothing
        finish_recheck(s, target.recheck_id, _outcome(RecheckResult.CLEARED), photo, AUTO, "system:recheck")
    with session_scope(stack.db_url) as s:
        case = s.get(Case, case_id)
        assert case.status == CaseStatus.CLOSED
        (event,) = _audit(s, case_id, "recheck")
        assert event.detail["result"] == "cleared"
        assert event.detail["after_clean_sha256"] == photo.clean_sha256
        closing = _audit(s, case_id, "transition")[-2:]
        assert [(r.from_status, r.to_status, r.detail["reason"]) for r in closing] == [
            ("handled", "verified", "视频核查"),
            ("verified", "closed", "视频核查"),
        ]
        assert verify_chain(s)[1] == []
        assert read_evidence(get_store(), photo.clean_key, event.detail["after_clean_sha256"])
        message_id = s.scalar(select(Outbox.id).where(Outbox.topic == "recheck"))
    assert deliver_outbox(message_id) == "sent"
    assert deliver_outbox(message_id) == "skipped:sent"
    key = f"recheck:{target.recheck_id}"
    requests = [r for r in stack.hotline.requests if r["headers"].get("Idempotency-Key") == key]
    assert len(requests) == 1
    ts = requests[0]["headers"]["X-UrbanEye-Timestamp"]
    assert requests[0]["headers"]["X-UrbanEye-Signature"] == sign(SECRET, ts, requests[0]["body"])
    body = json.loads(requests[0]["body"])
    assert (body["message"], body["result"], body["action"], body["status"]) == (
        "recheck",
        "cleared",
        "closed",
        "closed",
    )
    assert [p["sha256"] for p in body["after_photo"]] == [photo.clean_sha256, photo.annotated_sha256]


def test_still_present_escalates_and_inconclusive_closes_nothing(stack):
    present = _pushed_case(stack, "cam-1:z1:2", "派遣")
    offline = _pushed_case(stack, "cam-1:z1:3", "派遣")
    targets = {t.case_id: t for t in _claim(stack)}
    with session_scope(stack.db_url) as s:
        box = (12.0, 22.0, 108.0, 215.0)
        row = finish_recheck(
            s, targets[present].recheck_id, _outcome(RecheckResult.STILL_PRESENT, box=box), None, AUTO, "w"
        )
        assert (row.action, row.present_bbox_xyxy) == ("escalated", list(box))
        reason = "摄像机离线：核查时段内没有画面"
        row = finish_recheck(
            s, targets[offline].recheck_id, _outcome(RecheckResult.INCONCLUSIVE, reason), None, AUTO, "w"
        )
        assert row.action == ""
    with session_scope(stack.db_url) as s:
        assert (s.get(Case, present).status, s.get(Case, present).escalation) == ("dispatched", "yellow")
        assert (s.get(Case, offline).status, s.get(Case, offline).escalation) == ("dispatched", "blue")
        assert _audit(s, offline, "recheck")[0].detail["reason"] == reason
        messages = s.scalars(select(Outbox).where(Outbox.topic == "recheck").order_by(Outbox.id)).all()
        assert [(m.payload["result"], m.payload["action"]) for m in messages] == [
            ("still_present", "escalated"),
            ("inconclusive", ""),
        ]


def test_ended_before_dispatch_is_rechecked_and_closed_under_the_policy(stack):
    ev = make_event("cam-1:z1:4")
    Handoff().spool.write("t-ended", ev, make_context(), make_frames(ev))
    assert service.process_spool_item("t-ended") == "done"
    case_id = service.case_id_for("cam-1:z1:4")
    with session_scope(stack.db_url) as s:
        service.review_case(s, case_id, "u1", "confirm")  # queued: its push has not left yet
        s.get(Case, case_id).ended_at = utcnow()
    with session_scope(stack.db_url) as s:
        (row,) = request_due(s, ["cam-1"], lambda _cid: AUTO)
        assert row.trigger == RecheckTrigger.ENDED
    with session_scope(stack.db_url) as s:
        assert request_due(s, ["cam-1"], lambda _cid: AUTO) == []  # once
    (target,) = _claim(stack)
    with session_scope(stack.db_url) as s:
        row = finish_recheck(s, target.recheck_id, _outcome(RecheckResult.CLEARED), None, AUTO, "w")
        assert row.action == "closed_undispatched"
    with session_scope(stack.db_url) as s:
        assert s.get(Case, case_id).status == CaseStatus.CLOSED
        # the push never left and the hotline never had the case: nothing is sent about it
        assert s.scalars(select(Outbox.status).where(Outbox.case_id == case_id)).all() == ["cancelled"]
        assert _audit(s, case_id, "transition")[-1].detail["reason"] == "违规已自行消失"


def test_schedule_policy_skip_and_closed_cases(stack):
    case_id = _pushed_case(stack, "cam-1:z1:5", "派遣")
    (target,) = _claim(stack)
    off = RecheckConfig(enabled=False)
    assert should_run(target, off) == "该摄像机分组未启用视频核查"
    assert should_run(target, RecheckConfig(on_states=["handling"])).startswith("核查策略")
    with session_scope(stack.db_url) as s:
        finish_recheck(s, target.recheck_id, _outcome(RecheckResult.INCONCLUSIVE, "x"), None, AUTO, "w")
        # the case stays dispatched: re-checked again once interval_s has passed since the last request
        hourly = RecheckConfig(interval_s=3600)
        assert request_due(s, ["cam-1"], lambda _cid: hourly) == []
        later = utcnow() + dt.timedelta(seconds=3601)
        assert request_due(s, ["cam-1"], lambda _cid: off, now=later) == []  # group not re-checked
        (again,) = request_due(s, ["cam-1"], lambda _cid: hourly, now=later)
        assert again.trigger == RecheckTrigger.SCHEDULE
    with session_scope(stack.db_url) as s:
        _callback(s, case_id, "结案")
    assert _claim(stack) == []  # closed meanwhile: skipped, not watched
    with session_scope(stack.db_url) as s:
        states = s.scalars(select(CaseRecheck.state).order_by(CaseRecheck.requested_at)).all()
        assert states == [RecheckState.DONE, RecheckState.SKIPPED]
        with pytest.raises(RecheckNotAllowed, match="已结案"):
            request_recheck(s, s.get(Case, case_id), RecheckTrigger.MANUAL, "user:u1")
