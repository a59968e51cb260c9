from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from sqlalchemy import select


def ids(resp) -> list[str]:  # noqa: ANN001
    return [c["id"] for c in resp.json()["data"]]


def test_queue_orders_oldest_or_escalation_and_paginates(client, users, make_case) -> None:  # noqa: ANN001
    t0 = dt.datetime(2024, 5, 1, tzinfo=dt.UTC)
    blue_old = make_case(escalation="blue", created_at=t0, evidence=False)
    red_new = make_case(escalation="red", created_at=t0 + dt.timedelta(hours=3), evidence=False)
    yellow = make_case(escalation="yellow", created_at=t0 + dt.timedelta(hours=2), evidence=False)
    red_old = make_case(escalation="red", created_at=t0 + dt.timedelta(hours=1), evidence=False)
    make_case(status="confirmed", created_at=t0 - dt.timedelta(hours=1), evidence=False)
    h = users.headers("viewer")
    r = client.get("/api/v1/cases", params={"status": "pending_review"}, headers=h)
    assert r.json()["count"] == 4
    assert ids(r) == [blue_old.id, red_old.id, yellow.id, red_new.id]
    r = client.get("/api/v1/cases", params={"status": "pending_review", "order": "escalation"}, headers=h)
    assert ids(r) == [red_old.id, red_new.id, yellow.id, blue_old.id]
    pages = [
        ids(
            client.get(
                "/api/v1/cases",
                params={"status": "pending_review", "order": "escalation", "offset": o, "limit": 1},
                headers=h,
            )
        )
        for o in range(5)
    ]
    assert pages == [[red_old.id], [red_new.id], [yellow.id], [blue_old.id], []]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"kind": "exposed_garbage"}, ["garbage"]),
        ({"camera_id": "cam-2"}, ["cam2"]),
        ({"zone_id": "z-other"}, ["cam2"]),
        ({"escalation": ["yellow", "red"]}, ["garbage"]),
        ({"min_confidence": 0.9}, ["sure"]),
        ({"max_confidence": 0.5}, ["unsure"]),
        ({"since": "2024-06-01T00:00:00Z"}, ["june"]),
        (
            {"until": "2024-05-02T00:00:00+00:00", "status": "pending_review"},
            ["garbage", "sure", "unsure", "cam2"],
        ),
        ({"status": ["rejected"]}, []),
    ],
)
def test_list_filters(client, users, make_case, params, expected) -> None:  # noqa: ANN001
    made = {
        "garbage": make_case(kind="exposed_garbage", escalation="yellow", evidence=False),
        "sure": make_case(confidence=0.95, evidence=False),
        "unsure": make_case(confidence=0.4, evidence=False),
        "cam2": make_case(camera_id="cam-2", zone_id="z-other", evidence=False),
        "june": make_case(created_at=dt.datetime(2024, 6, 2, tzinfo=dt.UTC), evidence=False),
    }
    r = client.get("/api/v1/cases", params=params, headers=users.headers("viewer"))
    assert r.status_code == 200, r.text
    assert sorted(ids(r)) == sorted(made[k].id for k in expected)
    assert r.json()["count"] == len(expected)


