"""Configured violation kinds and 待分类 (unclassified) cases through the real path (issues 19, 14): spooled
event -> case (PostgreSQL, S3) -> review -> signed push to the hotline stand-in."""

from __future__ import annotations

import dataclasses

import pytest
from sqlalchemy import select

from tests.urbaneye.conftest import make_context, make_event, make_frames
from urbaneye.cases import service
from urbaneye.cases.classify import Classification
from urbaneye.cases.handoff import Handoff
from urbaneye.cases.service import CaseStateError
from urbaneye.db.models import AuditLog, Case, Outbox
from urbaneye.db.session import session_scope
from urbaneye.hotline.delivery import deliver_outbox
from vision.types import ViolationEvent

GOODS_DISPLAY = {
    "kind": "goods_display",
    "gbt_code": "0504",
    "gbt_name": "店外经营",
    "kind_name_zh": "出店陈列",
}


@pytest.fixture
def stack(make_stack, private_redis_url):  # noqa: ANN001, ANN201
    return make_stack(private_redis_url)


def _spool(vid: str, ev: ViolationEvent, **ctx: object) -> str:
    item_id = f"k-{abs(hash(vid))}-{ev.event}"
    Handoff().spool.write(item_id, ev, make_context(**ctx), make_frames(ev) if ev.event == "opened" else [])
    return item_id


def _push(url: str, case_id: str) -> None:
    with session_scope(url) as s:
        outbox_id = s.scalar(select(Outbox.id).where(Outbox.case_id == case_id))
    assert deliver_outbox(outbox_id) == "sent"


def test_a_configured_kind_is_a_case_with_its_code_and_name_up_to_the_hotline(stack) -> None:  # noqa: ANN001
    ev = dataclasses.replace(make_event("cam-1:z1:gd"), **GOODS_DISPLAY)
    assert service.process_spool_item(_spool("cam-1:z1:gd", ev, evidence_stream="sub_fallback")) == "done"
    case_id = service.case_id_for("cam-1:z1:gd")
    with session_scope(stack.db_url) as s:
        case = s.get(Case, case_id)
        assert (case.kind, case.gbt_code, case.gbt_name, case.kind_name_zh) == (
            "goods_display",
            "0504",
            "店外经营",
            "出店陈列",
        )
        assert (case.unclassified, case.evidence_stream) == (False, "sub_fallback")
        assert case.description == "人民路与滨河路口东北角发现出店陈列，持续6分0秒"
        service.review_case(s, case_id, "u1", "confirm")
    _push(stack.db_url, case_id)
    body = stack.hotline.accepted[case_id]
    assert (body["event_code"], body["event_name"], body["kind"], body["kind_name"]) == (
        "0504",
        "店外经营",
        "goods_display",
        "出店陈列",
    )
    assert body["description"] == "人民路与滨河路口东北角发现出店陈列，持续6分0秒"


