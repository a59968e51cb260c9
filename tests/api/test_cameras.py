from __future__ import annotations

import logging

import cv2
import numpy as np
import yaml

from streams.run import load_cameras_lenient
from streams.status import CameraHealth, write_statuses
from tests.api.conftest import scene_jpeg
from urbaneye.cameras_repo import INVALID_IN_FILE
from urbaneye.db.models import Camera

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


BOW_TIE = [[0.1, 0.1], [0.9, 0.9], [0.9, 0.1], [0.1, 0.9]]


def test_a_new_invalid_camera_of_the_cameras_file_is_listed_with_its_error(
    client,
    users,
    app,
    db,
    tmp_path,  # noqa: ANN001
) -> None:
    """The worker sets an invalid camera of the file aside and reports it only in camera_status (no
    cameras row): the list shows it under 'invalid' with the error; other status-only rows stay hidden."""
    client.post("/api/v1/cameras", json=CAMERA, headers=users.headers("admin"))
    path = tmp_path / "cameras.yaml"
    bad = {**CAMERA, "id": "cam-new", "zones": [{**CAMERA["zones"][0], "id": "tie", "polygon": BOW_TIE}]}
    path.write_text(yaml.safe_dump({"cameras": [bad]}, allow_unicode=True))
    _, invalid = load_cameras_lenient(path)
    assert [c.camera_id for c in invalid] == ["cam-new"]
    healths = []
    for camera_id, reason in (("cam-new", f"{INVALID_IN_FILE}: {invalid[0].error}"), ("cam-gone", "")):
        health = CameraHealth(camera_id, 1.0, worker_id="w1")  # as streams.run reports it
        health.stopped(reason)
        healths.append(health)
    write_statuses(app.state.sessionmaker, [h.snapshot() for h in healths])

    r = client.get("/api/v1/cameras", headers=users.headers("viewer"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert [c["id"] for c in body["data"]] == ["cam-9"] and body["count"] == 1
    assert [c["id"] for c in body["invalid"]] == ["cam-new"]
    entry = body["invalid"][0]
    assert entry["error"].startswith(INVALID_IN_FILE) and "self-intersects" in entry["error"]
    assert entry["status"]["state"] == "offline" and entry["status"]["worker_id"] == "w1"
    assert entry["origin"] == "file"


def test_a_camera_row_that_no_longer_validates_is_listed_invalid_and_fixed_by_put(
    client,
    users,
    db,  # noqa: ANN001
) -> None:
    client.post("/api/v1/cameras", json=CAMERA, headers=users.headers("admin"))
    row = db.get(Camera, "cam-9")
    row.config = {**row.config, "detect_fps": 99}  # written around the API
    db.commit()
    listed = client.get("/api/v1/cameras", headers=users.headers("viewer")).json()
    assert listed["data"] == [] and [c["id"] for c in listed["invalid"]] == ["cam-9"]
    assert listed["invalid"][0]["origin"] == "database"
    assert (
        "detect_fps" in listed["invalid"][0]["error"]
        and "PUT /api/v1/cameras/cam-9" in listed["invalid"][0]["error"]
    )
    r = client.get("/api/v1/cameras/cam-9", headers=users.headers("viewer"))
    assert r.status_code == 409 and "detect_fps" in r.text
    assert client.put("/api/v1/cameras/cam-9", json=CAMERA, headers=users.headers("admin")).status_code == 200
    assert client.get("/api/v1/cameras/cam-9", headers=users.headers("viewer")).json()["detect_fps"] == 5.0


def test_columns_and_json_are_written_from_one_config(client, users, db) -> None:  # noqa: ANN001
    """name/group/enabled are columns (they win on read) and copies in the JSON; every write sets both."""
    client.post("/api/v1/cameras", json=CAMERA, headers=users.headers("admin"))
    update = {**CAMERA, "name": "新名", "group": "night", "enabled": False, "zones": []}
    assert client.put("/api/v1/cameras/cam-9", json=update, headers=users.headers("admin")).status_code == 200
    db.expire_all()
    row = db.get(Camera, "cam-9")
    assert (row.name, row.group, row.enabled) == ("新名", "night", False)
    assert (row.config["name"], row.config["group"], row.config["enabled"]) == ("新名", "night", False)
    row.name = "列名"  # a column edited around the API wins over the JSON copy
    db.commit()
    assert client.get("/api/v1/cameras/cam-9", headers=users.headers("viewer")).json()["name"] == "列名"