def test_detail_has_presigned_evidence_with_hashes(
    client, users, make_case, make_camera, api_settings
) -> None:  # noqa: ANN001
    make_camera()
    earlier = make_case()
    case = make_case()
    r = client.get(f"/api/v1/cases/{case.id}", headers=users.headers("viewer"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["camera_name"] == "人民路 cam-1" and body["zone_name"] == "人民路北口"
    assert len(body["zone_polygon"]) == 4 and body["place_earlier_count"] == 1
    assert {(e["seq"], e["variant"]) for e in body["evidence"]} == {
        (s, v) for s in (1, 2) for v in ("clean", "annotated", "crop")
    }
    for ev in body["evidence"]:
        assert 0 < ev["url_expires_s"] <= 900
        img = client.get(ev["url"])  # no token: the signature is the authorisation
        assert img.status_code == 200 and img.headers["content-type"] == "image/jpeg"
        assert hashlib.sha256(img.content).hexdigest() == ev["sha256"]
    tampered = body["evidence"][0]["url"].replace("signature=", "signature=0")[:-1]
    assert client.get(tampered).status_code == 403
    similar = client.get(f"/api/v1/cases/{case.id}/similar", headers=users.headers("viewer")).json()
    assert [c["id"] for c in similar["data"]] == [earlier.id]


def test_confirm_reject_undo_are_audited_with_user(client, users, make_case, db) -> None:  # noqa: ANN001
    from urbaneye.audit_verify import verify_chain
    from urbaneye.db.models import AuditLog, Case, Outbox, Review

    a, b = make_case(), make_case()
    h = users.headers("reviewer")
    reviewer = users.by_role["reviewer"]
    r = client.post(
        f"/api/v1/cases/{a.id}/verify", json={"decision": "confirm", "duration_ms": 2300}, headers=h
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "queued" and r.json()["reviewed_by"] == reviewer.id
    correction = {"action": "relabel", "bbox_xyxy": [10, 20, 60, 90], "label": "garbage", "seq": 2}
    r = client.post(
        f"/api/v1/cases/{b.id}/verify",
        json={
            "decision": "reject",
            "reason": "false_detection",
            "note": "是垃圾桶",
            "corrections": [correction],
        },
        headers=h,
    )
    assert r.status_code == 200 and r.json()["reject_reason"] == "false_detection"
    # a second decision on the same case conflicts
    again = client.post(f"/api/v1/cases/{b.id}/verify", json={"decision": "confirm"}, headers=h)
    assert again.status_code == 409 and again.headers["X-Error-Code"] == "case_decided"
    assert "已驳回" in again.json()["detail"]
    r = client.post(f"/api/v1/cases/{a.id}/undo", headers=h)
    assert r.status_code == 200 and r.json()["status"] == "pending_review"
    db.expire_all()
    assert db.get(Case, b.id).corrections == [correction]
    assert db.scalars(select(Outbox.status).where(Outbox.case_id == a.id)).all() == ["cancelled"]
    reviews = db.scalars(select(Review).order_by(Review.id)).all()
    assert [(rv.case_id, rv.decision, rv.user_id) for rv in reviews] == [
        (a.id, "confirm", reviewer.id),
        (b.id, "reject", reviewer.id),
        (a.id, "undo", reviewer.id),
    ]
    assert reviews[0].duration_ms == 2300
    trail = db.scalars(
        select(AuditLog).where(AuditLog.entity == "case", AuditLog.entity_id == a.id).order_by(AuditLog.id)
    ).all()
    assert [(t.from_status, t.to_status) for t in trail] == [
        ("pending_review", "confirmed"),
        ("confirmed", "queued"),
        ("queued", "pending_review"),
    ]
    assert all(reviewer.id in t.actor for t in trail)
    assert verify_chain(db)[1] == []
    tl = client.get(f"/api/v1/cases/{a.id}/timeline", headers=users.headers("viewer")).json()
    assert [e["to_status"] for e in tl["data"]] == ["confirmed", "queued", "pending_review"]
    assert [rv["username"] for rv in tl["reviews"]] == ["reviewer1", "reviewer1"]


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"decision": "reject"}, "needs a reason"),
        ({"decision": "reject", "reason": "other"}, "needs a note"),
        ({"decision": "confirm", "reason": "duplicate"}, "takes no reason"),
        (
            {
                "decision": "reject",
                "reason": "duplicate",
                "corrections": [{"action": "add", "bbox_xyxy": [5, 5, 1, 1], "label": "grill"}],
            },
            "x1 < x2",
        ),
    ],
)
def test_verify_validation(client, users, make_case, body, needle) -> None:  # noqa: ANN001
    case = make_case(evidence=False)
    r = client.post(f"/api/v1/cases/{case.id}/verify", json=body, headers=users.headers("reviewer"))
    assert r.status_code == 422 and needle in r.text


def test_bulk_verify_reports_each_case(client, users, make_case) -> None:  # noqa: ANN001
    a, b = make_case(evidence=False), make_case(evidence=False, status="rejected")
    r = client.post(
        "/api/v1/cases/verify-bulk",
        json={"case_ids": [a.id, b.id, "nope"], "decision": "reject", "reason": "duplicate"},
        headers=users.headers("reviewer"),
    )
    assert r.status_code == 200, r.text
    out = {item["case_id"]: item for item in r.json()["data"]}
    assert out[a.id]["ok"] and out[a.id]["status"] == "rejected"
    assert not out[b.id]["ok"] and "已驳回" in out[b.id]["error"]
    assert not out["nope"]["ok"] and r.json()["succeeded"] == 1


def test_resend_only_dead_letter(client, users, make_case) -> None:  # noqa: ANN001
    dead, pending = make_case(status="dead_letter", evidence=False), make_case(evidence=False)
    h = users.headers("reviewer")
    r = client.post(f"/api/v1/cases/{dead.id}/resend", headers=h)
    assert r.status_code == 200 and r.json()["status"] == "queued"
    assert client.post(f"/api/v1/cases/{pending.id}/resend", headers=h).status_code == 409
    assert client.post("/api/v1/cases/missing/resend", headers=h).status_code == 404


def test_viewer_cannot_decide(client, users, make_case) -> None:  # noqa: ANN001
    case = make_case(evidence=False)
    r = client.post(
        f"/api/v1/cases/{case.id}/verify", json={"decision": "confirm"}, headers=users.headers("viewer")
    )
    assert r.status_code == 403 and "viewer" in r.json()["detail"]


def test_hotline_callback_is_signed_and_moves_the_case(client, make_case, db, api_settings) -> None:  # noqa: ANN001
    import json

    from urbaneye.db.models import Case
    from urbaneye.hotline.signing import signed_headers

    case = make_case(status="queued", evidence=False)
    body = json.dumps({"case_id": case.id, "status": "accepted", "ref": "HL-2024-0001"}).encode()
    r = client.post("/api/v1/hotline/callback", content=body, headers=signed_headers("wrong-secret", body))
    assert r.status_code == 401 and "does not match" in r.json()["detail"]
    r = client.post(
        "/api/v1/hotline/callback", content=body, headers=signed_headers(api_settings.hotline_secret, body)
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"case_id": case.id, "status": "accepted"}
    db.expire_all()
    assert db.get(Case, case.id).hotline_ref == "HL-2024-0001"
    bad = b'{"case_id": "x"}'
    r = client.post(
        "/api/v1/hotline/callback", content=bad, headers=signed_headers(api_settings.hotline_secret, bad)
    )
    assert r.status_code == 400 and "case_id and status" in r.json()["detail"]
