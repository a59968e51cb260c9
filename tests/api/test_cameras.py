from __future__ import annotations

import logging

import cv2
import numpy as np

from tests.api.conftest import scene_jpeg

CAMERA = {
    "id": "cam-9",
    "name": "滨河路 9 号",
    "source": {"url": "rtsp://10.1.2.3:554/ch1", "username": "viewer", "password": "hunter2-secret"},
    "location": {"address": "滨河路 9 号门前", "lon": 120.1, "lat": 30.2},
    "zones": [
        {"id": "front", "kind": "no_vending", "polygon": [[0.1, 0.6], [0.9, 0.6], [0.9, 0.95], [0.1, 0.95]]}
    ],
}


def test_create_camera_never_returns_credentials(client, users, db, caplog) -> None:  # noqa: ANN001
    from urbaneye.db.models import AuditLog, Camera

    caplog.set_level(logging.INFO)
    r = client.post("/api/v1/cameras", json=CAMERA, headers=users.headers("admin"))
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["source"] == {
        "url": "rtsp://10.1.2.3:554/ch1",
        "has_credentials": True,
        "loop": False,
        "rtsp_transport": "tcp",
    }
    assert [z["id"] for z in body["zones"]] == ["front"]
    assert body["status"]["state"] == "offline"
    for r2 in (
        client.get("/api/v1/cameras", headers=users.headers("viewer")),
        client.get("/api/v1/cameras/cam-9", headers=users.headers("service")),
    ):
        assert r2.status_code == 200
        assert "hunter2" not in r2.text
    # stored for the workers
    db.expire_all()
    assert db.get(Camera, "cam-9").config["source"]["password"] == "hunter2-secret"
    assert "hunter2" not in caplog.text
    audit = db.query(AuditLog).filter_by(entity="camera", entity_id="cam-9").one()
    assert audit.actor == "user:admin1" and "hunter2" not in str(audit.detail)


def test_update_keeps_write_only_credentials_and_masks_url_userinfo(client, users, db) -> None:  # noqa: ANN001
    from urbaneye.db.models import Camera

    client.post("/api/v1/cameras", json=CAMERA, headers=users.headers("admin"))
    update = {**CAMERA, "name": "改名", "source": {"url": "rtsp://u:p4ss@10.1.2.3/ch2"}, "zones": []}
    r = client.put("/api/v1/cameras/cam-9", json=update, headers=users.headers("admin"))
    assert r.status_code == 200, r.text
    assert r.json()["source"]["url"] == "rtsp://***@10.1.2.3/ch2"
    assert r.json()["zones"][0]["id"] == "front"  # empty zones list leaves zones alone
    db.expire_all()
    src = db.get(Camera, "cam-9").config["source"]
    assert src["password"] == "hunter2-secret" and src["url"] == "rtsp://u:p4ss@10.1.2.3/ch2"
    r = client.put("/api/v1/cameras/other", json=update, headers=users.headers("admin"))
    assert r.status_code == 422 and "differs from the path" in r.text


def test_log_filter_masks_credentials(caplog) -> None:  # noqa: ANN001
    from api.app import install_log_masking

    install_log_masking()
    caplog.set_level(logging.INFO)
    logging.getLogger("streams.source").info("opening %s", "rtsp://admin:topsecret@10.0.0.9/live")
    assert "topsecret" not in caplog.text and "rtsp://***@10.0.0.9/live" in caplog.text


def test_zone_validation_names_zone_and_fix(client, users, make_camera) -> None:  # noqa: ANN001
    make_camera()
    bowtie = {
        "id": "gate-3",
        "kind": "no_vending",
        "polygon": [[0.1, 0.1], [0.9, 0.8], [0.9, 0.1], [0.3, 0.9]],
    }
    r = client.put("/api/v1/cameras/cam-1/zones/gate-3", json=bowtie, headers=users.headers("admin"))
    assert r.status_code == 422
    msg = r.json()["detail"][0]["msg"]
    assert "zone 'gate-3'" in msg and "self-intersects" in msg and "list points in order" in msg
    outside = {**bowtie, "polygon": [[0.1, 0.1], [1.4, 0.1], [0.5, 0.8]]}
    r = client.put("/api/v1/cameras/cam-1/zones/gate-3", json=outside, headers=users.headers("admin"))
    assert r.status_code == 422 and "normalised" in r.text


