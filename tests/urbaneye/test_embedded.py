"""Embedded mode end to end: SQLite + filesystem evidence + eager tasks."""

from __future__ import annotations

from sqlalchemy import select

from tests.urbaneye.conftest import make_context, make_event, make_frames, wait_for
from urbaneye.cases.handoff import Handoff
from urbaneye.db.models import AuditLog, Case, CaseStatus
from urbaneye.db.session import session_scope
from urbaneye.storage import get_store, read_evidence


def test_opened_event_becomes_case_with_evidence_and_description(embedded):
    handoff = Handoff()
    ev = make_event()
    item_id = handoff.submit(ev, make_frames(ev), make_context())

    with session_scope(embedded.db_url) as s:
        case = s.execute(select(Case)).scalar_one()
        assert case.violation_id == ev.violation_id
        assert case.status == CaseStatus.PENDING_REVIEW
        assert (case.gbt_code, case.gbt_name, case.source_channel) == ("0501", "无照经营游商", "视频抓拍")
        assert case.description == "人民路与滨河路口东北角发现占道经营，持续6分0秒"
        assert case.grid_code == "330102001" and case.lon == 120.1
        assert len(case.evidence) == 6 and all(e.uploaded for e in case.evidence)
        key = case.evidence[0].key
        assert key.startswith(f"cam-1/2024/06/01/{case.id}/1-")
        for e in case.evidence:
            read_evidence(get_store(), e.key, e.sha256)
        assert s.scalars(select(AuditLog.action)).all() == ["create"]
    assert handoff.spool.is_done(item_id)
    assert handoff.spool.pending_ids() == []


def test_embedded_relay_thread_pushes_confirmed_cases(embedded, settings_env, hotline):
    """memory:// broker: the hand-off's relay thread also drives the outbox (no relay service here)."""
    from urbaneye.cases import service
    from urbaneye.celery_app import reconfigure

    reconfigure(settings_env(hotline_url=hotline.url, relay_interval_s=0.1))
    handoff = Handoff()
    ev = make_event("cam-1:z1:88")
    handoff.submit(ev, make_frames(ev), make_context())
    handoff.start_relay()
    try:
        with session_scope(embedded.db_url) as s:
            case_id = s.scalar(select(Case.id))
            service.review_case(s, case_id, "u1", "confirm")
        wait_for(lambda: _outbox(embedded.db_url) == ["sent"], what="embedded push")
    finally:
        handoff.close()
    assert list(hotline.accepted) == [case_id]


def _outbox(url: str) -> list[str]:
    from urbaneye.db.models import Outbox

    with session_scope(url) as s:
        return list(s.scalars(select(Outbox.status)))
