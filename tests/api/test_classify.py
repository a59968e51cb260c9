"""Classifying a 待分类 (unclassified) case through the API (issue 14): the reviewer's kind replaces the case's
code and name, the (adjusted) box becomes a training label the dataset builder takes, undo restores it all."""

from __future__ import annotations

from sqlalchemy import select

from datasets.builder import BuildOptions, build_dataset
from tests.api.test_kinds import cameras_file, made
from tests.kinds import GOODS_DISPLAY
from urbaneye.db.models import AuditLog, Case, Outbox


def _unclassified(db, make_case):  # noqa: ANN001, ANN202
    return made(
        db,
        make_case,
        kind="exposed_garbage",
        gbt_code="0102",
        gbt_name="暴露垃圾",
        kind_name_zh="暴露垃圾",
        unclassified=True,
        description="人民路与滨河路口东北角发现不明物体（疑似暴露垃圾，待分类），持续5分12秒",
    )


def test_a_kind_key_classifies_the_case_and_its_box_becomes_a_training_label(
    client, users, db, make_case, make_camera, use_cameras_file, tmp_path
) -> None:  # noqa: ANN001
    use_cameras_file(cameras_file(tmp_path / "cameras.yaml", GOODS_DISPLAY))
    make_camera("cam-1")
    case = _unclassified(db, make_case)
    h = users.headers("reviewer")
    url = f"/api/v1/cases/{case.id}/verify"

    pending = client.get("/api/v1/cases", params={"unclassified": True}, headers=h).json()
    assert [c["id"] for c in pending["data"]] == [case.id] and pending["data"][0]["unclassified"]
    refused = client.post(url, json={"decision": "confirm"}, headers=h)
    assert refused.status_code == 409 and "待分类" in refused.json()["detail"]
    unknown = client.post(url, json={"decision": "confirm", "kind": "mattress"}, headers=h)
    assert unknown.status_code == 422 and "未知的违规类型" in unknown.json()["detail"]
    wrong = client.post(
        url, json={"decision": "confirm", "kind": "goods_display", "object_label": "garbage"}, headers=h
    )
    assert wrong.status_code == 422 and "不属于" in wrong.json()["detail"]
    outside = client.post(
        url,
        json={"decision": "confirm", "kind": "goods_display", "object_box": [10, 10, 900, 200]},
        headers=h,
    )
    assert outside.status_code == 422 and "超出画面" in outside.json()["detail"]
    assert client.post(url, json={"decision": "reject", "reason": "duplicate", "kind": "goods_display"}, headers=h).status_code == 422  # fmt: skip

    ok = client.post(
        url,
        json={
            "decision": "confirm",
            "kind": "goods_display",
            "object_box": [180, 110, 290, 200],
            "object_seq": 2,
        },
        headers=h,
    )
    assert ok.status_code == 200, ok.text
    db.expire_all()
    row = db.get(Case, case.id)
    assert (row.kind, row.gbt_code, row.gbt_name, row.kind_name_zh, row.unclassified, row.status) == (
        "goods_display",
        "0504",
        "店外经营",
        "出店陈列",
        False,
        "queued",
    )
    assert row.description == "人民路与滨河路口东北角（人民路北口）发现出店陈列，持续5分12秒"
    payload = db.scalars(select(Outbox.payload).where(Outbox.case_id == case.id)).one()
    assert (payload["event_code"], payload["kind"], payload["kind_name"]) == (
        "0504",
        "goods_display",
        "出店陈列",
    )
    actions = db.scalars(
        select(AuditLog.action)
        .where(AuditLog.entity == "case", AuditLog.entity_id == case.id)
        .order_by(AuditLog.id)
    ).all()
    assert actions[-3:] == ["classify", "transition", "transition"]

    result = build_dataset(db, options=BuildOptions(synth_share=0))
    items = {it["evidence_seq"]: it for it in result.manifest["items"] if it["case_id"] == case.id}
    assert sorted(items) == [1, 2]  # the case's clean frames
    item = items[2]
    assert item["kind"] == "goods_display"
    assert [(lb["label"], lb["xyxy"], lb["source"]) for lb in item["labels"]] == [
        ("vending_stall", [180.0, 110.0, 290.0, 200.0], "correction")
    ]


def test_undo_gives_back_the_unclassified_case(
    client, users, db, make_case, use_cameras_file, tmp_path
) -> None:  # noqa: ANN001
    use_cameras_file(cameras_file(tmp_path / "cameras.yaml", GOODS_DISPLAY))
    case = _unclassified(db, make_case)
    h = users.headers("reviewer")
    res = client.post(
        f"/api/v1/cases/{case.id}/verify", json={"decision": "confirm", "kind": "street_vending"}, headers=h
    )
    assert res.status_code == 200 and res.json()["kind_name_zh"] == "占道经营"
    back = client.post(f"/api/v1/cases/{case.id}/undo", headers=h).json()
    assert (back["kind"], back["gbt_code"], back["kind_name_zh"], back["unclassified"], back["status"]) == (
        "exposed_garbage",
        "0102",
        "暴露垃圾",
        True,
        "pending_review",
    )
    db.expire_all()
    assert db.get(Case, case.id).corrections == []
    assert db.scalars(select(AuditLog.action).where(AuditLog.entity == "case", AuditLog.entity_id == case.id).order_by(AuditLog.id.desc())).first() == "unclassify"  # fmt: skip
    # the case's own box with the kind's first class when no box is drawn; a reject needs no kind
    client.post(
        f"/api/v1/cases/{case.id}/verify", json={"decision": "confirm", "kind": "bike_misparking"}, headers=h
    )
    db.expire_all()
    (corr,) = db.get(Case, case.id).corrections
    assert (corr["label"], corr["xyxy"]) == ("bicycle", [192.0, 121.0, 278.0, 189.0])
    other = _unclassified(db, make_case)
    rejected = client.post(
        f"/api/v1/cases/{other.id}/verify",
        json={"decision": "reject", "reason": "false_detection"},
        headers=h,
    )
    assert rejected.json()["status"] == "rejected"


def test_bulk_takes_a_kind_but_not_one_box_for_many(client, users, db, make_case) -> None:  # noqa: ANN001
    a, b = _unclassified(db, make_case), _unclassified(db, make_case)
    h = users.headers("reviewer")
    boxed = client.post(
        "/api/v1/cases/verify-bulk",
        json={
            "decision": "confirm",
            "kind": "exposed_garbage",
            "object_box": [1, 1, 9, 9],
            "case_ids": [a.id],
        },
        headers=h,
    )
    assert boxed.status_code == 422
    res = client.post(
        "/api/v1/cases/verify-bulk",
        json={"decision": "confirm", "kind": "exposed_garbage", "case_ids": [a.id, b.id]},
        headers=h,
    ).json()
    assert res["succeeded"] == 2
    listed = client.get("/api/v1/cases", params={"kind": "exposed_garbage", "unclassified": False}, headers=h)
    assert sorted(c["id"] for c in listed.json()["data"]) == sorted([a.id, b.id])
