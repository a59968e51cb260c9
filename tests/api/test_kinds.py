"""Configured violation kinds in the API (issue 19): a case of a kind the cameras file defines, made by the real
spool -> case path, shows its code and name in /api/v1/cases, /api/v1/kinds and /api/v1/stats."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import yaml

from tests.kinds import GOODS_DISPLAY
from tests.urbaneye.conftest import make_context, make_event, make_frames
from urbaneye.cases import service
from urbaneye.cases.handoff import Handoff


def cameras_file(path: Path, *violations: dict) -> Path:
    """A cameras file with only a ``violations:`` section, named to the API as the deployment's file."""
    path.write_text(yaml.safe_dump({"violations": list(violations)}, allow_unicode=True), encoding="utf-8")
    return path


def made(db, make_case, **fields):  # noqa: ANN001, ANN003, ANN201
    """A case from the factory with some of its fixed fields (code, name, description) changed."""
    case = make_case(**{k: fields.pop(k) for k in ("kind", "created_at") if k in fields})
    for name, value in fields.items():
        setattr(case, name, value)
    db.commit()
    return case


def spool_case(vid: str, **event: object) -> str:
    """A case made the way a stream worker's event becomes one: spooled, then processed."""
    ev = dataclasses.replace(make_event(vid), **event)
    item_id = f"api-{abs(hash(vid))}"
    Handoff().spool.write(item_id, ev, make_context(), make_frames(ev))
    assert service.process_spool_item(item_id) == "done"
    return service.case_id_for(vid)


def test_a_configured_kind_case_shows_in_cases_kinds_and_stats(
    client, users, db, use_cameras_file, tmp_path, make_case
) -> None:  # noqa: ANN001
    use_cameras_file(cameras_file(tmp_path / "cameras.yaml", GOODS_DISPLAY))
    h = users.headers("viewer")
    kinds = client.get("/api/v1/kinds", headers=h).json()["data"]
    assert [k["id"] for k in kinds] == [
        "street_vending",
        "exposed_garbage",
        "bike_misparking",
        "open_air_barbecue",
        "goods_display",
    ]
    assert kinds[-1] == {
        "id": "goods_display",
        "name_zh": "出店陈列",
        "gbt_code": "0504",
        "gbt_name": "店外经营",
        "classes": ["vending_stall"],
        "source": "configured",
        "case_count": 0,
    }

    case_id = spool_case(
        "cam-1:z1:gd", kind="goods_display", gbt_code="0504", gbt_name="店外经营", kind_name_zh="出店陈列"
    )
    spool_case("cam-1:z1:sv")  # a built-in vending case beside it
    # a kind the cameras file no longer defines
    made(db, make_case, kind="piles", kind_name_zh="乱堆物料", gbt_code="0199", gbt_name="乱堆物料")

    listed = client.get("/api/v1/cases", params={"kind": "goods_display"}, headers=h).json()
    assert [(c["id"], c["gbt_code"], c["gbt_name"], c["kind_name_zh"]) for c in listed["data"]] == [
        (case_id, "0504", "店外经营", "出店陈列")
    ]
    both = client.get("/api/v1/cases", params={"kind": ["goods_display", "piles"]}, headers=h).json()
    assert both["count"] == 2
    bad = client.get("/api/v1/cases", params={"kind": "Goods Display"}, headers=h)
    assert bad.status_code == 422

    kinds = {k["id"]: k for k in client.get("/api/v1/kinds", headers=h).json()["data"]}
    assert (kinds["goods_display"]["case_count"], kinds["street_vending"]["case_count"]) == (1, 1)
    assert kinds["piles"] == {
        "id": "piles",
        "name_zh": "乱堆物料",
        "gbt_code": "0199",
        "gbt_name": "乱堆物料",
        "classes": [],
        "source": "cases",
        "case_count": 1,
    }

    client.post(
        f"/api/v1/cases/{case_id}/verify", json={"decision": "confirm"}, headers=users.headers("reviewer")
    )
    since = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).isoformat()
    stats = client.get("/api/v1/stats", params={"since": since}, headers=h).json()
    rows = {r["kind"]: r for r in stats["rows"]}
    assert (rows["goods_display"]["kind_name_zh"], rows["goods_display"]["gbt_code"]) == ("出店陈列", "0504")
    assert (rows["goods_display"]["detected"], rows["goods_display"]["confirmed"]) == (1, 1)
    assert rows["street_vending"]["kind_name_zh"] == "占道经营"
    assert [(p["kind"], p["kind_name_zh"], p["confirmed"]) for p in stats["precision_by_camera"]] == [
        ("goods_display", "出店陈列", 1)
    ]
    only = client.get("/api/v1/stats", params={"since": since, "kind": "goods_display"}, headers=h).json()
    assert only["totals"]["detected"] == 1 and {r["kind"] for r in only["rows"]} == {"goods_display"}
    csv = client.get("/api/v1/stats.csv", params={"since": since, "kind": "goods_display"}, headers=h)
    assert "goods_display,出店陈列,0504,1" in csv.text


def test_a_broken_cameras_file_leaves_the_built_in_and_case_kinds(
    client, users, db, use_cameras_file, tmp_path, make_case
) -> None:  # noqa: ANN001
    broken = tmp_path / "cameras.yaml"
    broken.write_text("violations:\n  - id: Bad Id\n", encoding="utf-8")
    use_cameras_file(broken)
    made(db, make_case, kind="piles", kind_name_zh="乱堆物料", gbt_code="0199", gbt_name="乱堆物料")
    res = client.get("/api/v1/kinds", headers=users.headers("viewer"))
    assert res.status_code == 200
    assert [(k["id"], k["source"]) for k in res.json()["data"]] == [
        ("street_vending", "builtin"),
        ("exposed_garbage", "builtin"),
        ("bike_misparking", "builtin"),
        ("open_air_barbecue", "builtin"),
        ("piles", "cases"),
    ]
    assert client.get("/api/v1/kinds").status_code == 401
