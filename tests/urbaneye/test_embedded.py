"""Embedded mode end to end: SQLite + filesystem evidence + eager tasks."""

from __future__ import annotations

import shutil
from pathlib import Path

from sqlalchemy import select

from tests.urbaneye.conftest import make_context, make_event, make_frames, tiny_jpeg
from tests.waiting import wait_for
from urbaneye.cases import service
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
        assert s.scalars(select(AuditLog.action).where(AuditLog.entity == "case")).all() == ["create"]
    assert handoff.spool.is_done(item_id)
    assert handoff.spool.pending_ids() == []


def test_an_item_spooled_by_the_untyped_version_becomes_its_case(embedded):
    """An upgrade finds items the previous version spooled (context as a dict, event as JSON): each
    still becomes its case, with every field the old reader took from it."""
    handoff = Handoff()
    item_dir = handoff.spool.items_dir / "spool-item-v1"
    item_dir.mkdir()
    shutil.copy(Path(__file__).parent / "fixtures" / "spool-item-v1.json", item_dir / "item.json")
    for seq in (1, 2):
        (item_dir / f"{seq}-clean.jpg").write_bytes(tiny_jpeg(seq))

    assert service.process_spool_item("spool-item-v1") == "done"
    with session_scope(embedded.db_url) as s:
        case = s.execute(select(Case)).scalar_one()
        assert (case.violation_id, case.place_key) == ("cam-1-z1-street_vending-40000", "cam-1/z1/f0")
        assert (case.escalation, case.object_count, case.model_version) == ("yellow", 2, "bootstrap-abc123")
        assert (case.address, case.grid_code, case.lat, case.frame_wh) == (
            "人民路与滨河路口东北角",
            "330102001",
            30.2,
            [1280, 720],
        )
        assert case.started_at.replace(tzinfo=None).isoformat() == "2024-06-01T10:00:00"
        assert case.description == (
            "人民路与滨河路口东北角发现2处占道经营，持续6分0秒，同一地点多次发生，已升级为黄色督办"
        )
        assert sorted((e.seq, e.variant, e.uploaded) for e in case.evidence) == [
            (1, "clean", True),
            (2, "clean", True),
        ]
    assert handoff.spool.is_done("spool-item-v1")


def test_embedded_relay_thread_pushes_confirmed_cases(embedded, settings_env, hotline):
    """memory:// broker: the hand-off's relay thread also drives the outbox (no relay service here)."""
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
