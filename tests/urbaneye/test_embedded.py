"""Embedded mode end to end: SQLite + filesystem evidence + eager tasks."""

from __future__ import annotations

from sqlalchemy import select

from tests.urbaneye.conftest import make_context, make_event, make_frames
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
        assert case.description == "人民路与滨河路口东北角发现占道经营，持续6分钟"
        assert case.grid_code == "330102001" and case.lon == 120.1
        assert len(case.evidence) == 6 and all(e.uploaded for e in case.evidence)
        key = case.evidence[0].key
        assert key.startswith(f"cam-1/2024/06/01/{case.id}/1-")
        for e in case.evidence:
            read_evidence(get_store(), e.key, e.sha256)
        assert s.scalars(select(AuditLog.action)).all() == ["create"]
    assert handoff.spool.is_done(item_id)
    assert handoff.spool.pending_ids() == []
