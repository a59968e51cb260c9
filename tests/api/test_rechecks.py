"""Re-check API and the case page (issue 19): list a case's re-checks with their after-photos, ask for one
(reviewers and admins), and the page #/case/<id> with before/after photos side by side and the timeline."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.api.conftest import scene_jpeg
from tests.api.test_browser import login, server, wait_js  # noqa: F401 - server is a fixture
from tests.api.test_browser_queue import Browser, chromium, people  # noqa: F401 - fixtures
from urbaneye.db.models import AuditLog
from urbaneye.db.rechecks import CaseRecheck, RecheckResult, RecheckTrigger
from urbaneye.rechecks import (
    AfterPhoto,
    RecheckOutcome,
    after_photo_key,
    claim_rechecks,
    finish_recheck,
    request_recheck,
)
from vision.config import RecheckConfig

AUTO = RecheckConfig(auto_close_on_clear=True)


def _done_recheck(db, store, case) -> CaseRecheck:  # noqa: ANN001
    """A finished camera re-check of ``case``: cleared, with an after-photo in the store."""
    row = request_recheck(db, case, RecheckTrigger.CALLBACK, "system:hotline")
    (target,) = claim_rechecks(db, [case.camera_id], "worker-a", lambda _c: 60.0)
    day = dt.date(2024, 5, 1)
    keys = [after_photo_key(case.camera_id, case.id, row.id, day, v) for v in ("clean", "annotated")]
    shas = [
        store.put(k, scene_jpeg(f"after {v}", seed=3))
        for k, v in zip(keys, ("clean", "annotated"), strict=True)
    ]
    outcome = RecheckOutcome(
        RecheckResult.CLEARED,
        "",
        60.0,
        300,
        300,
        0,
        0,
        None,
        (480, 270),
        dt.datetime(2024, 5, 1, 3, tzinfo=dt.UTC),
    )
    finish_recheck(
        db, target.recheck_id, outcome, AfterPhoto(keys[0], shas[0], keys[1], shas[1]), AUTO, "system:recheck"
    )
    db.commit()
    return db.get(CaseRecheck, row.id)


def test_list_and_request_rechecks(client, users, db, store, make_case):
    case = make_case(status="dispatched")
    done = _done_recheck(db, store, case)
    res = client.get(f"/api/v1/cases/{case.id}/rechecks", headers=users.headers("viewer"))
    assert res.status_code == 200, res.text
    (item,) = res.json()["data"]
    assert (item["id"], item["result"], item["action"], item["state"]) == (
        done.id,
        "cleared",
        "closed",
        "done",
    )
    assert item["requested_at"].endswith("Z") and item["frame_at"] == "2024-05-01T03:00:00Z"
    assert [(p["variant"], p["sha256"]) for p in item["photos"]] == [
        ("clean", done.clean_sha256),
        ("annotated", done.annotated_sha256),
    ]
    assert client.get(item["photos"][1]["url"]).content == store.get(done.annotated_key)
    # closed by the re-check: no more re-checks
    res = client.post(f"/api/v1/cases/{case.id}/rechecks", headers=users.headers("reviewer"))
    assert res.status_code == 409 and "已结案" in res.json()["detail"]

    other = make_case(status="dispatched")
    assert (
        client.post(f"/api/v1/cases/{other.id}/rechecks", headers=users.headers("viewer")).status_code == 403
    )
    first = client.post(f"/api/v1/cases/{other.id}/rechecks", headers=users.headers("reviewer"))
    assert first.status_code == 202, first.text
    assert (first.json()["state"], first.json()["trigger"]) == ("pending", "manual")
    again = client.post(f"/api/v1/cases/{other.id}/rechecks", headers=users.headers("admin"))
    assert again.json()["id"] == first.json()["id"]  # one pending request per case
    db.expire_all()
    (audit,) = (
        db.query(AuditLog).filter(AuditLog.entity_id == other.id, AuditLog.action == "recheck_request").all()
    )
    assert audit.actor == "user:reviewer1"
    assert client.get("/api/v1/cases/nope/rechecks", headers=users.headers("viewer")).status_code == 404


@pytest.mark.browser
def test_case_page_shows_before_and_after_and_the_timeline(chromium, people, db, store, make_case, tmp_path):  # noqa: F811
    case = make_case(status="dispatched")
    done = _done_recheck(db, store, case)
    waiting = make_case(status="dispatched")
    page = chromium.page()
    login(page, "demo", "demo-review")
    page.goto(f"{page.base}/#/case/{case.id}")
    wait_js(
        page,
        "(() => [...document.querySelectorAll('#before-after img')].filter((i) => i.complete && i.naturalWidth > 0)"
        ".length === 2)()",
        "before and after photos loaded side by side",
    )
    assert "已清除" in page.inner_text("#after-photo") and done.annotated_sha256[:12] in page.inner_text(
        "#after-photo"
    )
    assert page.inner_text("#case-status") == "已结案"
    timeline = page.inner_text("#case-timeline")
    assert "视频核查 已派遣 → 已结案 已清除" in timeline and "核查通过，已结案（视频核查）" in timeline
    assert page.query_selector("#request-recheck") is None  # closed: nothing to ask for
    page.screenshot(path=str(tmp_path / "case-rechecked.png"), full_page=True)

    page.goto(f"{page.base}/#/case/{waiting.id}")
    page.click("#request-recheck")
    wait_js(
        page,
        "(() => !!document.querySelector('#case-rechecks tr[data-state=\"pending\"]'))()",
        "the requested re-check listed as waiting for the camera",
    )
    assert page.is_disabled("#request-recheck") and "尚未核查" not in page.inner_text("#after-photo")
