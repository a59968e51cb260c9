"""False-alarm memory through the API: a 误检 / 固定设施 rejection remembers the object; the camera page
lists it; an admin deletes it; undoing the rejection forgets it."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from urbaneye.db.models import AuditLog, FalseAlarmMemory
from vision.memory import DESCRIPTOR_LEN


def reject(client, users, case_id: str, reason: str, role: str = "reviewer"):  # noqa: ANN001, ANN201
    body = {"decision": "reject", "reason": reason}
    return client.post(f"/api/v1/cases/{case_id}/verify", json=body, headers=users.headers(role))


def memory(client, users, camera_id: str = "cam-1", role: str = "viewer") -> dict:  # noqa: ANN001
    r = client.get(f"/api/v1/cameras/{camera_id}/memory", headers=users.headers(role))
    assert r.status_code == 200, r.text
    return r.json()


@pytest.mark.parametrize("reason", ["false_detection", "fixed_object"])
def test_a_false_detection_or_fixed_object_rejection_is_remembered_with_its_reviewer(
    client,
    users,
    make_camera,
    make_case,
    db,
    reason,  # noqa: ANN001
) -> None:
    make_camera("cam-1")
    case = make_case(kind="exposed_garbage")
    assert reject(client, users, case.id, reason).status_code == 200
    (entry,) = memory(client, users)["data"]
    assert entry["case_id"] == case.id and entry["reason"] == reason and entry["kind"] == "exposed_garbage"
    assert entry["reviewer"] == "reviewer1" and entry["state"] == "active" and entry["suppressed_count"] == 0
    assert entry["bbox_xyxy"] == [192.0, 121.0, 278.0, 189.0] and entry["frame_wh"] == [480, 270]
    assert entry["crop_url"] and entry["last_suppressed_at"] is None
    created = dt.datetime.fromisoformat(entry["created_at"])
    assert (
        dt.timedelta(days=29.9)
        < dt.datetime.fromisoformat(entry["expires_at"]) - created
        < dt.timedelta(days=30.1)
    )
    row = db.scalar(select(FalseAlarmMemory).where(FalseAlarmMemory.case_id == case.id))
    assert len(row.descriptor) == DESCRIPTOR_LEN
    assert client.get(entry["crop_url"]).status_code == 200  # the crop shown on the camera page
    assert db.scalar(select(AuditLog).where(AuditLog.entity == "memory", AuditLog.entity_id == row.id))


def test_other_reasons_are_not_remembered_and_undo_forgets(client, users, make_camera, make_case) -> None:  # noqa: ANN001
    make_camera("cam-1")
    dup = make_case(kind="exposed_garbage")
    assert reject(client, users, dup.id, "duplicate").status_code == 200
    assert memory(client, users)["count"] == 0
    case = make_case(kind="exposed_garbage")
    assert reject(client, users, case.id, "false_detection").status_code == 200
    assert memory(client, users)["count"] == 1
    r = client.post(f"/api/v1/cases/{case.id}/undo", headers=users.headers("reviewer"))
    assert r.status_code == 200, r.text
    assert memory(client, users)["count"] == 0


def test_a_rejection_without_uploaded_evidence_still_rejects(client, users, make_camera, make_case) -> None:  # noqa: ANN001
    make_camera("cam-1")
    case = make_case(kind="exposed_garbage", evidence=False)
    r = reject(client, users, case.id, "fixed_object")
    assert r.status_code == 200 and r.json()["status"] == "rejected"
    assert memory(client, users)["count"] == 0


def test_only_an_admin_deletes_an_entry(client, users, make_camera, make_case) -> None:  # noqa: ANN001
    make_camera("cam-1")
    case = make_case(kind="exposed_garbage")
    reject(client, users, case.id, "false_detection")
    (entry,) = memory(client, users)["data"]
    url = f"/api/v1/cameras/cam-1/memory/{entry['id']}"
    assert client.delete(url, headers=users.headers("reviewer")).status_code == 403
    r = client.delete("/api/v1/cameras/cam-2/memory/" + entry["id"], headers=users.headers("admin"))
    assert r.status_code == 404 and "GET /api/v1/cameras/cam-2/memory" in r.json()["detail"]
    assert client.delete(url, headers=users.headers("admin")).status_code == 200
    assert memory(client, users)["count"] == 0
    assert client.get("/api/v1/cameras/nope/memory", headers=users.headers("viewer")).status_code == 404


def test_a_configured_kind_rejection_is_remembered(client, users, make_camera, make_case) -> None:  # noqa: ANN001
    make_camera("cam-1")
    case = make_case(kind="goods_display", kind_name_zh="出店陈列")
    assert reject(client, users, case.id, "false_detection").status_code == 200
    (entry,) = memory(client, users)["data"]
    assert entry["case_id"] == case.id and entry["kind"] == "goods_display" and entry["state"] == "active"
