"""Models API: a version whose gate failed is promoted only by an admin with ``force`` (audited); a model's
reviewer report (real-world precision per kind and camera)."""

from __future__ import annotations

from sqlalchemy import select


def _register(db, api_settings, tmp_path, version: str, gate=None):  # noqa: ANN001, ANN202
    from urbaneye import registry

    onnx = tmp_path / f"{version}.onnx"
    onnx.write_bytes(f"onnx bytes of {version}".encode())
    mv = registry.register(db, onnx_path=onnx, version=version, gate=gate or {}, settings=api_settings)
    db.commit()
    return mv


def test_failed_gate_needs_admin_force_and_is_audited(client, users, db, api_settings, tmp_path) -> None:  # noqa: ANN001
    from models.gate import GateDecision
    from urbaneye.db.models import AuditLog

    _register(db, api_settings, tmp_path, "a")
    failed = GateDecision(promote=False, reason="kept as candidate: regression garbage -2.4 pt").to_json()
    _register(db, api_settings, tmp_path, "weak", gate=failed)
    admin = users.headers("admin")
    assert client.post("/api/v1/models/a/promote", json={}, headers=admin).status_code == 200

    r = client.post("/api/v1/models/weak/promote", json={}, headers=admin)
    assert r.status_code == 409 and "failed its promotion gate" in r.json()["detail"]
    assert "force" in r.json()["detail"]
    r = client.post("/api/v1/models/weak/promote", json={"force": True}, headers=users.headers("reviewer"))
    assert r.status_code == 403
    r = client.post("/api/v1/models/weak/promote", json={"force": True}, headers=admin)
    assert r.status_code == 200 and r.json()["version"] == "weak"

    got = client.get("/api/v1/models/weak", headers=admin).json()
    assert got["status"] == "active" and got["gate"]["promoted"]["forced"] is True
    db.expire_all()
    row = db.scalars(select(AuditLog).where(AuditLog.action == "promote", AuditLog.entity_id == "weak")).one()
    assert row.actor == "user:admin1" and row.detail["forced"] is True
    assert row.detail["gate_reason"] == "kept as candidate: regression garbage -2.4 pt"


def test_model_report(client, users, db, api_settings, tmp_path, store) -> None:  # noqa: ANN001
    from tests.retrain.conftest import add_case

    _register(db, api_settings, tmp_path, "city-v1")
    for i, (status, reason) in enumerate(
        [("confirmed", None), ("rejected", "false_detection"), ("queued", None), ("pending_review", None)]
    ):
        case = add_case(db, store, kind="bike_misparking", status=status, reject_reason=reason, seed=i)
        case.model_version = "city-v1"
    db.commit()
    r = client.get("/api/v1/models/city-v1/report", headers=users.headers("viewer"))
    assert r.status_code == 200
    body = r.json()
    assert body["counted_as"] == ["city-v1"]
    assert body["kinds"]["bike_misparking"] == {
        "cases": 4,
        "pending": 1,
        "confirmed": 2,
        "rejected": 1,
        "reasons": {"false_detection": 1},
        "precision": round(2 / 3, 4),
    }
    assert body["cameras"]["cam-1"]["total"]["cases"] == 4
    assert client.get("/api/v1/models/nope/report", headers=users.headers("viewer")).status_code == 404