def test_put_zone_creates_then_replaces(client, users, make_camera, db) -> None:  # noqa: ANN001
    make_camera()
    zone = {
        "id": "night",
        "kind": "allowed_vending",
        "road_class": "lane",
        "polygon": [[0.2, 0.2], [0.5, 0.2], [0.5, 0.5]],
        "schedule": {"days": ["fri", "sat"], "windows": ["18:00-02:00"]},
    }
    h = users.headers("admin")
    assert client.put("/api/v1/cameras/cam-1/zones/night", json=zone, headers=h).status_code == 200
    zone["road_class"] = "main"
    assert client.put("/api/v1/cameras/cam-1/zones/night", json=zone, headers=h).status_code == 200
    zones = client.get("/api/v1/cameras/cam-1/zones", headers=users.headers("viewer")).json()
    assert zones["count"] == 2
    night = next(z for z in zones["data"] if z["id"] == "night")
    assert night["road_class"] == "main" and night["schedule"]["windows"] == ["18:00-02:00"]
    assert client.delete("/api/v1/cameras/cam-1/zones/night", headers=h).status_code == 204
    assert client.delete("/api/v1/cameras/cam-1/zones/night", headers=h).status_code == 404


def test_status_and_snapshot_with_zones(client, users, make_camera, db, store) -> None:  # noqa: ANN001
    from urbaneye.db.models import CameraStatus

    make_camera()
    assert client.get("/api/v1/cameras/cam-1/snapshot", headers=users.headers("viewer")).status_code == 404
    store.put("snapshots/cam-1.jpg", scene_jpeg("snap"))
    db.add(
        CameraStatus(
            camera_id="cam-1",
            worker_id="w1",
            state="online",
            input_fps=25.0,
            detect_fps=5.0,
            snapshot_key="snapshots/cam-1.jpg",
        )
    )
    db.commit()
    st = client.get("/api/v1/cameras/cam-1/status", headers=users.headers("viewer")).json()
    assert st["state"] == "online" and st["has_snapshot"] is True and st["detect_fps"] == 5.0
    clean = client.get("/api/v1/cameras/cam-1/snapshot?zones=false", headers=users.headers("viewer"))
    drawn = client.get("/api/v1/cameras/cam-1/snapshot", headers=users.headers("viewer"))
    assert clean.headers["content-type"] == drawn.headers["content-type"] == "image/jpeg"
    a = cv2.imdecode(np.frombuffer(clean.content, np.uint8), cv2.IMREAD_COLOR).astype(int)
    b = cv2.imdecode(np.frombuffer(drawn.content, np.uint8), cv2.IMREAD_COLOR).astype(int)
    diff = np.abs(a - b).sum(axis=2) > 30
    h, w = diff.shape
    # the no-vending zone covers the lower band (y 0.5..0.95): drawing changed pixels there, not at the top
    assert diff[int(h * 0.55) : int(h * 0.9), int(w * 0.15) : int(w * 0.85)].mean() > 0.3
    assert diff[: int(h * 0.3)].mean() < 0.02


def test_delete_camera(client, users, make_camera) -> None:  # noqa: ANN001
    make_camera()
    assert client.delete("/api/v1/cameras/cam-1", headers=users.headers("reviewer")).status_code == 403
    assert client.delete("/api/v1/cameras/cam-1", headers=users.headers("admin")).status_code == 204
    assert client.get("/api/v1/cameras/cam-1", headers=users.headers("admin")).status_code == 404


def test_invalid_zone_row_is_skipped_not_fatal(client, users, db, caplog) -> None:  # noqa: ANN001
    from urbaneye.db.models import Zone

    client.post("/api/v1/cameras", json=CAMERA, headers=users.headers("admin"))
    # a row written around the API (raw SQL, an old release) with a polygon that self-intersects
    db.add(
        Zone(
            camera_id="cam-9",
            zone_id="bad",
            config={"id": "bad", "kind": "no_vending", "polygon": [[0, 0], [1, 1], [1, 0], [0, 1]]},
        )
    )
    db.commit()
    caplog.set_level(logging.ERROR)
    r = client.get("/api/v1/cameras/cam-9", headers=users.headers("viewer"))
    assert r.status_code == 200, r.text
    assert [z["id"] for z in r.json()["zones"]] == ["front"]
    assert "zone 'bad'" in caplog.text