def test_an_unclassified_case_is_confirmed_only_with_the_kind_the_reviewer_picks(stack) -> None:  # noqa: ANN001
    vid = "cam-1:z1:unk"
    ev = dataclasses.replace(
        make_event(vid, kind="exposed_garbage"),
        gbt_name="暴露垃圾",
        kind_name_zh="暴露垃圾",
        unclassified=True,
    )
    service.process_spool_item(_spool(vid, ev))
    case_id = service.case_id_for(vid)
    with session_scope(stack.db_url) as s:
        case = s.get(Case, case_id)
        assert case.unclassified and case.kind == "exposed_garbage"
        assert case.description == "人民路与滨河路口东北角发现不明物体（疑似暴露垃圾，待分类），持续6分0秒"
    with pytest.raises(CaseStateError, match="待分类"), session_scope(stack.db_url) as s:
        service.review_case(s, case_id, "u1", "confirm")

    picked = Classification(
        kind="goods_display",
        gbt_code="0504",
        gbt_name="店外经营",
        kind_name_zh="出店陈列",
        label="vending_stall",
        bbox_xyxy=(12.0, 30.0, 100.0, 200.0),
        seq=2,
    )
    with session_scope(stack.db_url) as s:
        service.review_case(s, case_id, "u1", "confirm", corrections=[], classification=picked)
    with session_scope(stack.db_url) as s:
        case = s.get(Case, case_id)
        assert (case.kind, case.gbt_code, case.kind_name_zh, case.unclassified) == (
            "goods_display",
            "0504",
            "出店陈列",
            False,
        )
        assert case.description == "人民路与滨河路口东北角发现出店陈列，持续6分0秒"
        (corr,) = case.corrections
        assert (corr["action"], corr["xyxy"], corr["label"], corr["seq"]) == (
            "adjust",
            [12.0, 30.0, 100.0, 200.0],
            "vending_stall",
            2,
        )
        audit = s.scalars(
            select(AuditLog).where(AuditLog.entity_id == case_id, AuditLog.action == "classify")
        ).one()
        assert (audit.detail["from_kind"], audit.detail["to_kind"], audit.actor) == (
            "exposed_garbage",
            "goods_display",
            "user:u1",
        )
    # a late event of the violation keeps the reviewer's kind
    late = dataclasses.replace(ev, event="closed", ts_s=640.0)
    service.process_spool_item(_spool(vid, late))
    _push(stack.db_url, case_id)
    body = stack.hotline.accepted[case_id]
    assert (body["event_code"], body["kind"], body["kind_name"]) == ("0504", "goods_display", "出店陈列")


def test_the_model_seeing_the_object_settles_an_unclassified_case(stack) -> None:  # noqa: ANN001
    vid = "cam-1:z1:settle"
    ev = dataclasses.replace(make_event(vid, kind="exposed_garbage"), unclassified=True)
    service.process_spool_item(_spool(vid, ev))
    seen = dataclasses.replace(ev, event="updated", ts_s=500.0, unclassified=False)
    service.process_spool_item(_spool(vid, seen))
    again = dataclasses.replace(ev, event="closed", ts_s=640.0, unclassified=True)
    service.process_spool_item(_spool(vid, again))
    with session_scope(stack.db_url) as s:
        case = s.get(Case, service.case_id_for(vid))
        assert not case.unclassified
        assert (case.gbt_name, case.kind_name_zh) == ("暴露垃圾", "暴露垃圾")  # from the built-in tables


def test_a_kind_whose_code_has_no_name_is_refused_and_its_event_kept(stack) -> None:  # noqa: ANN001
    vid = "cam-1:z1:noname"
    ev = dataclasses.replace(make_event(vid), kind="piles", gbt_code="0199", kind_name_zh="乱堆物料")
    item_id = _spool(vid, ev)
    with pytest.raises(ValueError, match="0199.*gbt_name"):
        service.process_spool_item(item_id)
    assert Handoff().spool.exists(item_id) and not Handoff().spool.is_done(item_id)
    with session_scope(stack.db_url) as s:
        assert s.get(Case, service.case_id_for(vid)) is None


def test_an_unclassified_case_waits_for_review_under_an_immediate_push_policy(
    make_stack, private_redis_url
) -> None:  # noqa: ANN001
    stack = make_stack(private_redis_url, push_policy="exposed_garbage=immediate")
    unknown = dataclasses.replace(make_event("cam-1:z1:u", kind="exposed_garbage"), unclassified=True)
    known = make_event("cam-1:z1:k", kind="exposed_garbage")
    for vid, ev in (("cam-1:z1:u", unknown), ("cam-1:z1:k", known)):
        service.process_spool_item(_spool(vid, ev))
    with session_scope(stack.db_url) as s:
        assert s.get(Case, service.case_id_for("cam-1:z1:u")).status == "pending_review"
        assert s.get(Case, service.case_id_for("cam-1:z1:k")).status == "queued"
