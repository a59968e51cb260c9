"""Models routes over the real registry (``urbaneye/registry.py``): registered artefacts, gate decisions,
promotion, rollback that never returns to a rolled-back model, shadows."""

from __future__ import annotations

from sqlalchemy import select

from vision.digest import sha256_file


def _register(db, api_settings, tmp_path, version: str, parent: str | None = None, gate=None):  # noqa: ANN001, ANN202
    from urbaneye import registry

    onnx = tmp_path / f"{version}.onnx"
    onnx.write_bytes(f"onnx bytes of {version}".encode())
    mv = registry.register(
        db,
        onnx_path=onnx,
        version=version,
        parent=parent,
        classes=["person", "garbage"],
        metrics={"val": {"map50": 0.5}},
        gate=gate or {},
        settings=api_settings,
    )
    db.commit()
    return mv


def test_registry_versions_promote_and_rollback(client, users, db, api_settings, tmp_path) -> None:  # noqa: ANN001
    from urbaneye.db.models import AuditLog

    _register(db, api_settings, tmp_path, "a")
    kept = {"decision": "keep", "reason": "kept as candidate: val mAP50 0.400 <= active 0.500"}
    _register(db, api_settings, tmp_path, "b", parent="a", gate=kept)
    admin = users.headers("admin")

    got = client.get("/api/v1/models/b", headers=users.headers("viewer")).json()
    assert got["status"] == "candidate" and got["parent"] == "a" and got["gate"]["decision"] == "keep"
    assert got["sha256"] == sha256_file(tmp_path / "b.onnx")
    assert got["onnx_uri"].endswith("b/model.onnx"), "register copied the artefact into the registry"

    assert client.post("/api/v1/models/a/promote", json={}, headers=admin).json()["version"] == "a"
    r = client.post("/api/v1/models/a/promote", json={}, headers=admin)
    assert r.status_code == 409 and "already active" in r.json()["detail"]
    r = client.post("/api/v1/models/b/promote", json={"camera_group": "default"}, headers=admin)
    assert r.status_code == 200 and r.json()["version"] == "b"
    got = client.get("/api/v1/models/b", headers=admin).json()
    assert got["status"] == "active" and got["gate"]["promoted"]["by"] == "user:admin1"
    assert got["gate"]["promoted"]["replaced"] == "a" and got["promoted_at"]
    assert client.get("/api/v1/models/a", headers=admin).json()["status"] == "retired"

    r = client.post("/api/v1/models/active/default/rollback", headers=admin)
    assert r.status_code == 200 and r.json()["version"] == "a"
    # nothing was active before "a": refuse rather than bounce back to the rolled-back "b"
    r = client.post("/api/v1/models/active/default/rollback", headers=admin)
    assert r.status_code == 409 and "no earlier model" in r.json()["detail"]

    _register(db, api_settings, tmp_path, "c", parent="a")
    assert client.post("/api/v1/models/c/promote", json={}, headers=admin).status_code == 200
    r = client.post("/api/v1/models/active/default/rollback", headers=admin)
    assert r.json()["version"] == "a", "rollback skips 'b', which was rolled back before"
    statuses = {m["version"]: m["status"] for m in client.get("/api/v1/models", headers=admin).json()["data"]}
    assert statuses == {"a": "active", "b": "retired", "c": "retired"}

    assert client.post("/api/v1/models/zzz/promote", json={}, headers=admin).status_code == 404
    assert client.post("/api/v1/models/active/nogroup/rollback", headers=admin).status_code == 404
    db.expire_all()
    rows = db.execute(
        select(AuditLog.actor, AuditLog.action, AuditLog.entity_id)
        .where(AuditLog.entity == "model", AuditLog.action != "register")
        .order_by(AuditLog.id)
    ).all()
    assert [tuple(r) for r in rows] == [
        ("user:admin1", "promote", "a"),
        ("user:admin1", "promote", "b"),
        ("user:admin1", "rollback", "b"),
        ("user:admin1", "promote", "c"),
        ("user:admin1", "rollback", "c"),
    ]


def test_shadow_shows_in_active_models(client, users, db, api_settings, tmp_path) -> None:  # noqa: ANN001
    from urbaneye import registry

    _register(db, api_settings, tmp_path, "a")
    _register(db, api_settings, tmp_path, "s", parent="a")
    registry.promote(db, "a", "default")
    registry.set_shadow(db, "default", "s", ["cam-2", "cam-1"])
    db.commit()
    active = client.get("/api/v1/models/active", headers=users.headers("service")).json()
    assert active["count"] == 1
    row = active["data"][0]
    assert (row["version"], row["shadow_version"], row["shadow_cameras"]) == ("a", "s", ["cam-1", "cam-2"])
    shadows = client.get("/api/v1/models", params={"status": "shadow"}, headers=users.headers("viewer"))
    assert [m["version"] for m in shadows.json()["data"]] == ["s"]
    # promoting the shadow version ends the shadow
    client.post("/api/v1/models/s/promote", json={}, headers=users.headers("admin"))
    row = client.get("/api/v1/models/active", headers=users.headers("viewer")).json()["data"][0]
    assert (row["version"], row["shadow_version"], row["shadow_cameras"]) == ("s", None, [])
