from __future__ import annotations

import csv
import datetime as dt
import io

from sqlalchemy import select


def test_stats_figures_and_csv(client, users, make_case, db) -> None:  # noqa: ANN001
    from urbaneye.db.models import Review

    day1 = dt.datetime(2024, 5, 1, 3, tzinfo=dt.UTC)  # 11:00 Shanghai
    day2 = dt.datetime(2024, 5, 1, 17, tzinfo=dt.UTC)  # 01:00 on 2 May in Shanghai
    for status in ("closed", "closed", "accepted", "rejected", "pending_review"):
        make_case(status=status, created_at=day1, evidence=False)
    c = make_case(
        status="queued",
        created_at=day2,
        evidence=False,
        camera_id="cam-2",
        reviewed_at=day2 + dt.timedelta(seconds=90),
    )
    make_case(kind="exposed_garbage", status="rejected", created_at=day2, evidence=False)
    db.add_all(
        [Review(case_id=c.id, user_id="u", decision="confirm", duration_ms=ms) for ms in (1000, 3000, 8000)]
    )
    db.commit()
    params = {"since": "2024-04-30T00:00:00Z", "until": "2024-05-03T00:00:00Z"}
    r = client.get("/api/v1/stats", params=params, headers=users.headers("viewer"))
    assert r.status_code == 200, r.text
    s = r.json()
    t = s["totals"]
    assert (t["detected"], t["received"], t["closed"], t["confirmed"], t["rejected"], t["pending"]) == (
        7,
        3,
        2,
        4,
        2,
        1,
    )
    assert t["closure_rate"] == round(2 / 3, 4) and t["precision"] == round(4 / 6, 4)
    assert t["median_review_ms"] == 3000 and t["median_time_to_review_s"] == 90.0
    assert s["report"][0] == "受理 3件，办结 2件，办结率 66.7%"
    rows = {(r["period"], r["kind"]): r for r in s["rows"]}
    assert set(rows) == {
        ("2024-05-01", "street_vending"),
        ("2024-05-02", "street_vending"),
        ("2024-05-02", "exposed_garbage"),
    }  # local (Shanghai) days
    assert rows[("2024-05-01", "street_vending")]["channel"] == "视频抓拍"
    prec = {(p["camera_id"], p["kind"]): p["precision"] for p in s["precision_by_camera"]}
    assert prec == {
        ("cam-1", "street_vending"): 0.75,
        ("cam-2", "street_vending"): 1.0,
        ("cam-1", "exposed_garbage"): 0.0,
    }
    weekly = client.get(
        "/api/v1/stats", params={**params, "period": "month"}, headers=users.headers("viewer")
    ).json()
    assert {r["period"] for r in weekly["rows"]} == {"2024-05-01"}
    r = client.get("/api/v1/stats.csv", params=params, headers=users.headers("viewer"))
    assert r.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert table[-1]["period"] == "total" and table[-1]["closed"] == "2" and len(table) == 4
    bad = client.get(
        "/api/v1/stats",
        params={"since": "2024-05-03T00:00:00Z", "until": "2024-05-01T00:00:00Z"},
        headers=users.headers("viewer"),
    )
    assert bad.status_code == 422 and "swap" in bad.text


def _version(db, version: str, parent: str | None = None):  # noqa: ANN001, ANN202
    from urbaneye.db.models import ModelVersion

    mv = ModelVersion(version=version, parent=parent, onnx_uri=f"s3://m/{version}.onnx", sha256="0" * 64)
    db.add(mv)
    db.commit()
    return mv


def test_promote_and_roll_back(client, users, db) -> None:  # noqa: ANN001
    from urbaneye.db.models import AuditLog, ModelVersion

    for v, p in (("m1", None), ("m2", "m1"), ("m3", "m2")):
        _version(db, v, p)
    h = users.headers("admin")
    for v in ("m1", "m2", "m3"):
        r = client.post(f"/api/v1/models/{v}/promote", json={"camera_group": "default"}, headers=h)
        assert r.status_code == 200 and r.json()["version"] == v
    assert (
        client.post("/api/v1/models/m1/promote", json={}, headers=users.headers("reviewer")).status_code
        == 403
    )
    r = client.post("/api/v1/models/active/default/rollback", headers=h)
    assert r.status_code == 200 and r.json()["version"] == "m2"
    r = client.post("/api/v1/models/active/default/rollback", headers=h)
    assert r.json()["version"] == "m1"
    r = client.post("/api/v1/models/active/default/rollback", headers=h)
    assert r.status_code == 409 and "no earlier model" in r.json()["detail"]
    assert client.post("/api/v1/models/active/nogroup/rollback", headers=h).status_code == 404
    db.expire_all()
    assert {m.version: m.status for m in db.scalars(select(ModelVersion))} == {
        "m1": "active",
        "m2": "retired",
        "m3": "retired",
    }
    actions = db.scalars(
        select(AuditLog.action).where(AuditLog.entity == "model").order_by(AuditLog.id)
    ).all()
    assert actions == ["promote", "promote", "promote", "rollback", "rollback"]
    listed = client.get(
        "/api/v1/models", params={"status": "retired"}, headers=users.headers("viewer")
    ).json()
    assert {m["version"] for m in listed["data"]} == {"m2", "m3"}
    active = client.get("/api/v1/models/active", headers=users.headers("service")).json()
    assert active["data"][0]["camera_group"] == "default" and active["data"][0]["version"] == "m1"


def test_health_ready_metrics(client, users) -> None:  # noqa: ANN001
    assert client.get("/healthz").json() == {"status": "ok"}
    r = client.get("/readyz")
    assert r.status_code == 200 and r.json()["checks"]["database"]["ok"] is True
    client.get("/api/v1/cases", headers=users.headers("viewer"))
    text = client.get("/metrics").text
    assert 'urbaneye_api_requests_total{method="GET",route="/api/v1/cases",status="200"} 1.0' in text


def test_readyz_reports_unreachable_broker(app, client, api_settings) -> None:  # noqa: ANN001
    app.state.settings = api_settings.model_copy(update={"broker_url": "redis://127.0.0.1:1/0"})
    r = client.get("/readyz")
    assert r.status_code == 503
    body = r.json()
    assert body["checks"]["broker"]["ok"] is False and body["checks"]["database"]["ok"] is True
